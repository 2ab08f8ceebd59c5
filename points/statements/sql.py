"""Statement generation on PostgreSQL, set-based: a batch's figures and snapshots in one
INSERT ... SELECT, and its messages' contexts built in the database.

`statements_insert` computes, for a whole batch of wallets in one statement, what
`selectors.statement_figures` computes in Python (which stays the portable path, and the
independent recomputation behind verify_statements): each wallet's cached balance and debt
beside the entries of its postings booked since the period started (in the period, and after
it: the balances at both boundaries, from one consistent state of the ledger); the period's
postings grouped by wallet, kind, source, business unit, hold purpose and redemption channel,
the breakdowns built as JSON objects with jsonb_object_agg; the lots at the period end, today's
open ones and those moved since, minus their later movements. It reaches a wallet's rows through
its postings, which holds because an entry of a member's account and a lot's movement belong to a
posting of that wallet (invariants verify_ledger checks), so its cost follows the postings booked
since the period started, not the wallet's whole history. The due rows go straight into
points_statement with ON CONFLICT (member, period) DO NOTHING: nothing crosses to Python but the
count of rows written. A posting of a kind the statement does not place is reported, not guessed
at, and nothing is written.

`statement_messages_select` is the SELECT that
`members.notifications.services.notifications_queue_select` queues: each statement's key, its
member's columns and the context `messages.statement_context` builds in Python, built here from
the stored statement (labels in the member's language passed in as one JSON parameter).
tests/statements/test_generation_sql.py holds both pairs equal.
"""

import json

from django.conf import settings
from django.db import connection
from django.utils import translation
from django.utils.translation import gettext as _

from members.models import MemberLanguage
from members.notifications.services import MEMBER_FIELDS_SQL, QUEUE_MEMBER_COLUMNS
from points.ledger.idempotency import SYSTEM_SCOPE
from points.models import Account, EventType, PostingKind
from points.policies import redemption_channels
from points.statements.periods import Period
from points.statements.selectors import (
    GROUP_WIDE, HOLD_PAYMENT, KIND_LINES, LINES, PLAIN_SPEND, ZERO_KINDS, UnknownPostingKind, expiring_bounds,
)


def _channel_case(params: dict) -> str:
    """redemption_channel() in SQL: the registered channels in order, then any other captured
    hold (HOLD_PAYMENT), else a plain spend."""
    whens = []
    for number, channel in enumerate(redemption_channels()):
        params[f"channel_{number}"] = channel.name
        if channel.hold_purposes:
            params[f"channel_{number}_purposes"] = list(channel.hold_purposes)
            whens.append(f"WHEN hold_purpose = ANY(%(channel_{number}_purposes)s::text[]) "
                         f"THEN %(channel_{number})s::text")
        if channel.key_prefix:
            params[f"channel_{number}_prefix"] = channel.key_prefix
            whens.append(f"WHEN idempotency_scope = %(system_scope)s AND starts_with(idempotency_key, "
                         f"%(channel_{number}_prefix)s::text) THEN %(channel_{number})s::text")
    params.update(system_scope=SYSTEM_SCOPE, hold_payment=HOLD_PAYMENT, plain_spend=PLAIN_SPEND)
    whens.append("WHEN hold_purpose IS NOT NULL THEN %(hold_payment)s::text")  # a hold's purpose is never null
    return f"CASE {' '.join(whens)} ELSE %(plain_spend)s::text END"


def _line_sums(params: dict) -> str:
    """One signed sum per statement line (KIND_LINES), and whether a posting has no place."""
    sums = []
    for line in LINES:
        kinds = [(kind, sign) for kind, (name, sign) in KIND_LINES.items() if name == line]
        cases = " ".join(f"WHEN %(kind_{kind})s::text THEN mv.points * {int(sign)}" for kind, sign in kinds)
        sums.append(f"COALESCE(SUM(CASE mv.kind {cases} ELSE 0 END), 0) AS {line}" if kinds else f"0 AS {line}")
        params.update({f"kind_{kind}": kind for kind, _ignored in kinds})
    params["placed_kinds"] = list(KIND_LINES)
    params["zero_kinds"] = list(ZERO_KINDS)
    unplaced = ("bool_or((mv.kind = ANY(%(zero_kinds)s::text[]) AND mv.points <> 0) OR NOT "
                "(mv.kind = ANY(%(zero_kinds)s::text[]) OR mv.kind = ANY(%(placed_kinds)s::text[]))) AS unplaced")
    return ", ".join([*sums, unplaced])


# Each LATERAL (... OFFSET 0) below is a lookup per row through an index (OFFSET 0 keeps the
# planner from flattening it): the batch touches only its own wallets' rows, where a hash join
# over a whole table would read every row of the ledger once per batch.
INSERT = """
WITH w AS MATERIALIZED (
    SELECT pw.member_id, pw.id AS wallet_id, pw.balance, pw.debt FROM points_wallet pw
    WHERE pw.id = ANY(%(wallets)s::bigint[])
),
since_start AS MATERIALIZED (
    SELECT p.id, p.wallet_id, p.created_at >= %(end)s AS after_end, p.kind, p.points, p.event_type,
        p.business_unit_id, p.idempotency_scope, p.idempotency_key
    FROM w CROSS JOIN LATERAL (
        -- wallet by wallet: never a scan of every posting booked since the start
        SELECT * FROM points_posting p WHERE p.wallet_id = w.wallet_id AND p.created_at >= %(start)s OFFSET 0
    ) p
),
bal AS (
    SELECT s.wallet_id,
        COALESCE(SUM(e.amount) FILTER (WHERE e.account = %(wallet)s AND s.after_end), 0) AS wallet_after,
        COALESCE(SUM(e.amount) FILTER (WHERE e.account = %(wallet)s AND NOT s.after_end), 0) AS wallet_in,
        COALESCE(SUM(e.amount) FILTER (WHERE e.account = %(debt)s AND s.after_end), 0) AS debt_after,
        COALESCE(SUM(e.amount) FILTER (WHERE e.account = %(debt)s AND NOT s.after_end), 0) AS debt_in
    FROM since_start s CROSS JOIN LATERAL (
        SELECT e.account, e.amount FROM points_entry e
        WHERE e.posting_id = s.id AND e.wallet_id = s.wallet_id AND e.account IN (%(wallet)s, %(debt)s) OFFSET 0
    ) e
    GROUP BY s.wallet_id
),
period_postings AS MATERIALIZED (
    SELECT s.wallet_id, s.kind, s.points, s.idempotency_scope, s.idempotency_key,
        COALESCE(NULLIF(s.event_type, ''), 'other') AS source,
        COALESCE(NULLIF(bu.code, ''), %(group_wide)s) AS unit,
        (SELECT h.purpose FROM points_hold h WHERE h.capture_posting_id = s.id) AS hold_purpose
    FROM since_start s LEFT JOIN members_businessunit bu ON bu.id = s.business_unit_id
    WHERE NOT s.after_end
),
mv AS MATERIALIZED (
    SELECT wallet_id, kind, source, unit, COALESCE(NULLIF(hold_purpose, ''), %(plain_spend)s) AS purpose,
        {channel} AS channel, SUM(points) AS points, COUNT(*) AS n
    FROM period_postings GROUP BY 1, 2, 3, 4, 5, 6
),
lines AS (
    SELECT mv.wallet_id, SUM(mv.n) AS postings, {lines} FROM mv GROUP BY mv.wallet_id
),
buckets AS (
    SELECT wallet_id, 'source' AS name, source AS key, SUM(points) AS points FROM mv WHERE kind = %(earn)s GROUP BY 1, 3
    UNION ALL
    SELECT wallet_id, 'earned_unit', unit, SUM(points) FROM mv WHERE kind = %(earn)s GROUP BY 1, 3
    UNION ALL
    SELECT wallet_id, 'redeemed_unit', unit, -SUM(points) FROM mv WHERE kind = %(spend)s GROUP BY 1, 3
    UNION ALL
    SELECT wallet_id, 'purpose', purpose, -SUM(points) FROM mv WHERE kind = %(spend)s GROUP BY 1, 3
),
breakdowns AS (
    SELECT wallet_id,
        jsonb_object_agg(key, points) FILTER (WHERE name = 'source') AS earned_by_source,
        jsonb_object_agg(key, points) FILTER (WHERE name = 'earned_unit') AS earned_by_business_unit,
        jsonb_object_agg(key, points) FILTER (WHERE name = 'redeemed_unit') AS redeemed_by_business_unit,
        jsonb_object_agg(key, points) FILTER (WHERE name = 'purpose') AS redeemed_by_purpose
    FROM buckets WHERE points <> 0 GROUP BY wallet_id
),
channels AS (
    SELECT wallet_id, jsonb_object_agg(unit, split) AS split
    FROM (
        SELECT wallet_id, unit, jsonb_object_agg(channel, points) AS split
        FROM (SELECT wallet_id, unit, channel, -SUM(points) AS points FROM mv WHERE kind = %(spend)s GROUP BY 1, 2, 3) c
        WHERE points <> 0 GROUP BY 1, 2
    ) u
    GROUP BY wallet_id
),
later_moves AS MATERIALIZED (
    SELECT lm.lot_id, SUM(lm.amount) AS moved
    FROM since_start s
    CROSS JOIN LATERAL (SELECT lm.lot_id, lm.amount FROM points_lotmovement lm WHERE lm.posting_id = s.id OFFSET 0) lm
    WHERE s.after_end GROUP BY lm.lot_id
),
candidate_lots AS (
    SELECT l.id, l.wallet_id, l.remaining, l.expires_at, l.posting_id FROM points_lot l
    WHERE l.wallet_id = ANY(%(wallets)s::bigint[]) AND l.remaining > 0
    UNION
    SELECT l.id, l.wallet_id, l.remaining, l.expires_at, l.posting_id FROM later_moves m
    CROSS JOIN LATERAL (SELECT * FROM points_lot l WHERE l.id = m.lot_id OFFSET 0) l
),
lots_then AS MATERIALIZED (
    SELECT c.wallet_id, c.remaining - COALESCE(m.moved, 0) AS remaining,
        COALESCE((SELECT x.previous_expires_at FROM points_lotexpirychange x
                  WHERE x.lot_id = c.id AND x.created_at >= %(end)s ORDER BY x.id LIMIT 1), c.expires_at) AS expires_at
    FROM candidate_lots c LEFT JOIN later_moves m ON m.lot_id = c.id
    WHERE c.posting_id NOT IN (SELECT id FROM since_start WHERE after_end)
),
expiring AS (
    SELECT wallet_id, COALESCE(SUM(remaining) FILTER (WHERE expires_at < %(within_30)s), 0) AS within_30,
        SUM(remaining) AS within_60
    FROM lots_then WHERE remaining > 0 AND expires_at < %(within_60)s GROUP BY wallet_id
),
figures AS (
    SELECT w.member_id, w.wallet_id,
        w.balance - COALESCE(bal.wallet_after, 0) AS closing_balance,
        w.debt + COALESCE(bal.debt_after, 0) AS closing_debt,
        COALESCE(bal.wallet_in, 0) AS wallet_in, COALESCE(bal.debt_in, 0) AS debt_in,
        COALESCE(lines.postings, 0) AS postings, {line_columns},
        COALESCE(breakdowns.earned_by_source, '{{}}') AS earned_by_source,
        COALESCE(breakdowns.earned_by_business_unit, '{{}}') AS earned_by_business_unit,
        COALESCE(breakdowns.redeemed_by_business_unit, '{{}}') AS redeemed_by_business_unit,
        COALESCE(breakdowns.redeemed_by_purpose, '{{}}') AS redeemed_by_purpose,
        COALESCE(channels.split, '{{}}') AS redeemed_by_business_unit_and_channel,
        COALESCE(expiring.within_30, 0) AS expiring_30_days, COALESCE(expiring.within_60, 0) AS expiring_60_days
    FROM w
    LEFT JOIN bal ON bal.wallet_id = w.wallet_id
    LEFT JOIN lines ON lines.wallet_id = w.wallet_id
    LEFT JOIN breakdowns ON breakdowns.wallet_id = w.wallet_id
    LEFT JOIN channels ON channels.wallet_id = w.wallet_id
    LEFT JOIN expiring ON expiring.wallet_id = w.wallet_id
),
written AS (
    INSERT INTO points_statement (
        member_id, period, period_start, period_end, opening_balance, closing_balance, opening_debt, closing_debt,
        debt_repaid, {line_names}, postings, earned_by_source, earned_by_business_unit,
        redeemed_by_business_unit, redeemed_by_purpose, redeemed_by_business_unit_and_channel,
        expiring_30_days, expiring_60_days, tier, created_at
    )
    SELECT member_id, %(period)s, %(start)s, %(end)s, closing_balance - wallet_in, closing_balance,
        closing_debt + debt_in, closing_debt, debt_in, {line_names}, postings, earned_by_source,
        earned_by_business_unit, redeemed_by_business_unit, redeemed_by_purpose,
        redeemed_by_business_unit_and_channel, expiring_30_days, expiring_60_days,
        NULLIF(%(tiers)s::jsonb -> member_id::text, 'null'::jsonb), %(now)s
    FROM figures
    WHERE (postings > 0 OR closing_balance <> 0 OR closing_debt <> 0)
        AND NOT EXISTS (SELECT 1 FROM lines WHERE unplaced)
    ON CONFLICT (member_id, period) DO NOTHING
    RETURNING member_id
)
SELECT (SELECT count(*) FROM written), (SELECT array_agg(wallet_id ORDER BY wallet_id) FROM lines WHERE unplaced)
"""


# For the transaction: no JIT (the planner prices the per-row subqueries above its threshold, and
# compiling the plan, about 100 ms, costs more than running it) and a plan made for each batch's
# own arrays (a generic plan of a prepared statement would guess their sizes).
BATCH_SETTINGS = "SELECT set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)"


def statements_insert(*, period: Period, wallet_ids: list[int], tiers: dict[int, dict | None], now) -> int:
    """Write the statements of `period` due for these members' wallets, in one statement;
    `tiers` maps member ids to their tier snapshot. Returns the rows written (a
    member whose statement exists already, or who is not due one, gets none). Raises
    UnknownPostingKind, writing nothing, when a posting has no line on a statement. Runs in the
    caller's transaction (its settings are the transaction's)."""
    within_30, within_60 = expiring_bounds(end=period.end)
    params = {
        "wallets": list(wallet_ids),
        "wallet": Account.WALLET, "debt": Account.DEBT, "earn": PostingKind.EARN, "spend": PostingKind.SPEND,
        "group_wide": GROUP_WIDE, "period": period.name, "start": period.start, "end": period.end,
        "within_30": within_30, "within_60": within_60, "now": now,
        "tiers": json.dumps({str(member_id): tier for member_id, tier in tiers.items()}),
    }
    sql = INSERT.format(
        channel=_channel_case(params), lines=_line_sums(params),
        line_columns=", ".join(f"COALESCE(lines.{line}, 0) AS {line}" for line in LINES),
        line_names=", ".join(LINES),
    )
    with connection.cursor() as cursor:
        cursor.execute(BATCH_SETTINGS)
        cursor.execute(sql, params)
        written, unplaced = cursor.fetchone()
    if unplaced:
        raise UnknownPostingKind(f"wallets {unplaced} have postings of {period} with no line on a statement")
    return written


# --- the message of a statement ---------------------------------------------------------------


def message_labels() -> str:
    """The labels a statement message shows, per language, as statement_context resolves them:
    sources, the group-wide business unit and the tier line's forms (JSON)."""
    labels = {}
    for language in {*MemberLanguage.values, *(code for code, _name in settings.LANGUAGES), settings.LANGUAGE_CODE}:
        with translation.override(language):
            labels[language] = {
                "source": {"other": _("Other"), **{key: str(label) for key, label in EventType.choices}},
                "group_wide": _("Group-wide"),
                "top_tier": _("Top tier reached"),
                "points_to": _("%(remaining)s points to %(tier)s"),
                "cny_to": _("¥%(remaining)s to %(tier)s"),
            }
    return json.dumps(labels)


def _unit_rows(column: str, *, split: bool) -> str:
    """A JSON object column of the statement as the list of {label, points} rows statement_context
    shows (in the object's order), with each business unit's channels when `split`."""
    extra = ""
    if split:
        extra = "".join(
            f", '{name}', COALESCE(s.redeemed_by_business_unit_and_channel -> e.key -> '{channel}', '0')"
            for name, channel in (("mall_orders", "mall_order"), ("payments", "payment"), ("spends", PLAIN_SPEND))
        )
    label = ("COALESCE((SELECT bu.name FROM members_businessunit bu WHERE bu.code = e.key), "
             "CASE WHEN e.key = %(group_wide)s THEN lab.labels ->> 'group_wide' END, e.key)")
    return (f"COALESCE((SELECT jsonb_agg(jsonb_build_object('label', {label}, 'points', e.value{extra}) "
            f"ORDER BY e.n) FROM jsonb_each(s.{column}) WITH ORDINALITY AS e(key, value, n)), '[]')")


MESSAGES = """
SELECT s.member_id, %(key_prefix)s || s.member_id || ':' || s.period AS key, {member_columns}, jsonb_build_object(
    {member_fields},
    'period', s.period, 'year', substr(s.period, 1, 4)::int, 'month', substr(s.period, 6, 2)::int,
    'opening_balance', s.opening_balance, 'closing_balance', s.closing_balance, 'earned', s.earned,
    'redeemed', s.redeemed, 'cancelled', s.cancelled, 'refunded', s.refunded, 'expired', s.expired,
    'adjusted', s.adjusted, 'transferred', s.transferred, 'debt_repaid', s.debt_repaid, 'debt', s.closing_debt,
    'earned_by_source', COALESCE((
        SELECT jsonb_agg(jsonb_build_object('label', COALESCE(lab.labels -> 'source' ->> e.key, e.key), 'points', e.value)
                         ORDER BY e.n)
        FROM jsonb_each(s.earned_by_source) WITH ORDINALITY AS e(key, value, n)), '[]'),
    'earned_by_business_unit', {earned_units},
    'redeemed_by_business_unit', {redeemed_units},
    'expiring_30_days', s.expiring_30_days, 'expiring_60_days', s.expiring_60_days,
    'tier', s.tier,
    'tier_line', CASE
        WHEN s.tier IS NULL OR s.tier IN ('null'::jsonb, '{{}}'::jsonb) THEN ''
        WHEN COALESCE(s.tier ->> 'next_name', '') = '' THEN
            CASE WHEN COALESCE(s.tier ->> 'code', '') <> '' THEN lab.labels ->> 'top_tier' ELSE '' END
        ELSE replace(replace(lab.labels ->> CASE WHEN s.tier ->> 'basis' = 'points' THEN 'points_to' ELSE 'cny_to' END,
                             '%%(remaining)s', COALESCE(s.tier ->> 'remaining', 'None')),
                     '%%(tier)s', s.tier ->> 'next_name')
    END,
    'link', %(link_base)s || s.period
) AS context
FROM points_statement s
JOIN members_member m ON m.id = s.member_id
CROSS JOIN LATERAL (
    -- a language the platform does not speak falls back to LANGUAGE_CODE's labels, as Django's catalogs do
    SELECT COALESCE(%(labels)s::jsonb -> m.language, %(labels)s::jsonb -> %(fallback_language)s) AS labels
) lab
WHERE s.period = %(period)s AND s.member_id = ANY(%(members)s::bigint[]) AND m.id = ANY(%(members)s::bigint[])
"""


def statement_messages_select(
    *, period: Period, member_ids: list[int], key_prefix: str, link_base: str
) -> tuple[str, dict]:
    """The SELECT of (member_id, key, the member's columns, context) of these members' statements
    of `period`, for notifications_queue_select: keys `<key_prefix><member>:<period>`, links
    `<link_base><period>`, labels in each member's language."""
    sql = MESSAGES.format(
        member_columns=QUEUE_MEMBER_COLUMNS, member_fields=MEMBER_FIELDS_SQL,
        earned_units=_unit_rows("earned_by_business_unit", split=False),
        redeemed_units=_unit_rows("redeemed_by_business_unit", split=True),
    )
    params = {"period": period.name, "members": list(member_ids), "key_prefix": key_prefix, "link_base": link_base,
              "labels": message_labels(), "fallback_language": settings.LANGUAGE_CODE, "group_wide": GROUP_WIDE}
    return sql, params

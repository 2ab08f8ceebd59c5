"""The counters the earn and spend gates judge, read (and claimed) in as few statements as the
guarantees allow: hand-written SQL with fixed types, built for the rules that apply to the event.
Every function runs in the earn's or spend's transaction, under the member's wallet lock.

* `devices_seen` (an earn under a device or address rule, a referee's enrolment under a referral
  device rule): one statement upserts the device and address rows and the member's use of each.
  `ON CONFLICT DO UPDATE` locks each row until the transaction ends (in kind order, so two
  transactions never wait on each other crosswise): members racing on one device are counted one
  after the other. It has to be a statement of its own: a statement reads what was committed
  when it started, and the count of the other members must see what the previous holder of the
  row's lock committed while this one waited.
* `earn_counts`: one statement for the rest of an earn: the member's earns, points and refunds in
  each history rule's window (final until the transaction ends: the wallet lock), the other
  members on each device rule's device in its window (final: the device's lock, taken by the
  statement before), and the claim of the earn's receipt fingerprints (`INSERT ... ON CONFLICT DO
  NOTHING RETURNING`: a claim waits for a concurrent claim of the same fingerprint to commit or
  roll back; a fingerprint not returned was claimed before).
* `spend_counts`: one statement: the member's redemptions (spends that are not a hold's capture,
  and holds placed) and the points they earned, in each rule's window.

A rule's window never starts before the rule was switched on (`RuleSpec.since`).
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from points.models import Hold, Posting, PostingKind, Wallet
from riskcontrol.models import RiskDevice, RiskDeviceUse, RiskReceipt
from riskcontrol.selectors import RuleSpec

POSTINGS, WALLETS, HOLDS = Posting._meta.db_table, Wallet._meta.db_table, Hold._meta.db_table
DEVICES, DEVICE_USES, RECEIPTS = RiskDevice._meta.db_table, RiskDeviceUse._meta.db_table, RiskReceipt._meta.db_table
WALLET_OF_MEMBER = f"(SELECT id FROM {WALLETS} WHERE member_id = %s::bigint)"


def devices_seen(*, seen: dict[str, str], member_id: int, now: datetime) -> dict[str, int]:
    """Upsert the rows of the devices seen (kind -> value) and the member's use of each; each row
    stays locked until the transaction ends. The row ids, by kind."""
    kinds = sorted(seen)
    params: list = [part for kind in kinds for part in (kind, seen[kind])] + [member_id, now, now]
    sql = (
        f"WITH d AS (INSERT INTO {DEVICES} AS d (kind, value) VALUES {', '.join(['(%s, %s)'] * len(kinds))} "
        "ON CONFLICT (kind, value) DO UPDATE SET kind = EXCLUDED.kind RETURNING d.id, d.kind), "
        f"u AS (INSERT INTO {DEVICE_USES} (device_id, member_id, first_seen_at, last_seen_at) "
        "SELECT d.id, %s::bigint, %s::timestamptz, %s::timestamptz FROM d "
        "ON CONFLICT (device_id, member_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at) "
        "SELECT d.kind, d.id FROM d"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


@dataclass(frozen=True)
class EarnCounts:
    history: dict[int, dict[str, int]]  # rule id -> earns, points, refunded in its window
    others: dict[int, int]  # device rule id -> other members on its device in its window
    claimed: frozenset[str]  # the fingerprints this earn claimed


def earn_counts(
    *, member_id: int, history_rules: list[RuleSpec], device_rules: list[tuple[RuleSpec, int]],
    fingerprints: list[str], now: datetime,
) -> EarnCounts:
    """What the earn's rules count, and the claim of its fingerprints, in one statement.
    `device_rules` pairs each device rule with its device's row id (from `devices_seen`)."""
    ctes, columns, params = [], [], []
    if fingerprints:
        rows = ", ".join(["(%s, %s::bigint, %s::timestamptz)"] * len(fingerprints))
        ctes.append(f"claimed AS (INSERT INTO {RECEIPTS} (fingerprint, member_id, created_at) VALUES {rows} "
                    "ON CONFLICT (fingerprint) DO NOTHING RETURNING fingerprint)")
        params += [part for fingerprint in fingerprints for part in (fingerprint, member_id, now)]
    if history_rules:
        aggregates = []
        for rule in history_rules:
            aggregates += [
                "count(*) FILTER (WHERE kind = %s AND created_at >= %s::timestamptz)",
                "COALESCE(sum(points) FILTER (WHERE kind = %s AND created_at >= %s::timestamptz), 0)::bigint",
                "COALESCE(sum(points) FILTER (WHERE kind = %s AND created_at >= %s::timestamptz), 0)::bigint",
            ]
            since = rule.since(now)
            params += [PostingKind.EARN, since, PostingKind.EARN, since, PostingKind.REFUND, since]
        ctes.append(f"h AS (SELECT {', '.join(aggregates)} FROM {POSTINGS} "
                    f"WHERE wallet_id = {WALLET_OF_MEMBER} AND created_at >= %s::timestamptz)")
        params += [member_id, min(rule.since(now) for rule in history_rules)]
        columns.append("h.*")
    for rule, device_pk in device_rules:
        columns.append(f"(SELECT count(*) FROM {DEVICE_USES} WHERE device_id = %s::bigint "
                       "AND last_seen_at >= %s::timestamptz AND member_id <> %s::bigint)")
        params += [device_pk, rule.since(now), member_id]
    if fingerprints:
        columns.append("ARRAY(SELECT fingerprint FROM claimed)")
    sql = f"{'WITH ' + ', '.join(ctes) + ' ' if ctes else ''}SELECT {', '.join(columns)}{' FROM h' if history_rules else ''}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = list(cursor.fetchone())
    history = {}
    for rule in history_rules:
        earns, points, refunds, row = *row[:3], row[3:]
        history[rule.id] = {"earns": earns, "points": points, "refunded": -refunds}
    others = {rule.id: count for (rule, _device), count in zip(device_rules, row, strict=False)}
    claimed = frozenset(row[len(device_rules)]) if fingerprints else frozenset()
    return EarnCounts(history=history, others=others, claimed=claimed)


def receipts_release(*, fingerprints: frozenset[str]) -> None:
    """Give back fingerprints this earn claimed, for an earn refused after claiming them where the
    refusal does not roll the claim back (the bulk earn goes on with its other items)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {RECEIPTS} WHERE fingerprint = ANY(%s::varchar[])", [sorted(fingerprints)])


def spend_counts(*, member_id: int, rules: list[RuleSpec], now: datetime, count_holds: bool) -> dict[int, dict]:
    """For each windowed redemption rule: the member's redemptions (spends that are not a hold's
    capture, plus holds placed when `count_holds`) and the points they earned in its window."""
    if not rules:
        return {}
    start = min(rule.since(now) for rule in rules)
    aggregates, params = [], []
    for rule in rules:
        aggregates += [
            "count(*) FILTER (WHERE p.kind = %s AND p.created_at >= %s::timestamptz "
            f"AND NOT EXISTS (SELECT 1 FROM {HOLDS} c WHERE c.capture_posting_id = p.id))",
            "COALESCE(sum(p.points) FILTER (WHERE p.kind = %s AND p.created_at >= %s::timestamptz), 0)::bigint",
        ]
        params += [PostingKind.SPEND, rule.since(now), PostingKind.EARN, rule.since(now)]
    sql = (f"WITH p AS (SELECT {', '.join(aggregates)} FROM {POSTINGS} p "
           f"WHERE p.wallet_id = {WALLET_OF_MEMBER} AND p.created_at >= %s::timestamptz)")
    params += [member_id, start]
    if count_holds:
        held = ", ".join(["count(*) FILTER (WHERE created_at >= %s::timestamptz)"] * len(rules))
        sql += (f", h AS (SELECT {held} FROM {HOLDS} WHERE wallet_id = {WALLET_OF_MEMBER} "
                "AND created_at >= %s::timestamptz) SELECT p.*, h.* FROM p, h")
        params += [rule.since(now) for rule in rules] + [member_id, start]
    else:
        sql += " SELECT p.* FROM p"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    holds = row[2 * len(rules):] if count_holds else [0] * len(rules)
    return {
        rule.id: {"redemptions": row[2 * n] + holds[n], "earned": row[2 * n + 1]}
        for n, rule in enumerate(rules)
    }

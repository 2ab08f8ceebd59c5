"""The counters the earn and spend gates judge, read (and claimed) in one statement per event:
hand-written SQL with fixed types, built for the rules that apply to the event. Every function
runs in the earn's or spend's transaction, under the member's wallet lock.

* `earn_counts`: an earn's one statement. It upserts the rows of the request's device and client
  address and the member's use of each (`ON CONFLICT DO UPDATE` locks each row until the
  transaction ends), counts the member's earns, points and refunds in each history rule's window
  (final: the wallet lock), counts the other members on the device in each device rule's window,
  and claims the earn's receipt fingerprints (`INSERT ... ON CONFLICT DO NOTHING RETURNING`: a
  claim waits for a concurrent claim of the same fingerprint to commit or roll back; a fingerprint
  not returned was claimed before). The claims wait until every device row is locked, so two
  earns never wait on each other crosswise.
* A statement reads what was committed when it started, but it takes a device's lock later, maybe
  after waiting for another earn on the device to commit; that earn's use is then not in the
  count. Every upsert moves the device row's `version` on: when the version the upsert moved on
  from is the one the statement read, nobody changed the row in between and the count is exact
  (the members after this one wait for its lock); otherwise the count is read again, under the
  lock (`_others_again`: a second statement, only when an earn raced another on its device).
* `devices_seen`: the same upsert alone, for the referral rules, which count under the lock after it.
* `spend_counts`: a redemption's one statement: the member's redemptions (spends that are not a
  hold's capture, and holds placed) and the points they earned, in each rule's window.
* The member's postings and holds are read through their wallet (its index), each window a
  FILTER: the work grows with the member's own history, never with everyone's. A `created_at`
  bound in the WHERE would let the planner take the `created_at` index instead, which for a rule
  switched on a minute ago it thinks reads a row or two and which reads every posting of everyone
  since then.

A rule's window never starts before the rule was switched on (`RuleSpec.since`). Elsewhere than
on PostgreSQL (the embedded SQLite demo, whose transactions take the database's one write lock
in turn, so that nothing races) the same counts are read with the ORM, statement by statement.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Count, F, Q, Sum

from points.models import Hold, Posting, PostingKind, Wallet
from riskcontrol.models import RiskDevice, RiskDeviceUse, RiskReceipt
from riskcontrol.selectors import RuleSpec

POSTINGS, WALLETS, HOLDS = Posting._meta.db_table, Wallet._meta.db_table, Hold._meta.db_table
DEVICES, DEVICE_USES, RECEIPTS = RiskDevice._meta.db_table, RiskDeviceUse._meta.db_table, RiskReceipt._meta.db_table
WALLET_OF_MEMBER = f"(SELECT id FROM {WALLETS} WHERE member_id = %s::bigint)"


def _one_statement() -> bool:
    return connection.vendor == "postgresql"


def _devices_upsert(seen: dict[str, str], member_id: int, now: datetime) -> tuple[list[str], list]:
    """The CTEs `d` (the rows of the devices seen, kind -> value, upserted in kind order, each
    locked and its version moved on) and `u` (the member's use of each), with their parameters."""
    kinds = sorted(seen)
    ctes = [
        f"d AS (INSERT INTO {DEVICES} AS d (kind, value, version) VALUES {', '.join(['(%s, %s, 1)'] * len(kinds))} "
        "ON CONFLICT (kind, value) DO UPDATE SET version = d.version + 1 RETURNING d.id, d.kind, d.version)",
        f"u AS (INSERT INTO {DEVICE_USES} (device_id, member_id, first_seen_at, last_seen_at) "
        "SELECT d.id, %s::bigint, %s::timestamptz, %s::timestamptz FROM d "
        "ON CONFLICT (device_id, member_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at)",
    ]
    return ctes, [part for kind in kinds for part in (kind, seen[kind])] + [member_id, now, now]


def devices_seen(*, seen: dict[str, str], member_id: int, now: datetime) -> dict[str, int]:
    """Upsert the rows of the devices seen (kind -> value) and the member's use of each; each row
    stays locked until the transaction ends. The row ids, by kind."""
    if not _one_statement():
        return _devices_seen_portable(seen, member_id, now)
    ctes, params = _devices_upsert(seen, member_id, now)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} SELECT d.kind, d.id FROM d", params)
        return dict(cursor.fetchall())


def _others(device: str) -> str:
    """SQL for the other members on a device (`device`: SQL for its row id) since a moment."""
    return (f"(SELECT count(*) FROM {DEVICE_USES} WHERE device_id = {device} "
            "AND last_seen_at >= %s::timestamptz AND member_id <> %s::bigint)")


@dataclass(frozen=True)
class EarnCounts:
    history: dict[int, dict[str, int]]  # rule id -> earns, points, refunded in its window
    devices: dict[str, int]  # kind -> the device's row id
    others: dict[int, int]  # device rule id -> other members on its device in its window
    claimed: frozenset[str]  # the fingerprints this earn claimed


def earn_counts(
    *, member_id: int, history_rules: list[RuleSpec], seen: dict[str, str], device_rules: list[tuple[RuleSpec, str]],
    fingerprints: list[str], now: datetime,
) -> EarnCounts:
    """What the earn's rules count, the devices seen (kind -> value) upserted and the claim of its
    fingerprints, in one statement (see the module docstring). `device_rules` pairs each device
    rule with the kind of device it counts, one of `seen`."""
    if not _one_statement():
        return _earn_counts_portable(member_id=member_id, history_rules=history_rules, seen=seen,
                                     device_rules=device_rules, fingerprints=fingerprints, now=now)
    kinds = sorted(seen)
    ctes, columns, params = [], [], []
    if seen:
        ctes, params = _devices_upsert(seen, member_id, now)
    if fingerprints:
        rows = ", ".join(["(%s, %s::bigint, %s::timestamptz)"] * len(fingerprints))
        # The source's filter reads every row of d first: the devices are locked before the claims.
        after_devices = " WHERE (SELECT count(*) FROM d) > 0" if seen else ""
        ctes.append(f"claimed AS (INSERT INTO {RECEIPTS} (fingerprint, member_id, created_at) "
                    f"SELECT * FROM (VALUES {rows}) AS v{after_devices} "
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
        ctes.append(f"h AS (SELECT {', '.join(aggregates)} FROM {POSTINGS} WHERE wallet_id = {WALLET_OF_MEMBER})")
        params.append(member_id)
        columns.append("h.*")
    for kind in kinds:
        # The row's id, and whether its version moved on from the one this statement reads.
        columns += ["(SELECT d.id FROM d WHERE d.kind = %s)",
                    "(SELECT d.version FROM d WHERE d.kind = %s) = "
                    f"COALESCE((SELECT version FROM {DEVICES} WHERE kind = %s AND value = %s), 0) + 1"]
        params += [kind, kind, kind, seen[kind]]
    for rule, kind in device_rules:
        columns.append(_others("(SELECT d.id FROM d WHERE d.kind = %s)"))
        params += [kind, rule.since(now), member_id]
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
    devices, stale = {}, set()
    for kind in kinds:
        (devices[kind], exact), row = row[:2], row[2:]
        if not exact:
            stale.add(kind)
    others = {}
    for rule, kind in device_rules:
        others[rule.id], row = row[0], row[1:]
    again = [(rule, devices[kind]) for rule, kind in device_rules if kind in stale]
    if again:
        others.update(_others_again(again, member_id=member_id, now=now))
    return EarnCounts(history=history, devices=devices, others=others,
                      claimed=frozenset(row[0]) if fingerprints else frozenset())


def _others_again(rules: list[tuple[RuleSpec, int]], *, member_id: int, now: datetime) -> dict[int, int]:
    """The other members on each rule's device (rule, row id) in its window, read again under the
    devices' locks: a statement of its own sees what the earns before this one committed."""
    params = [part for rule, device_pk in rules for part in (device_pk, rule.since(now), member_id)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join([_others('%s::bigint')] * len(rules))}", params)
        return {rule.id: count for (rule, _device), count in zip(rules, cursor.fetchone(), strict=True)}


def receipts_release(*, fingerprints: frozenset[str]) -> None:
    """Give back fingerprints this earn claimed, for an earn refused after claiming them where the
    refusal does not roll the claim back (the bulk earn goes on with its other items)."""
    if not _one_statement():
        RiskReceipt.objects.filter(fingerprint__in=fingerprints).delete()
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {RECEIPTS} WHERE fingerprint = ANY(%s::varchar[])", [sorted(fingerprints)])


def spend_counts(*, member_id: int, rules: list[RuleSpec], now: datetime, count_holds: bool) -> dict[int, dict]:
    """For each windowed redemption rule: the member's redemptions (spends that are not a hold's
    capture, plus holds placed when `count_holds`) and the points they earned in its window."""
    if not rules:
        return {}
    if not _one_statement():
        return _spend_counts_portable(member_id=member_id, rules=rules, now=now, count_holds=count_holds)
    aggregates, params = [], []
    for rule in rules:
        aggregates += [
            "count(*) FILTER (WHERE p.kind = %s AND p.created_at >= %s::timestamptz "
            f"AND NOT EXISTS (SELECT 1 FROM {HOLDS} c WHERE c.capture_posting_id = p.id))",
            "COALESCE(sum(p.points) FILTER (WHERE p.kind = %s AND p.created_at >= %s::timestamptz), 0)::bigint",
        ]
        params += [PostingKind.SPEND, rule.since(now), PostingKind.EARN, rule.since(now)]
    sql = f"WITH p AS (SELECT {', '.join(aggregates)} FROM {POSTINGS} p WHERE p.wallet_id = {WALLET_OF_MEMBER})"
    params.append(member_id)
    if count_holds:
        held = ", ".join(["count(*) FILTER (WHERE created_at >= %s::timestamptz)"] * len(rules))
        sql += f", h AS (SELECT {held} FROM {HOLDS} WHERE wallet_id = {WALLET_OF_MEMBER}) SELECT p.*, h.* FROM p, h"
        params += [rule.since(now) for rule in rules] + [member_id]
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


# --- elsewhere than on PostgreSQL: the ORM, statement by statement ---------------------------------


def _devices_seen_portable(seen: dict[str, str], member_id: int, now: datetime) -> dict[str, int]:
    devices = {}
    for kind in sorted(seen):
        device, created = RiskDevice.objects.get_or_create(kind=kind, value=seen[kind], defaults={"version": 1})
        if not created:
            RiskDevice.objects.filter(pk=device.pk).update(version=F("version") + 1)
        RiskDeviceUse.objects.update_or_create(device=device, member_id=member_id, defaults={"last_seen_at": now},
                                               create_defaults={"first_seen_at": now, "last_seen_at": now})
        devices[kind] = device.pk
    return devices


def _earn_counts_portable(
    *, member_id: int, history_rules: list[RuleSpec], seen: dict[str, str], device_rules: list[tuple[RuleSpec, str]],
    fingerprints: list[str], now: datetime,
) -> EarnCounts:
    devices = _devices_seen_portable(seen, member_id, now) if seen else {}
    claimed = frozenset(
        fingerprint for fingerprint in fingerprints
        if RiskReceipt.objects.get_or_create(fingerprint=fingerprint,
                                             defaults={"member_id": member_id, "created_at": now})[1]
    )
    history = {}
    if history_rules:
        aggregates = {}
        for rule in history_rules:
            since = Q(created_at__gte=rule.since(now))
            aggregates[f"n{rule.id}"] = Count("id", filter=since & Q(kind=PostingKind.EARN))
            aggregates[f"p{rule.id}"] = Sum("points", filter=since & Q(kind=PostingKind.EARN))
            aggregates[f"r{rule.id}"] = Sum("points", filter=since & Q(kind=PostingKind.REFUND))
        totals = Posting.objects.filter(
            wallet__member_id=member_id, created_at__gte=min(rule.since(now) for rule in history_rules)
        ).aggregate(**aggregates)
        history = {
            rule.id: {"earns": totals[f"n{rule.id}"], "points": totals[f"p{rule.id}"] or 0,
                      "refunded": -(totals[f"r{rule.id}"] or 0)}
            for rule in history_rules
        }
    others = {
        rule.id: RiskDeviceUse.objects.filter(device_id=devices[kind], last_seen_at__gte=rule.since(now))
        .exclude(member_id=member_id).count()
        for rule, kind in device_rules
    }
    return EarnCounts(history=history, devices=devices, others=others, claimed=claimed)


def _spend_counts_portable(*, member_id: int, rules: list[RuleSpec], now: datetime, count_holds: bool) -> dict[int, dict]:
    aggregates = {}
    for rule in rules:
        since = Q(created_at__gte=rule.since(now))
        aggregates[f"n{rule.id}"] = Count("id", filter=since & Q(kind=PostingKind.SPEND, captured_hold__isnull=True))
        aggregates[f"e{rule.id}"] = Sum("points", filter=since & Q(kind=PostingKind.EARN))
    start = min(rule.since(now) for rule in rules)
    totals = Posting.objects.filter(wallet__member_id=member_id, created_at__gte=start).aggregate(**aggregates)
    holds = {}
    if count_holds:
        holds = Hold.objects.filter(wallet__member_id=member_id, created_at__gte=start).aggregate(**{
            f"h{rule.id}": Count("id", filter=Q(created_at__gte=rule.since(now))) for rule in rules
        })
    return {
        rule.id: {"redemptions": totals[f"n{rule.id}"] + (holds.get(f"h{rule.id}") or 0),
                  "earned": totals[f"e{rule.id}"] or 0}
        for rule in rules
    }

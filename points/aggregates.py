"""The dashboard's daily aggregates of the ledger: built, refreshed and reconciled here.

Three tables (points.models), each keyed by a **day**: the calendar day, in the group's time
zone, of the postings' `occurred_at` (so a backdated posting counts on the day it is dated):

* `LedgerDay` per (day, business unit, merchant, kind): postings, members, points credited and
  debited, the wallet and debt entries' sums, what operators posted, CNY amounts;
* `LotFlowDay` per (day, business unit, issuing BU, kind, rule): points credited to new lots and
  taken from or given back to lots (the liability by issuer, the earning rules' points);
* `MemberDay` per (day, business unit, merchant, kind, member): who was active on a day, from
  which `ActivityGap` (points.activity) is derived and recomputed with it, to count the active
  members of any window as a sum.

Apps above the ledger register daily aggregates of their own (`register_daily_aggregate`, e.g.
settlement's cross-BU flows): they are rebuilt, refreshed under the same watermark and
reconciled with these, by the same commands and job.

A day is always rebuilt whole: its rows are deleted and computed afresh from the ledger in one
transaction (`aggregates_rebuild`), so a rebuild is idempotent and may run for any range. The
beat job (`aggregates_refresh`) recomputes the days of the postings booked (`created_at`) since
its watermark, less `DASHBOARD_AGGREGATES_LAG_SECONDS`: a posting whose transaction was still
open when the last run read the ledger is booked before that run's watermark, and the lag
takes it in on the next run (a day recomputed twice is harmless). Every run locks the watermark
row, so overlapping runs and rebuilds take turns. `aggregates_mismatches` compares the stored
rows with the ledger's (the `verify_aggregates` command).
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from points.activity import activity_mismatches, activity_recompute
from points.models import (
    Account,
    AggregateWatermark,
    Entry,
    LedgerDay,
    Lot,
    LotFlowDay,
    LotMovement,
    MemberDay,
    Posting,
    Wallet,
)
from points.timeutils import group_timezone, local_date, start_of_local_day

WATERMARK = "dashboard"
# Days compared per pass by the reconcile (it holds one pass's member activity in memory).
CHUNK_DAYS = 92
BOOKED_BEFORE_DATED = timedelta(days=1)
LEDGER_MEASURES = ("postings", "members", "points_in", "points_out", "wallet_net", "debt_net", "manual_postings",
                   "manual_points_in", "amount_cny")


@dataclass(frozen=True)
class DailyAggregate:
    """Another app's aggregate by day. `rebuild(first, last)` recomputes the days first..last
    whole; `touched_days(since)` names the days of its source rows booked since an instant;
    `span()` the first and last day its source has rows for (None: none); `mismatches(first,
    last)` the days first..last whose stored rows differ from the source's."""

    label: str
    rebuild: Callable[[date, date], None]
    touched_days: Callable[[datetime], set[date]]
    span: Callable[[], tuple[date, date] | None]
    mismatches: Callable[[date, date], list[date]]


_registered: list[DailyAggregate] = []


def register_daily_aggregate(aggregate: DailyAggregate) -> None:
    """Keep `aggregate` with the ledger's (an app's ready() calls this once)."""
    if aggregate not in _registered:
        _registered.append(aggregate)


def _rebuild_whole(aggregate: DailyAggregate) -> None:
    if span := aggregate.span():
        aggregate.rebuild(*span)


def daily_aggregate_rebuild(aggregate: DailyAggregate) -> None:
    """Rebuild every day of one registered aggregate alone (its source changed by other means
    than postings), under the watermark's lock."""
    with transaction.atomic():
        _watermark_locked()
        _rebuild_whole(aggregate)


def _day(field: str) -> TruncDate:
    return TruncDate(field, tzinfo=group_timezone())


def _window(first: date, last: date, prefix: str = "", bounded: bool = False) -> Q:
    """Postings dated in the days first..last. `bounded` adds that they were booked at most
    BOOKED_BEFORE_DATED before the first day starts: true of every posting (none is dated later
    than it is booked, beyond the earn's clock skew), and it lets the job's few recent days be
    found through the booking-time index instead of a scan of the whole ledger."""
    start = start_of_local_day(first)
    q = Q(**{f"{prefix}occurred_at__gte": start, f"{prefix}occurred_at__lt": start_of_local_day(last + timedelta(days=1))})
    if bounded:
        q &= Q(**{f"{prefix}created_at__gte": start - BOOKED_BEFORE_DATED})
    return q


def ledger_day_rows(*, first: date, last: date, bounded: bool = False) -> dict[tuple, dict]:
    """LedgerDay's figures for the days first..last computed from the ledger, by
    (day, business unit id, merchant id, kind)."""
    rows: dict[tuple, dict] = {}
    postings = (
        Posting.objects.filter(_window(first, last, bounded=bounded)).annotate(d=_day("occurred_at"))
        .values("d", "business_unit_id", "merchant_id", "kind")
        .annotate(
            postings=Count("id"), members=Count("wallet_id", distinct=True),
            points_in=Sum("points", filter=Q(points__gt=0), default=0),
            points_out=Sum(-F("points"), filter=Q(points__lt=0), default=0),
            manual_postings=Count("id", filter=Q(actor__isnull=False)),
            manual_points_in=Sum("points", filter=Q(points__gt=0, actor__isnull=False), default=0),
            amount_cny=Sum("amount_cny", default=Decimal("0")),
        ).order_by()
    )
    for row in postings:
        key = (row.pop("d"), row.pop("business_unit_id"), row.pop("merchant_id"), row.pop("kind"))
        rows[key] = {**row, "wallet_net": 0, "debt_net": 0, "amount_cny": Decimal(row["amount_cny"]).quantize(Decimal("0.01"))}
    entries = (
        Entry.objects.filter(_window(first, last, "posting__", bounded), account__in=[Account.WALLET, Account.DEBT])
        .annotate(d=_day("posting__occurred_at"))
        .values("d", "posting__business_unit_id", "posting__merchant_id", "posting__kind")
        .annotate(wallet_net=Sum("amount", filter=Q(account=Account.WALLET), default=0),
                  debt_net=Sum("amount", filter=Q(account=Account.DEBT), default=0))
        .order_by()
    )
    for row in entries:
        key = (row["d"], row["posting__business_unit_id"], row["posting__merchant_id"], row["posting__kind"])
        rows[key]["wallet_net"] = row["wallet_net"]
        rows[key]["debt_net"] = row["debt_net"]
    return rows


def lot_flow_rows(*, first: date, last: date, bounded: bool = False) -> dict[tuple, int]:
    """LotFlowDay's points for the days first..last, by (day, business unit id, issuer id, kind,
    rule code): new lots at + their amount, movements at their signed amount (rule left empty)."""
    flows: dict[tuple, int] = defaultdict(int)
    credited = (
        Lot.objects.filter(_window(first, last, "posting__", bounded)).annotate(d=_day("posting__occurred_at"))
        .values_list("d", "posting__business_unit_id", "business_unit_id", "posting__kind", "rule_code")
        .annotate(points=Sum("amount")).order_by()
    )
    moved = (
        LotMovement.objects.filter(_window(first, last, "posting__", bounded)).annotate(d=_day("posting__occurred_at"))
        .values_list("d", "posting__business_unit_id", "lot__business_unit_id", "posting__kind")
        .annotate(points=Sum("amount")).order_by()
    )
    for *key, points in credited:
        flows[tuple(key)] += points
    for *key, points in moved:
        flows[(*key, "")] += points
    return {key: points for key, points in flows.items() if points}


def _member_days(first: date, last: date, bounded: bool = False):
    return (
        Posting.objects.filter(_window(first, last, bounded=bounded)).annotate(d=_day("occurred_at"))
        .values_list("d", "business_unit_id", "merchant_id", "kind", "wallet_id")
        .annotate(n=Count("id")).order_by()
    )


def member_day_rows(*, first: date, last: date, bounded: bool = False) -> dict[tuple, int]:
    """MemberDay's postings counts for the days first..last, by (day, BU id, merchant id, kind, wallet id)."""
    return {tuple(key): n for *key, n in _member_days(first, last, bounded)}


def _insert_member_days(first: date, last: date, bounded: bool) -> None:
    """MemberDay's rows, on PostgreSQL in one INSERT ... SELECT (they are about as many as the
    postings), elsewhere through the ORM."""
    if connection.vendor == "postgresql":
        select, params = _member_days(first, last, bounded).query.sql_with_params()
        table = MemberDay._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (day, business_unit_id, merchant_id, kind, wallet_id, postings) "
                f"SELECT d, business_unit_id, merchant_id, kind, wallet_id, n FROM ({select}) AS cells", params
            )
        return
    MemberDay.objects.bulk_create(
        (MemberDay(day=d, business_unit_id=bu, merchant_id=m, kind=kind, wallet_id=w, postings=n)
         for d, bu, m, kind, w, n in _member_days(first, last, bounded).iterator()),
        batch_size=2000,
    )


def _rebuild_days(first: date, last: date, bounded: bool = False) -> int:
    for model in (LedgerDay, LotFlowDay, MemberDay):
        model.objects.filter(day__gte=first, day__lte=last).delete()
    ledger = [
        LedgerDay(day=d, business_unit_id=bu, merchant_id=m, kind=kind, **figures)
        for (d, bu, m, kind), figures in ledger_day_rows(first=first, last=last, bounded=bounded).items()
    ]
    LedgerDay.objects.bulk_create(ledger, batch_size=2000)
    LotFlowDay.objects.bulk_create(
        [LotFlowDay(day=d, business_unit_id=bu, issuer_id=issuer, kind=kind, rule_code=rule, points=points)
         for (d, bu, issuer, kind, rule), points in lot_flow_rows(first=first, last=last, bounded=bounded).items()],
        batch_size=2000,
    )
    _insert_member_days(first, last, bounded)
    return len(ledger)


def _chunks(first: date, last: date):
    while first <= last:
        end = min(last, first + timedelta(days=CHUNK_DAYS - 1))
        yield first, end
        first = end + timedelta(days=1)


def _watermark_locked() -> AggregateWatermark:
    AggregateWatermark.objects.get_or_create(name=WATERMARK)
    return AggregateWatermark.objects.select_for_update().get(name=WATERMARK)


def ledger_days() -> tuple[date, date] | None:
    """The first and last day with a posting, or None for an empty ledger."""
    span = Posting.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    if span["first"] is None:
        return None
    return local_date(span["first"]), local_date(span["last"])


def aggregates_rebuild(*, first: date, last: date) -> int:
    """Recompute every aggregate of the days first..last (inclusive) from the ledger, in one
    transaction and one pass over the ledger's tables, and the active members' gaps of every
    day from `first` on. Returns the LedgerDay rows written."""
    with transaction.atomic():
        _watermark_locked()
        written = _rebuild_days(first, last)
        activity_recompute(since=first)
        for aggregate in _registered:
            aggregate.rebuild(first, last)
        return written


def aggregates_rebuild_all() -> int:
    """Rebuild every day of the ledger and move the watermark to now."""
    now = timezone.now()
    with transaction.atomic():
        mark = _watermark_locked()
        span = ledger_days()
        written = _rebuild_days(*span) if span else 0
        activity_recompute(since=None)
        for aggregate in _registered:
            _rebuild_whole(aggregate)
        mark.booked_before = now
        mark.save(update_fields=["booked_before", "updated_at"])
    return written


@dataclass
class Refresh:
    days: list[date]
    rows: int


def _runs(days: list[date]):
    """Consecutive days as (first, last) ranges."""
    run_start = previous = None
    for day in days:
        if previous is not None and day == previous + timedelta(days=1):
            previous = day
            continue
        if run_start is not None:
            yield run_start, previous
        run_start = previous = day
    if run_start is not None:
        yield run_start, previous


def aggregates_refresh(*, now: datetime | None = None) -> Refresh:
    """The beat job's work: recompute the days touched by postings booked since the watermark
    (less the lag), then move the watermark to `now`; the first run builds every day."""
    now = now or timezone.now()
    lag = timedelta(seconds=settings.DASHBOARD_AGGREGATES_LAG_SECONDS)
    with transaction.atomic():
        mark = _watermark_locked()
        if mark.booked_before is None:
            span = ledger_days()
            days = [span[0] + timedelta(days=n) for n in range((span[1] - span[0]).days + 1)] if span else []
        else:
            days = sorted(set(
                Posting.objects.filter(created_at__gte=mark.booked_before - lag).annotate(d=_day("occurred_at"))
                .values_list("d", flat=True).distinct().order_by()
            ))
        rows = sum(_rebuild_days(first, last, bounded=True) for first, last in _runs(days))
        if days:
            activity_recompute(since=None if mark.booked_before is None else days[0])
        for aggregate in _registered:
            if mark.booked_before is None:
                _rebuild_whole(aggregate)
                continue
            for first, last in _runs(sorted(aggregate.touched_days(mark.booked_before - lag))):
                aggregate.rebuild(first, last)
        mark.booked_before = now
        mark.save(update_fields=["booked_before", "updated_at"])
    return Refresh(days=days, rows=rows)


def _stored_ledger(first: date, last: date) -> dict[tuple, dict]:
    return {
        (row.pop("day"), row.pop("business_unit_id"), row.pop("merchant_id"), row.pop("kind")): row
        for row in LedgerDay.objects.filter(day__gte=first, day__lte=last)
        .values("day", "business_unit_id", "merchant_id", "kind", *LEDGER_MEASURES)
    }


def _stored_flows(first: date, last: date) -> dict[tuple, int]:
    return {
        tuple(key): points for *key, points in LotFlowDay.objects.filter(day__gte=first, day__lte=last)
        .values_list("day", "business_unit_id", "issuer_id", "kind", "rule_code", "points")
    }


def _stored_members(first: date, last: date) -> dict[tuple, int]:
    return {
        tuple(key): n for *key, n in MemberDay.objects.filter(day__gte=first, day__lte=last)
        .values_list("day", "business_unit_id", "merchant_id", "kind", "wallet_id", "postings")
    }


def _differing_days(stored: dict, fresh: dict) -> set[date]:
    return {key[0] for key in set(stored) | set(fresh) if stored.get(key) != fresh.get(key)}


def aggregates_mismatches(*, first: date | None = None, last: date | None = None) -> list[str]:
    """What differs between the stored aggregates and the ledger, one message per day and table
    (empty when they agree). Without a range: every day, and the totals against the wallets and
    lots as they are now."""
    whole = first is None and last is None
    stored_span = LedgerDay.objects.aggregate(first=Min("day"), last=Max("day"))
    spans = [s for s in (ledger_days(), (stored_span["first"], stored_span["last"])) if s and s[0]]
    if not spans:
        return []
    first = first or min(s[0] for s in spans)
    last = last or max(s[1] for s in spans)
    problems: list[str] = []
    for start, end in _chunks(first, last):
        for table, stored, fresh in (
            ("ledger figures", _stored_ledger(start, end), ledger_day_rows(first=start, last=end)),
            ("lot flows", _stored_flows(start, end), lot_flow_rows(first=start, last=end)),
            ("member activity", _stored_members(start, end), member_day_rows(first=start, last=end)),
        ):
            problems += [f"{day:%Y-%m-%d}: the {table} differ from the ledger's"
                         for day in sorted(_differing_days(stored, fresh))]
    problems += [f"{day:%Y-%m-%d}: the active members' gaps differ from the member activity"
                 for day in activity_mismatches(first=first, last=last)]
    for aggregate in _registered:
        own = aggregate.span() if whole else (first, last)
        if own:
            problems += [f"{day:%Y-%m-%d}: the {aggregate.label} differ from their source"
                         for day in aggregate.mismatches(min(own[0], first), max(own[1], last))]
    if whole and not problems:
        problems += _total_problems()
    return problems


def _total_problems() -> list[str]:
    problems = []
    wallets = Wallet.objects.aggregate(balance=Sum("balance", default=0), debt=Sum("debt", default=0))
    sums = LedgerDay.objects.aggregate(wallet=Sum("wallet_net", default=0), debt=Sum("debt_net", default=0))
    if sums["wallet"] != wallets["balance"]:
        problems.append(f"the wallets' balances {wallets['balance']} != the days' wallet changes {sums['wallet']}")
    if -sums["debt"] != wallets["debt"]:
        problems.append(f"the wallets' debt {wallets['debt']} != minus the days' debt changes {-sums['debt']}")
    remaining = dict(Lot.objects.values("business_unit_id").annotate(s=Sum("remaining")).values_list("business_unit_id", "s"))
    flowed = dict(LotFlowDay.objects.values("issuer_id").annotate(s=Sum("points")).values_list("issuer_id", "s"))
    for bu_id in sorted(set(remaining) | set(flowed)):
        if remaining.get(bu_id, 0) != flowed.get(bu_id, 0):
            problems.append(f"business unit {bu_id}: lots' remaining points {remaining.get(bu_id, 0)} != "
                            f"the days' lot flows {flowed.get(bu_id, 0)}")
    return problems

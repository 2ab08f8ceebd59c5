"""Active members of any window as a sum over small rows, not a distinct count over many.

A member is active in a window first..last when one of its days falls in the window. Counting
them means a distinct count over every member-day of the window (millions of rows for a year at
full scale). Instead each member-day remembers the member's previous active day in the same
scope, and the rows are summed by (scope, day, previous day) into `ActivityGap`: the members
active in first..last are those of its days whose previous day falls before `first` (or who
were never active before), so the count is a sum over at most one row per pair of days.

The gaps are derived from `MemberDay` (points.aggregates) and recomputed with it: a rebuild of
the days from `since` on recomputes every gap of a day from `since` on, reading the whole
history of the members active since then (their earlier days give their first gap). Active
means a posting of `DASHBOARD_ACTIVE_MEMBER_KINDS`: after changing that setting, rebuild.
"""

from datetime import date

from django.conf import settings
from django.db import connection
from django.db.models import F, Min, Q, Sum, Value
from django.db.models.functions import Greatest, TruncMonth, TruncWeek

from members.models import BusinessUnit, Merchant
from points.models import ActivityGap, MemberDay

WHOLE_GROUP = ""
# Each scope: its key in SQL (as text) and the columns of a member-day that make it (NULL: none).
SCOPES = (("''", ()), ("'bu:' || business_unit_id", ("business_unit_id",)), ("'bu_kind:' || bu_kind", ("bu_kind",)),
          ("'merchant:' || merchant_id", ("merchant_id",)))


def activity_scope(*, business_unit_id: int | None = None, bu_kind: str = "", merchant_id: int | None = None) -> str | None:
    """The scope a dashboard filter counts active members in; None when the filters exclude each
    other (a merchant of another business unit, a business unit of another kind)."""
    if merchant_id:
        merchant = Merchant.objects.select_related("business_unit").filter(pk=merchant_id).first()
        if merchant is None or (business_unit_id and merchant.business_unit_id != business_unit_id) or (
            bu_kind and merchant.business_unit.kind != bu_kind
        ):
            return None
        return f"merchant:{merchant_id}"
    if business_unit_id:
        if bu_kind and not BusinessUnit.objects.filter(pk=business_unit_id, kind=bu_kind).exists():
            return None
        return f"bu:{business_unit_id}"
    if bu_kind:
        return f"bu_kind:{bu_kind}"
    return WHOLE_GROUP


def _gaps_select(since: date | None) -> tuple[str, list]:
    """SELECT scope, day, previous_day, members: the gaps of every day from `since` on (every
    day when None), computed from MemberDay. The active member-days are read once (`history`:
    those of the members active since `since`, in one scan), then each scope
    numbers its own days with small integer keys, not text. (An index of a wallet's member-days
    would save the recent members' history one scan but cost the build much more.)"""
    kinds = list(settings.DASHBOARD_ACTIVE_MEMBER_KINDS)
    marks = ", ".join(["%s"] * len(kinds))
    member_days, units = MemberDay._meta.db_table, BusinessUnit._meta.db_table
    touched, params, after = "", [*kinds], ""
    if since is not None:
        touched = f"AND m.wallet_id IN (SELECT wallet_id FROM {member_days} WHERE day >= %s AND kind IN ({marks}))"
        params += [since, *kinds]
    history = (
        f"SELECT m.wallet_id, m.day, m.business_unit_id, m.merchant_id, b.kind AS bu_kind FROM {member_days} m "
        f"LEFT JOIN {units} b ON b.id = m.business_unit_id WHERE m.kind IN ({marks}) {touched}"
    )
    scopes = " UNION ALL ".join(
        f"SELECT {key} AS scope, day, LAG(day) OVER (PARTITION BY {', '.join(('wallet_id', *columns))} ORDER BY day)"
        f" AS previous_day FROM (SELECT DISTINCT {', '.join(('wallet_id', *columns, 'day'))} FROM history"
        f"{''.join(f' WHERE {column} IS NOT NULL' for column in columns)}) AS days"
        for key, columns in SCOPES
    )
    if since is not None:
        after = "WHERE day >= %s"
        params.append(since)
    sql = (
        f"WITH history AS ({history}) SELECT scope, day, previous_day, COUNT(*) AS members FROM ({scopes}) AS gaps "
        f"{after} GROUP BY scope, day, previous_day"
    )
    return sql, params


def activity_recompute(*, since: date | None) -> None:
    """Replace the gaps of every day from `since` on (all of them when None) with those of the
    member-days as they are now. The caller holds the aggregates' watermark lock."""
    gaps = ActivityGap.objects.all() if since is None else ActivityGap.objects.filter(day__gte=since)
    gaps.delete()
    select, params = _gaps_select(since)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One sort of every member-day when rebuilding everything: let it happen in memory.
            cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(
            f"INSERT INTO {ActivityGap._meta.db_table} (scope, day, previous_day, members) "
            f"SELECT scope, day, previous_day, members FROM ({select}) AS fresh", params
        )


def activity_mismatches(*, first: date, last: date) -> list[date]:
    """The days first..last whose stored gaps differ from those computed from MemberDay."""
    earliest = MemberDay.objects.aggregate(day=Min("day"))["day"]
    select, params = _gaps_select(None if earliest is None or first <= earliest else first)
    table = ActivityGap._meta.db_table
    stored = f"SELECT scope, day, previous_day, members FROM {table} WHERE day >= %s AND day <= %s"
    fresh = f"SELECT * FROM ({select}) AS fresh WHERE day <= %s"
    missing = f"SELECT * FROM ({fresh}) AS f1 EXCEPT SELECT * FROM ({stored}) AS s1"
    extra = f"SELECT * FROM ({stored}) AS s2 EXCEPT SELECT * FROM ({fresh}) AS f2"
    sql = (
        f"SELECT DISTINCT day FROM (SELECT * FROM ({missing}) AS missing UNION SELECT * FROM ({extra}) AS extra)"
        " AS differing ORDER BY day"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, last, first, last, first, last, *params, last])
        return [day if isinstance(day, date) else date.fromisoformat(day) for (day,) in cursor.fetchall()]


def _returning(first) -> Q:
    """Gap rows of members not active before `first` (an expression or a date)."""
    return Q(previous_day__isnull=True) | Q(previous_day__lt=first)


def active_members(*, scope: str | None, first: date, last: date) -> int:
    """Distinct members active in the days first..last in `scope` (0 for None)."""
    if scope is None:
        return 0
    return ActivityGap.objects.filter(_returning(first), scope=scope, day__gte=first, day__lte=last).aggregate(
        n=Sum("members", default=0)
    )["n"]


def active_members_by_period(*, scope: str | None, first: date, last: date, bucket: str) -> dict[date, int]:
    """Distinct members active in each day, week (from Monday) or month of first..last, the
    first period cut at `first`; keyed by the period's first day (as the buckets' truncation)."""
    if scope is None:
        return {}
    period = {"day": F("day"), "week": TruncWeek("day"), "month": TruncMonth("day")}[bucket]
    starts = Greatest(F("period"), Value(first))
    rows = (
        ActivityGap.objects.filter(scope=scope, day__gte=first, day__lte=last).annotate(period=period)
        .values("period").annotate(n=Sum("members", filter=_returning(starts), default=0)).values_list("period", "n")
    )
    return {(period.date() if hasattr(period, "date") else period): n for period, n in rows}

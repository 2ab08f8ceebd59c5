"""Outstanding liability per issuing BU as of any instant, with aging buckets.

Points outstanding at an instant are the lots' remaining points as of then: each lot's amount
plus its movements, counting only postings booked before the instant (as the reconciliation
does). They are split into:

* **available** (available_at <= as of) and **pending** (not yet available); **held** is the part
  reserved by holds, known for the present only (a hold's reservation has no history), so it is
  shown when the date asked for is today and otherwise left empty;
* **aging by time to expiry** (days from the as-of date to the lot's expiry, in the group's time
  zone): 0-30, 31-90, 91-180, 181-365 and over 365 days. Time to expiry, not lot age, because it
  is what the breakage forecast needs: the points of the first bucket are the ones about to
  expire. Expiry is the lot's current one (an activity extension moves it later).
* their **value** in CNY at the BU's clearing value on the as-of day, and the **expected
  breakage rate** from history: the BU's breakage over its issuance in the closed runs of the
  twelve months before the as-of date (none without closed runs).
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from members.models import BusinessUnit
from points.models import Lot
from points.timeutils import local_date, start_of_local_day
from settlement.models import LineKind, RunStatus, SettlementLine
from settlement.periods import CENT, cny
from settlement.selectors import clearing_rate

BUCKETS = ((0, 30, "0-30"), (31, 90, "31-90"), (91, 180, "91-180"), (181, 365, "181-365"), (366, None, ">365"))

OUTSTANDING_SQL = """
SELECT l.business_unit_id, l.available_at <= %(at)s AS available, l.expires_at,
       SUM(l.amount + COALESCE(m.moved, 0)) AS points
FROM points_lot l
JOIN points_posting p ON p.id = l.posting_id AND p.created_at < %(at)s
LEFT JOIN (
    SELECT mv.lot_id, SUM(mv.amount) AS moved FROM points_lotmovement mv
    JOIN points_posting mp ON mp.id = mv.posting_id AND mp.created_at < %(at)s
    GROUP BY mv.lot_id
) m ON m.lot_id = l.id
WHERE l.expires_at >= %(at)s
GROUP BY l.business_unit_id, l.available_at <= %(at)s, l.expires_at
HAVING SUM(l.amount + COALESCE(m.moved, 0)) <> 0
"""


@dataclass
class LiabilityRow:
    business_unit: BusinessUnit
    rate_cny: Decimal
    available: int = 0
    pending: int = 0
    held: int | None = None
    buckets: dict[str, int] = field(default_factory=lambda: {label: 0 for *_r, label in BUCKETS})
    expected_breakage_rate: Decimal | None = None

    @property
    def points(self) -> int:
        return self.available + self.pending

    @property
    def value_cny(self) -> Decimal:
        return cny(self.points, self.rate_cny)


def bucket_of(days: int) -> str:
    for low, high, label in BUCKETS:
        if days >= low and (high is None or days <= high):
            return label
    return BUCKETS[0][2]


def liability_report(*, as_of: date, now: datetime | None = None) -> list[LiabilityRow]:
    """Per issuing BU, ordered by code: the points outstanding at the end of `as_of` (a local
    date; now, for today or later), split and aged as the module docstring says. Lots already
    expired at that instant but not yet swept by the expiry job are not outstanding."""
    now = now or timezone.now()
    at = min(start_of_local_day(as_of + timedelta(days=1)), now)
    day = local_date(at)
    rows: dict[int, LiabilityRow] = {}
    units = {unit.pk: unit for unit in BusinessUnit.objects.all()}

    def row_of(bu_id: int) -> LiabilityRow:
        if bu_id not in rows:
            rows[bu_id] = LiabilityRow(business_unit=units[bu_id], rate_cny=clearing_rate(business_unit_id=bu_id, day=day))
        return rows[bu_id]

    with connection.cursor() as cursor:
        cursor.execute(OUTSTANDING_SQL, {"at": at})
        for bu_id, available, expires_at, points in cursor.fetchall():
            row = row_of(bu_id)
            if available:
                row.available += points
            else:
                row.pending += points
            expires_day = local_date(expires_at) if isinstance(expires_at, datetime) else expires_at
            row.buckets[bucket_of((expires_day - day).days)] += points
    if at == now:
        for bu_id, held in Lot.objects.filter(held__gt=0).values("business_unit_id").annotate(s=Sum("held")) \
                .values_list("business_unit_id", "s"):
            row_of(bu_id).held = held
        for row in rows.values():
            row.held = row.held or 0
    rates = expected_breakage_rates(before=as_of)
    for bu_id, row in rows.items():
        row.expected_breakage_rate = rates.get(bu_id)
    return sorted(rows.values(), key=lambda row: row.business_unit.code)


def expected_breakage_rates(*, before: date) -> dict[int, Decimal]:
    """Per BU: breakage (net of reversals) over issuance in the closed runs of the twelve months
    before `before`, as a fraction to four places."""
    first = before.replace(day=1) - relativedelta(months=12)
    totals = (
        SettlementLine.objects.filter(run__status=RunStatus.CLOSED, run__period__gte=first, run__period__lt=before,
                                      kind__in=[LineKind.ISSUANCE, LineKind.BREAKAGE, LineKind.BREAKAGE_REVERSAL])
        .values("payer_id", "kind").annotate(points=Sum("points")).values_list("payer_id", "kind", "points")
    )
    issued: dict[int, int] = {}
    broken: dict[int, int] = {}
    for bu_id, kind, points in totals:
        if kind == LineKind.ISSUANCE:
            issued[bu_id] = issued.get(bu_id, 0) + points
        else:
            sign = -1 if kind == LineKind.BREAKAGE_REVERSAL else 1
            broken[bu_id] = broken.get(bu_id, 0) + sign * points
    return {
        bu_id: (Decimal(broken.get(bu_id, 0)) / Decimal(points)).quantize(CENT * CENT)
        for bu_id, points in issued.items() if points > 0
    }

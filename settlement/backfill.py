"""Clearing lines for postings that have none.

The after-post hook (settlement.hooks) writes a posting's clearing lines inside its transaction.
A ledger whose history was written before the settlement app was installed (an upgrade) or by
hand (the benchmark's generator and raw-ceiling scripts) has postings without them, so its
months cannot tie. `record_missing_clearing_lines` gives every such posting the lines the hook
would have written, in batches of posting ids:

- spends, captures, expiries, debit adjustments and repayments (no original to read a frozen
  rate from, no lots of their own): one set-based INSERT ... SELECT per batch, valued at the
  issuer's clearing rate in force on the posting's local booking day, as the hook values them;
- cancels, refunds and received transfers (few: they read their original's lines or their own
  lots): the hook itself, posting by posting, in id order, after the batch's set-based part, so
  an original always has its lines before the posting that reverses it.

A posting that already has a line is left alone, and ON CONFLICT keeps a line from being written
twice by a concurrent run. Lines dated inside a closed settlement period would change a closed
month, so the backfill refuses while any run is closed. The dashboard's flow days are rebuilt
after it, since its lines are booked on their postings' old days.
"""

from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction

from points.aggregates import daily_aggregate_rebuild
from points.models import Posting, PostingKind
from settlement.flow_days import FLOW_DAYS
from settlement.hooks import KINDS, record_clearing
from settlement.models import ClearingLine, RunStatus, SettlementRun

SET_BASED_KINDS = (PostingKind.SPEND, PostingKind.EXPIRE, PostingKind.ADJUST, PostingKind.REPAY)
ONE_BY_ONE_KINDS = tuple(kind for kind in KINDS if kind not in SET_BASED_KINDS)

SET_BASED_SQL = """
INSERT INTO settlement_clearingline
    (posting_id, kind, issuer_id, redeemer_id, merchant_id, points, rate_cny, amount_cny, created_at)
SELECT x.posting_id, x.line_kind, x.bu, x.redeemer, x.merchant, x.points, rate.value, ROUND(x.points * rate.value, 2),
       x.created_at
FROM (
    SELECT p.id AS posting_id,
           CASE p.kind WHEN 'spend' THEN 'redemption' WHEN 'expire' THEN 'breakage'
                       WHEN 'adjust' THEN 'adjustment' ELSE 'reclaim' END AS line_kind,
           l.business_unit_id AS bu, p.business_unit_id AS redeemer, p.merchant_id AS merchant,
           -SUM(m.amount) AS points, p.created_at
    FROM points_posting p
    JOIN points_lotmovement m ON m.posting_id = p.id
    JOIN points_lot l ON l.id = m.lot_id
    WHERE p.id >= %(first)s AND p.id < %(after)s AND p.kind = ANY(%(kinds)s)
      AND NOT (p.kind = 'adjust' AND p.points > 0)
      AND NOT EXISTS (SELECT 1 FROM settlement_clearingline c WHERE c.posting_id = p.id)
    GROUP BY p.id, l.business_unit_id
    HAVING SUM(m.amount) <> 0
) x
JOIN members_businessunit b ON b.id = x.bu
CROSS JOIN LATERAL (
    SELECT COALESCE(
        (SELECT r.value_cny FROM settlement_clearingrate r
         WHERE r.business_unit_id = x.bu AND r.effective_from <= (x.created_at AT TIME ZONE %(tz)s)::date
         ORDER BY r.effective_from DESC LIMIT 1),
        b.point_value_cny) AS value
) rate
ON CONFLICT (posting_id, issuer_id, kind) DO NOTHING
"""


class ClosedRunExists(RuntimeError):
    """Backfilled lines would land in a closed month."""


def record_missing_clearing_lines(*, batch_size: int = 200_000,
                                  progress: Callable[[int, int], None] | None = None) -> int:
    """Write the clearing lines of every posting that has none; the number of lines written.
    `progress(last posting id done, lines so far)` is called after each batch."""
    if SettlementRun.objects.filter(status=RunStatus.CLOSED).exists():
        raise ClosedRunExists("a settlement run is closed: backfilled lines would change a closed month")
    bounds = Posting.objects.order_by().values_list("id", flat=True)
    first, last = bounds.order_by("id").first(), bounds.order_by("-id").first()
    if first is None:
        return 0
    written = 0
    for start in range(first, last + 1, batch_size):
        written += _backfill_batch(first=start, after=start + batch_size)
        if progress:
            progress(min(start + batch_size - 1, last), written)
    if written:
        daily_aggregate_rebuild(FLOW_DAYS)
    return written


@transaction.atomic
def _backfill_batch(*, first: int, after: int) -> int:
    written = 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(SET_BASED_SQL, {"first": first, "after": after, "tz": settings.TIME_ZONE,
                                           "kinds": [kind.value for kind in SET_BASED_KINDS]})
            written += cursor.rowcount
        one_by_one = ONE_BY_ONE_KINDS
    else:
        one_by_one = tuple(KINDS)
    postings = (Posting.objects.filter(id__gte=first, id__lt=after, kind__in=one_by_one)
                .exclude(id__in=ClearingLine.objects.values("posting_id")).order_by("id"))
    for posting in postings.iterator(chunk_size=2000):
        record_clearing(posting=posting, wallet=None)
        written += ClearingLine.objects.filter(posting_id=posting.pk).count()
    return written

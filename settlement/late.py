"""Late postings: booked after an earlier period's run was closed, but dated in that period.

A posting belongs to the period it was booked in, so a closed run never changes; a posting
dated into a closed period (a backdated earn, a refund or cancel of a posting of that period)
is counted in the period it was booked in, like any other, and also gets a **late** line naming
the closed period (`original_period`) and the posting it corrects (`original_posting_id`: the
reversed posting, or the late posting itself), with what it moved: per issuing BU, the points it
took from or gave back to lots (its clearing lines, + taken) or the lots it issued (an earn or a
credit adjustment, + issued), valued as its lines are. A late line is a note for finance: the
figures of its posting are already in this run's other lines, so it moves no liability.

"Dated in": a reversal in the period its original was booked in; any other posting in the period
of its `occurred_at`.
"""

from collections.abc import Callable
from datetime import date
from decimal import Decimal

from django.db.models import Q, Sum

from points.models import Lot, Posting
from settlement.models import ClearingLine, LineKind, RunStatus, SettlementLine, SettlementRun, SourceKind
from settlement.periods import cny, period_bounds, period_of


def late_postings(*, period: date) -> list[tuple[Posting, date]]:
    """(posting, closed period it is dated in) for the postings booked in `period` after the run of
    the period they are dated in was closed. A posting booked before that close is not late: the
    run did not include it either (booking time decides), and whether it is late never changes."""
    start, end = period_bounds(period)
    closed = dict(SettlementRun.objects.filter(status=RunStatus.CLOSED, period__lt=period.replace(day=1))
                  .values_list("period", "closed_at"))
    if not closed:
        return []
    candidates = (
        Posting.objects.filter(created_at__gte=start, created_at__lt=end)
        .filter(Q(reverses__created_at__lt=start) | Q(reverses__isnull=True, occurred_at__lt=start))
        .select_related("reverses").order_by("id")
    )
    found = []
    for posting in candidates.iterator():
        dated = period_of(posting.reverses.created_at if posting.reverses_id else posting.occurred_at)
        if dated in closed and posting.created_at > closed[dated]:
            found.append((posting, dated))
    return found


def late_lines(*, period: date, rate: Callable[[int], Decimal]) -> list[SettlementLine]:
    lines = []
    for posting, dated in late_postings(period=period):
        moved = {
            issuer_id: (points, amount)
            for issuer_id, points, amount in ClearingLine.objects.filter(posting=posting).values("issuer_id")
            .annotate(points=Sum("points"), amount=Sum("amount_cny")).values_list("issuer_id", "points", "amount")
        }
        for bu_id, points in (Lot.objects.filter(posting=posting).values("business_unit_id").annotate(s=Sum("amount"))
                              .values_list("business_unit_id", "s")):
            if not posting.reverses_id:  # an earn's lots; a cancel's re-granted lots are in its clearing lines
                moved[bu_id] = (points, cny(points, rate(bu_id)))
        for bu_id, (points, amount) in sorted(moved.items()):
            lines.append(SettlementLine(
                kind=LineKind.LATE, payer_id=bu_id,
                payee_id=posting.business_unit_id if posting.business_unit_id not in (None, bu_id) else None,
                points=points, amount_cny=amount, source=SourceKind.POSTING, source_count=1,
                first_source_id=posting.pk, last_source_id=posting.pk, original_period=dated,
                original_posting_id=posting.reverses_id or posting.pk,
            ))
    return lines

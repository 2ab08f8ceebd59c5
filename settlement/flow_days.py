"""The dashboard's cross-BU flow by day (FlowDay), kept with the ledger's daily aggregates.

Registered with points.aggregates (settlement.apps), so `rebuild_aggregates`, `verify_aggregates`
and the aggregates' beat job rebuild, reconcile and refresh it with theirs. A day is the local
booking day (`created_at`) of its clearing lines, the day the settlement matrix counts them in,
and is always rebuilt whole from them. Lines are written with their posting, so the days the job
refreshes are those of the postings booked since its watermark; lines written later for old
postings (`record_clearing_lines`) rebuild their own days.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Max, Min, Sum
from django.db.models.functions import TruncDate

from points.aggregates import DailyAggregate
from points.timeutils import group_timezone, local_date, start_of_local_day
from settlement.models import ClearingKind, ClearingLine, FlowDay

FLOW_KINDS = (ClearingKind.REDEMPTION, ClearingKind.REVERSAL)


def _lines(first: date, last: date):
    return ClearingLine.objects.filter(
        created_at__gte=start_of_local_day(first), created_at__lt=start_of_local_day(last + timedelta(days=1)),
        kind__in=FLOW_KINDS, redeemer__isnull=False,
    )


def flow_day_rows(*, first: date, last: date) -> dict[tuple, tuple[int, Decimal]]:
    """FlowDay's cells for the days first..last computed from the clearing lines: (points, CNY)
    by (day, issuer id, redeemer id, merchant id), cells that net to nothing left out."""
    cells = (
        _lines(first, last).annotate(day=TruncDate("created_at", tzinfo=group_timezone()))
        .values_list("day", "issuer_id", "redeemer_id", "merchant_id")
        .annotate(points=Sum("points"), amount=Sum("amount_cny")).order_by()
    )
    return {tuple(key): (points, amount) for *key, points, amount in cells if points or amount}


def flow_days_rebuild(first: date, last: date) -> None:
    """Recompute the days first..last whole (the caller holds the aggregates' watermark lock)."""
    FlowDay.objects.filter(day__gte=first, day__lte=last).delete()
    FlowDay.objects.bulk_create(
        (FlowDay(day=day, issuer_id=issuer, redeemer_id=redeemer, merchant_id=merchant, points=points, amount_cny=amount)
         for (day, issuer, redeemer, merchant), (points, amount) in flow_day_rows(first=first, last=last).items()),
        batch_size=2000,
    )


def _touched_days(since: datetime) -> set[date]:
    booked = ClearingLine.objects.filter(created_at__gte=since).aggregate(first=Min("created_at"), last=Max("created_at"))
    if booked["first"] is None:
        return set()
    first, last = local_date(booked["first"]), local_date(booked["last"])
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


def _span() -> tuple[date, date] | None:
    lines = ClearingLine.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    stored = FlowDay.objects.aggregate(first=Min("day"), last=Max("day"))
    days = [local_date(moment) for moment in (lines["first"], lines["last"]) if moment]
    days += [day for day in (stored["first"], stored["last"]) if day]
    return (min(days), max(days)) if days else None


def flow_days_mismatches(first: date, last: date) -> list[date]:
    stored = {
        (day, issuer, redeemer, merchant): (points, amount)
        for day, issuer, redeemer, merchant, points, amount in FlowDay.objects.filter(day__gte=first, day__lte=last)
        .values_list("day", "issuer_id", "redeemer_id", "merchant_id", "points", "amount_cny")
    }
    fresh = flow_day_rows(first=first, last=last)
    return sorted({key[0] for key in set(stored) | set(fresh) if stored.get(key) != fresh.get(key)})


FLOW_DAYS = DailyAggregate(
    label="cross-BU flows", rebuild=flow_days_rebuild, touched_days=_touched_days, span=_span,
    mismatches=flow_days_mismatches,
)

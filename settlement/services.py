"""Writes of settlement: a period's run (create or recompute a draft) and its close.

State machine draft -> closed, forward only: closing is a conditional UPDATE
(`WHERE status = 'draft'`) with an event row in the same transaction, so of two operators
closing at once exactly one wins; the other is told the run is closed. A closed run and its lines
are immutable in the database (triggers in settlement.models).
"""

from datetime import date, datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.errors import DomainError
from settlement.models import RunEvent, RunStatus, SettlementLine, SettlementRun
from settlement.selectors import compute_lines, period_bounds


class RunClosed(DomainError):
    status_code = 409
    code = "settlement_run_closed"
    default_detail = _("This settlement run is closed: its lines can no longer change.")


class PeriodNotEnded(DomainError):
    status_code = 409
    code = "settlement_period_not_ended"
    default_detail = _("The period has not ended yet: its run can be closed from the first day of the next month.")


def settlement_run_compute(*, period: date, actor=None, now: datetime | None = None) -> SettlementRun:
    """Create the draft run of `period` (any day of the month) or recompute its lines; refused
    (RunClosed) for a closed period."""
    period = period.replace(day=1)
    now = now or timezone.now()
    with transaction.atomic():
        run, created = SettlementRun.objects.get_or_create(period=period)
        run = SettlementRun.objects.select_for_update().get(pk=run.pk)
        if run.status == RunStatus.CLOSED:
            raise RunClosed()
        run.lines.all().delete()
        lines = compute_lines(period=period)
        for line in lines:
            line.run = run
        SettlementLine.objects.bulk_create(lines)
        SettlementRun.objects.filter(pk=run.pk, status=RunStatus.DRAFT).update(computed_at=now)
        RunEvent.objects.create(run=run, action="create" if created else "recompute", from_status=RunStatus.DRAFT,
                                to_status=RunStatus.DRAFT, actor=actor)
        run.refresh_from_db()
    return run


def settlement_run_close(*, run_id: int, actor=None, now: datetime | None = None) -> SettlementRun:
    """Close a draft run whose period has ended: its lines are final. A second close is refused
    (RunClosed); so is closing a period that has not ended (PeriodNotEnded)."""
    now = now or timezone.now()
    with transaction.atomic():
        run = SettlementRun.objects.get(pk=run_id)
        if now < period_bounds(run.period)[1]:
            raise PeriodNotEnded()
        moved = SettlementRun.objects.filter(pk=run_id, status=RunStatus.DRAFT).update(
            status=RunStatus.CLOSED, closed_at=now, closed_by=actor
        )
        if not moved:
            raise RunClosed()
        RunEvent.objects.create(run_id=run_id, action="close", from_status=RunStatus.DRAFT,
                                to_status=RunStatus.CLOSED, actor=actor)
    return SettlementRun.objects.get(pk=run_id)

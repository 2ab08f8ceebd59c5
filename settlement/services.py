"""Writes of settlement: a period's run (create or recompute a draft) and its close.

State machine draft -> closed, forward only: closing is a conditional UPDATE
(`WHERE status = 'draft'`) with an event row in the same transaction, so of two operators
closing at once exactly one wins; the other is told the run is closed. A closed run and its lines
are immutable in the database (triggers in settlement.models).

Background exports (ExportJob) move queued -> running -> done or failed, each move a conditional
UPDATE on the current status.
"""

import logging
import tempfile
from datetime import date, datetime

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.errors import DomainError
from settlement.exports import export_rows, write_export
from settlement.models import ExportJob, ExportStatus, RunEvent, RunStatus, SettlementLine, SettlementRun
from settlement.selectors import compute_lines, period_bounds

logger = logging.getLogger(__name__)


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


def export_request(*, run: SettlementRun, content: str, format: str, actor=None) -> ExportJob:
    """Queue a background export of a run (settlement.tasks.export_write, sent on commit)."""
    from settlement.tasks import export_write

    with transaction.atomic():
        job = ExportJob.objects.create(run=run, content=content, format=format, requested_by=actor)
        transaction.on_commit(lambda: export_write.delay(job.pk))
    return job


def export_job_write(*, job_id: int, batch_size: int = 2000, now: datetime | None = None) -> ExportJob:
    """Write a queued export to the default storage: queued -> running (a conditional UPDATE, so
    a redelivered task does nothing twice), progress after every batch, then done with its file
    (or failed with the error). A job not queued is returned as it is."""
    if not ExportJob.objects.filter(pk=job_id, status=ExportStatus.QUEUED).update(status=ExportStatus.RUNNING):
        return ExportJob.objects.get(pk=job_id)
    job = ExportJob.objects.select_related("run").get(pk=job_id)
    total = export_rows(job).count()
    ExportJob.objects.filter(pk=job_id).update(rows_total=total)

    def progress(rows: int) -> None:
        ExportJob.objects.filter(pk=job_id, status=ExportStatus.RUNNING).update(rows_done=min(rows, total))

    try:
        with tempfile.TemporaryFile() as out:
            write_export(job, out, batch_size=batch_size, progress=progress)
            out.seek(0)
            name = default_storage.save(f"settlement/exports/{job.run.period:%Y-%m}-{job.content}-{job.pk}.{job.format}",
                                        File(out))
    except Exception as error:  # noqa: BLE001 - the job records any failure for the console
        logger.exception("settlement export %s failed", job_id)
        ExportJob.objects.filter(pk=job_id, status=ExportStatus.RUNNING).update(
            status=ExportStatus.FAILED, error=str(error)[:500], finished_at=now or timezone.now())
        return ExportJob.objects.get(pk=job_id)
    ExportJob.objects.filter(pk=job_id, status=ExportStatus.RUNNING).update(
        status=ExportStatus.DONE, file=name, rows_done=total, finished_at=now or timezone.now())
    return ExportJob.objects.get(pk=job_id)

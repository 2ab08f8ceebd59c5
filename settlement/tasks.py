"""Celery tasks of settlement: thin, idempotent, calling services."""

import logging

from celery import shared_task

from config.jobs import job_batch

from settlement.models import RunStatus
from settlement.selectors import previous_period, run_for_period
from settlement.services import export_job_write, settlement_run_compute

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def create_monthly_draft(period: str | None = None) -> int | None:
    """Create (or recompute) the draft run of the month just ended (or `period`, YYYY-MM-DD);
    a period already closed is left as it is. Returns the run's id, None when it was closed."""
    from datetime import date

    month = date.fromisoformat(period) if period else previous_period()
    existing = run_for_period(period=month)
    if existing and existing.status == RunStatus.CLOSED:
        logger.info("settlement run %s is closed: left as it is", month)
        return None
    with job_batch("settlement.monthly_draft", period=month.isoformat()) as batch:
        run = settlement_run_compute(period=month)
        batch.rows = run.lines.count()
    return run.pk


@shared_task(acks_late=True)
def export_write(job_id: int) -> str:
    """Write a queued settlement export (settlement.services.export_job_write); its status."""
    return export_job_write(job_id=job_id).status

"""Risk control's beat job: thin, idempotent, batched; the work is in riskcontrol.services."""

import logging

from celery import shared_task

from config.jobs import job_batch

from riskcontrol.services import risk_housekeeping as housekeeping

logger = logging.getLogger(__name__)


@shared_task
def risk_housekeeping() -> dict[str, int]:
    """Lift freezes past their end, expire requests past their date, keep held points held.
    Each step moves each row at most once (conditional writes), so overlapping runs do nothing
    twice; whatever a batch leaves is the next run's."""
    with job_batch("riskcontrol.housekeeping") as batch:
        done = housekeeping()
        batch.rows = sum(done.values())
    if any(done.values()):
        logger.info("risk housekeeping: %s", done)
    return done

"""Celery tasks of statements and reminders (re-exported by points.tasks, where celery finds
them): thin, batched, idempotent, each re-queuing itself with its cursor while work remains.

Every run fixes what it works on when it starts (the period, the run day) and passes it to
every batch, so a run that crosses midnight, a retried batch or an overlapping run works on
the same thing and, through the unique keys, writes and sends nothing twice.
"""

import logging
from datetime import date

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from config.jobs import job_batch
from points.statements.credited import points_credited_queue
from points.statements.periods import period_last_closed, period_parse
from points.statements.reminders import expiry_reminders_batch, upgrade_nudges_batch, winback_batch
from points.statements.services import PeriodNotOver, statements_generate_batch
from points.timeutils import local_date

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def generate_statements(self, period: str | None = None, cursor: int = 0, requeues: int = 0) -> int:
    """Generate the statements of `period` ("YYYY-MM"; beat calls without it on the 1st: the
    month just ended), one batch of members per call. Returns the statements created."""
    run_period = period_parse(period) if period else period_last_closed(timezone.now())
    kwargs = {"period": run_period.name, "cursor": cursor, "requeues": requeues}
    if cursor == 0 and requeues == 0:
        logger.info("statements run %s started", run_period)
    try:
        with job_batch("statements.generate", batch=requeues + 1, cursor=cursor, period=run_period.name) as job:
            batch = statements_generate_batch(period=run_period, after_member_id=cursor)
            job.rows = batch.created
    except PeriodNotOver:
        logger.error("statements run %s refused: the month has not ended", run_period)
        return 0
    except Exception as exc:
        logger.exception("statements %s failed in the batch after member %s", run_period, cursor)
        raise self.retry(exc=exc, kwargs=kwargs)
    if batch.cursor is not None and requeues < settings.POINTS_EXPIRY_MAX_REQUEUES:
        generate_statements.apply_async(kwargs={**kwargs, "cursor": batch.cursor, "requeues": requeues + 1})
    elif batch.cursor is not None:
        logger.error("statements run %s stopped with members left after %s; a rerun continues", run_period, batch.cursor)
    else:
        logger.info("statements run %s finished", run_period)
    return batch.created


def _run_day(day: str | None) -> date:
    return date.fromisoformat(day) if day else local_date(timezone.now())


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def send_expiry_reminders(
    self, day: str | None = None, offset: int | None = None, cursor: int = 0, requeues: int = 0
) -> int:
    """The expiry reminders of the run day (beat, daily), each offset of
    NOTIFICATIONS_EXPIRY_REMINDER_DAYS a chain of batches of its own. Returns the messages queued."""
    run_day = _run_day(day)
    if offset is None:
        for each in settings.NOTIFICATIONS_EXPIRY_REMINDER_DAYS:
            send_expiry_reminders.apply_async(kwargs={"day": run_day.isoformat(), "offset": each})
        return 0
    kwargs = {"day": run_day.isoformat(), "offset": offset, "cursor": cursor, "requeues": requeues}
    try:
        with job_batch("statements.expiry_reminders", batch=requeues + 1, cursor=cursor, offset=offset) as job:
            batch = expiry_reminders_batch(run_day=run_day, offset=offset, after_wallet_id=cursor)
            job.rows = batch.messages
    except Exception as exc:
        logger.exception("expiry reminders %s (+%s days) failed after wallet %s", run_day, offset, cursor)
        raise self.retry(exc=exc, kwargs=kwargs)
    if batch.cursor is not None and requeues < settings.POINTS_EXPIRY_MAX_REQUEUES:
        send_expiry_reminders.apply_async(kwargs={**kwargs, "cursor": batch.cursor, "requeues": requeues + 1})
    return batch.messages


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def send_upgrade_nudges(self, day: str | None = None, cursor: int = 0, requeues: int = 0) -> int:
    """Near-upgrade nudges for the members who earned the day before (beat, daily)."""
    run_day = _run_day(day)
    kwargs = {"day": run_day.isoformat(), "cursor": cursor, "requeues": requeues}
    try:
        with job_batch("statements.upgrade_nudges", batch=requeues + 1, cursor=cursor) as job:
            batch = upgrade_nudges_batch(run_day=run_day, after_member_id=cursor)
            job.rows = batch.messages
    except Exception as exc:
        logger.exception("upgrade nudges %s failed after member %s", run_day, cursor)
        raise self.retry(exc=exc, kwargs=kwargs)
    if batch.cursor is not None and requeues < settings.POINTS_EXPIRY_MAX_REQUEUES:
        send_upgrade_nudges.apply_async(kwargs={**kwargs, "cursor": batch.cursor, "requeues": requeues + 1})
    return batch.messages


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def send_winback(self, day: str | None = None, cursor: int = 0, requeues: int = 0) -> int:
    """Win-back messages for dormant members (beat, daily; at most once a month per member)."""
    run_day = _run_day(day)
    kwargs = {"day": run_day.isoformat(), "cursor": cursor, "requeues": requeues}
    try:
        with job_batch("statements.winback", batch=requeues + 1, cursor=cursor) as job:
            batch = winback_batch(run_day=run_day, after_wallet_id=cursor)
            job.rows = batch.messages
    except Exception as exc:
        logger.exception("win-back %s failed after wallet %s", run_day, cursor)
        raise self.retry(exc=exc, kwargs=kwargs)
    if batch.cursor is not None and requeues < settings.POINTS_EXPIRY_MAX_REQUEUES:
        send_winback.apply_async(kwargs={**kwargs, "cursor": batch.cursor, "requeues": requeues + 1})
    return batch.messages


@shared_task(bind=True, max_retries=5, default_retry_delay=60, acks_late=True)
def notify_points_credited(self, posting_id: int) -> int:
    """Queue the "points credited" message of one earn (handed over when the earn commits)."""
    try:
        return points_credited_queue(posting_id=posting_id)
    except Exception as exc:
        logger.exception("points credited message of posting %s failed", posting_id)
        raise self.retry(exc=exc)

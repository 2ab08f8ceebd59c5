"""Celery tasks of notifications: thin, idempotent (the log row's claim), calling services."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from config.jobs import job_batch

from members.notifications.models import NotificationStatus
from members.notifications.selectors import logs_due
from members.notifications.services import (
    NotificationFailed,
    notification_deliver,
    notification_give_up,
    notifications_mark_dispatched,
)

logger = logging.getLogger(__name__)


def retry_delay(retries: int) -> int:
    """Seconds before the next attempt: NOTIFICATIONS_RETRY_BACKOFF_SECONDS doubling per failure, capped."""
    return min(settings.NOTIFICATIONS_RETRY_BACKOFF_SECONDS * 2**retries, settings.NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS)


@shared_task(bind=True, max_retries=None, acks_late=True)
def notification_send(self, log_id: int) -> str | None:
    """Send one notification row; a failed send is retried with exponential backoff until the
    row has had 1 + NOTIFICATIONS_MAX_RETRIES attempts (counted on the row, whoever made them),
    then the row is marked failed. Sending twice is impossible: the row is claimed before the
    send (a redelivered or duplicate task finds it claimed)."""
    try:
        return notification_deliver(log_id=log_id)
    except NotificationFailed as exc:
        if exc.attempts > settings.NOTIFICATIONS_MAX_RETRIES:
            notification_give_up(log_id=log_id)
            logger.error("notification %s failed %d times, given up: %s", log_id, exc.attempts, exc)
            return NotificationStatus.FAILED
        raise self.retry(exc=exc, countdown=retry_delay(exc.attempts - 1))


@shared_task(acks_late=True)
def notifications_dispatch_due() -> int:
    """The sweep (beat, every 5 minutes): hand the queued rows whose time has come (SMS held
    over quiet hours, sends lost before a worker took them), and retrying rows whose retry was
    lost (older than the longest backoff), to the send task, in batches of
    NOTIFICATIONS_DISPATCH_BATCH_SIZE; a row handed over is not handed again for
    NOTIFICATIONS_REDISPATCH_SECONDS. Returns the rows handed over."""
    now = timezone.now()
    dispatched_before = now - timedelta(seconds=settings.NOTIFICATIONS_REDISPATCH_SECONDS)
    handed, cursor, number = 0, 0, 1
    while True:
        with job_batch("notifications.dispatch", batch=number, cursor=cursor) as batch:
            due = logs_due(now=now, dispatched_before=dispatched_before, after_id=cursor,
                           retrying_before=now - timedelta(seconds=settings.NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS
                                                           + settings.NOTIFICATIONS_REDISPATCH_SECONDS),
                           limit=settings.NOTIFICATIONS_DISPATCH_BATCH_SIZE)
            if due:
                notifications_mark_dispatched(log_ids=due, now=now)
                for log_id in due:
                    notification_send.delay(log_id)
            batch.rows = len(due)
        if not due:
            return handed
        handed, cursor, number = handed + len(due), due[-1], number + 1

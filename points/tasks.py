"""Celery tasks of the ledger: thin, batched, idempotent; the work is in points.earning,
points.expiry and points.ledger."""

import logging
from datetime import date, datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from config.jobs import job_batch
from points.aggregates import aggregates_refresh
from points.earning import points_birthday_awards
from points.expiry import expiry_partitions, expiry_run_batch
from points.imports.models import ImportStatus
from points.imports.services import member_import_fail, member_import_run
from points.ledger import holds_release_expired
from points.partitioning import ledger_partitions_extend
from points.timeutils import local_date

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def expire_points(
    self, now: str | None = None, cursor: int = 0, requeues: int = 0, written: int = 0, through: int | None = None
) -> int:
    """Expire due lots, one batch of wallets per call, re-queuing itself while work remains.

    `now` is fixed when the run starts (beat calls without it) and passed along to every
    batch, so all the run's postings share one idempotency time: a retried or overlapping
    batch replays instead of expiring twice. The call that starts a run (no cursor, no range)
    splits the wallets into POINTS_EXPIRY_PARTITIONS ranges, queues a chain for each range but
    the first and goes on with the first itself; every chain stops at its range's end
    (`through`). On a worker each batch is a task of its own; run eagerly, one call loops
    through its chain's batches. Returns the postings written by the batches of this call.
    """
    run_at = datetime.fromisoformat(now) if now else timezone.now()
    if cursor == 0 and requeues == 0 and through is None:
        ranges = expiry_partitions(now=run_at, count=settings.POINTS_EXPIRY_PARTITIONS)
        for after, last in ranges[1:]:
            expire_points.apply_async(kwargs={"now": run_at.isoformat(), "cursor": after, "through": last})
        through = ranges[0][1]
        logger.info("points expiry run %s started in %d ranges of wallets", run_at.isoformat(), len(ranges))
    span = "" if through is None else f" (wallets up to {through})"
    this_call = 0
    while True:
        try:
            with job_batch("points.expiry", batch=requeues + 1, cursor=cursor, through=through) as batch:
                batch_written, next_cursor = expiry_run_batch(now=run_at, after_wallet_id=cursor,
                                                              through_wallet_id=through)
                batch.rows = batch_written
        except Exception as exc:
            logger.exception("points expiry run %s failed in the batch after wallet %s", run_at.isoformat(), cursor)
            raise self.retry(exc=exc, kwargs={"now": run_at.isoformat(), "cursor": cursor, "requeues": requeues,
                                              "written": written, "through": through})
        this_call += batch_written
        written += batch_written
        if next_cursor is None:
            logger.info("points expiry run %s finished%s: %d postings in %d batches", run_at.isoformat(), span,
                        written, requeues + 1)
            break
        if requeues >= settings.POINTS_EXPIRY_MAX_REQUEUES:
            logger.error(
                "points expiry run %s%s stopped after %d batches with work left after wallet %s; the next run continues",
                run_at.isoformat(), span, requeues + 1, next_cursor,
            )
            break
        if not _runs_eagerly(self):
            expire_points.apply_async(kwargs={
                "now": run_at.isoformat(), "cursor": next_cursor, "requeues": requeues + 1, "written": written,
                "through": through,
            })
            break
        cursor, requeues = next_cursor, requeues + 1
    return this_call


def _runs_eagerly(task) -> bool:
    """Whether this call runs in the caller's process (CELERY_TASK_ALWAYS_EAGER, or `apply()`):
    a chain then goes on in a loop, since re-queuing would recurse once per batch and end in a
    RecursionError that the eager result reports as success."""
    return bool(task.request.is_eager or task.app.conf.task_always_eager)


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def award_birthdays(self, day: str | None = None, cursor: int = 0, requeues: int = 0) -> int:
    """Post the birthday event for the members born today, one batch per call, re-queuing
    itself while work remains. `day` is fixed when the run starts and passed to every batch, so
    a run that crosses midnight still awards one day. Returns the events posted by this batch."""
    run_day = date.fromisoformat(day) if day else local_date(timezone.now())
    total = 0
    while True:
        try:
            with job_batch("points.birthdays", batch=requeues + 1, cursor=cursor) as batch:
                posted, next_cursor = points_birthday_awards(day=run_day, after_member_id=cursor)
                batch.rows = posted
        except Exception as exc:
            logger.exception("birthday awards of %s failed in the batch after member %s", run_day, cursor)
            raise self.retry(exc=exc, kwargs={"day": run_day.isoformat(), "cursor": cursor, "requeues": requeues})
        total += posted
        if next_cursor is None:
            break
        if requeues >= settings.POINTS_EXPIRY_MAX_REQUEUES:
            logger.error("birthday awards of %s stopped with members left after %s", run_day, next_cursor)
            break
        if not _runs_eagerly(self):
            award_birthdays.apply_async(kwargs={"day": run_day.isoformat(), "cursor": next_cursor,
                                                "requeues": requeues + 1})
            break
        cursor, requeues = next_cursor, requeues + 1
    return total


@shared_task(bind=True, max_retries=3, default_retry_delay=30, acks_late=True)
def release_expired_holds(self, now: str | None = None, requeues: int = 0) -> int:
    """The holds sweep (beat, every minute): release the holds past their expiry, one batch of
    wallets per call, re-queuing itself while work remains. A hold is released once whoever
    runs: the sweep re-reads each hold under its wallet's lock. Returns the holds released
    (by every batch of the call, when it runs eagerly and loops)."""
    run_at = datetime.fromisoformat(now) if now else timezone.now()
    total = 0
    while True:
        try:
            with job_batch("points.holds_sweep", batch=requeues + 1) as batch:
                released, more = holds_release_expired(now=run_at)
                batch.rows = released
        except Exception as exc:
            logger.exception("holds sweep %s failed", run_at.isoformat())
            raise self.retry(exc=exc, kwargs={"now": run_at.isoformat(), "requeues": requeues})
        total += released
        if not more:
            break
        if requeues >= settings.POINTS_EXPIRY_MAX_REQUEUES:
            logger.error("holds sweep %s stopped with holds left; the next run continues", run_at.isoformat())
            break
        if not _runs_eagerly(self):
            release_expired_holds.apply_async(kwargs={"now": run_at.isoformat(), "requeues": requeues + 1})
            break
        requeues += 1
    return total


@shared_task(acks_late=True)
def refresh_dashboard_aggregates() -> int:
    """Recompute the dashboard's daily aggregates of the days touched since the last run
    (points.aggregates); idempotent, and overlapping runs take turns on the watermark's lock."""
    with job_batch("points.dashboard_aggregates") as batch:
        done = aggregates_refresh()
        batch.rows = done.rows
    logger.info("dashboard aggregates: %d days recomputed, %d rows", len(done.days), done.rows)
    return len(done.days)


# The statement and reminder jobs live in points.statements; imported here, where celery finds
# the points app's tasks. Their names stay points.statements.tasks.<name>.
from points.statements.tasks import (  # noqa: E402,F401
    generate_statements,
    notify_points_credited,
    send_expiry_reminders,
    send_upgrade_nudges,
    send_winback,
)


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def member_import(self, import_id: int) -> str:
    """Run a member import (points.imports) MEMBER_IMPORT_TASK_CHUNKS chunks at a time,
    re-queuing itself while rows remain. Every chunk moves the import's cursor in its own
    transaction, so a retried or re-delivered call goes on where the last one stopped."""
    try:
        done = member_import_run(import_id=import_id, max_chunks=settings.MEMBER_IMPORT_TASK_CHUNKS)
    except Exception as exc:
        logger.exception("member import %s failed; retrying from its cursor", import_id)
        if self.request.retries >= self.max_retries:
            member_import_fail(import_id=import_id, failure=repr(exc))
            raise
        raise self.retry(exc=exc)
    if done.status == ImportStatus.RUNNING:
        member_import.delay(import_id)
    else:
        logger.info("member import %s %s: %d rows, %d created, %d updated, %d unchanged, %d refused", import_id,
                    done.status, done.rows_done, done.created, done.updated, done.skipped, done.error_count)
    return done.status


@shared_task(acks_late=True)
def extend_ledger_partitions() -> int:
    """Create the partitions of this month and the POINTS_PARTITION_MONTHS_AHEAD next ones that a
    partitioned ledger lacks (beat, daily); nothing on an unpartitioned one. Idempotent: a rerun
    creates nothing. Returns the partitions created."""
    with job_batch("points.partitions") as batch:
        created = ledger_partitions_extend(months_ahead=settings.POINTS_PARTITION_MONTHS_AHEAD)
        batch.rows = len(created)
    if created:
        logger.info("ledger partitions created: %s", ", ".join(created))
    return len(created)

"""Celery tasks of the mall: thin, batched, idempotent; the work is in mall.services."""

import logging
from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from config.jobs import job_batch

from mall.services import coupons_expire_batch
from mall.services_payments import payments_settle_lapsed

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def expire_coupons(self, now: str | None = None, cursor: int = 0, requeues: int = 0) -> int:
    """The daily coupon expiry (beat): expire the coupons past their validity, one batch per call,
    re-queuing itself while work remains, up to MALL_EXPIRY_MAX_REQUEUES. `now` is fixed when the
    run starts and passed to every batch. Each coupon moves in its own transaction under a
    conditional update, so a rerun or an overlapping run expires nothing twice (and gives no
    points back twice: the ledger posting carries the key `mall-expire:<coupon id>`). Returns the
    coupons expired by this batch."""
    run_at = datetime.fromisoformat(now) if now else timezone.now()
    try:
        with job_batch("mall.coupon_expiry", batch=requeues + 1, cursor=cursor) as batch:
            expired, next_cursor = coupons_expire_batch(now=run_at, after_id=cursor)
            batch.rows = expired
    except Exception as exc:
        logger.exception("coupon expiry %s failed in the batch after coupon %s", run_at.isoformat(), cursor)
        raise self.retry(exc=exc, kwargs={"now": run_at.isoformat(), "cursor": cursor, "requeues": requeues})
    if next_cursor is not None and requeues < settings.MALL_EXPIRY_MAX_REQUEUES:
        expire_coupons.apply_async(kwargs={"now": run_at.isoformat(), "cursor": next_cursor, "requeues": requeues + 1})
    elif next_cursor is not None:
        logger.error("coupon expiry %s stopped with coupons left after %s; the next run continues",
                     run_at.isoformat(), next_cursor)
    return expired


@shared_task(bind=True, max_retries=3, default_retry_delay=30, acks_late=True)
def settle_lapsed_payments(self, now: str | None = None, requeues: int = 0) -> int:
    """The payments sweep (beat, every minute, after the holds sweep has released their holds):
    write the `expired` (or `voided`) move of authorised payments whose hold is no longer live,
    one batch of MALL_EXPIRY_BATCH_SIZE per call, re-queuing itself while a batch was full, up to
    MALL_EXPIRY_MAX_REQUEUES. Each payment moves once, in its own transaction under its wallet
    and row locks. Returns the payments moved by this batch."""
    run_at = datetime.fromisoformat(now) if now else timezone.now()
    try:
        moved, more = payments_settle_lapsed(now=run_at, batch_size=settings.MALL_EXPIRY_BATCH_SIZE)
    except Exception as exc:
        logger.exception("payments sweep %s failed", run_at.isoformat())
        raise self.retry(exc=exc, kwargs={"now": run_at.isoformat(), "requeues": requeues})
    if more and requeues < settings.MALL_EXPIRY_MAX_REQUEUES:
        settle_lapsed_payments.apply_async(kwargs={"now": run_at.isoformat(), "requeues": requeues + 1})
    elif more:
        logger.error("payments sweep %s stopped with payments left; the next run continues", run_at.isoformat())
    return moved

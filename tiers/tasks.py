"""The daily requalification job: thin, batched, re-queued while members remain."""

import logging
from datetime import datetime

from celery import shared_task
from django.utils import timezone

from config.jobs import job_batch

from tiers.services import tier_requalify_batch

logger = logging.getLogger(__name__)

MAX_REQUEUES = 1000


@shared_task
def tiers_requalify(now: str | None = None, after_member_id: int = 0, requeues: int = 0) -> int:
    """Requalify one batch of members, then queue the next batch with the same `now`, so the
    whole run judges every member at one instant and a rerun changes nothing twice."""
    moment = datetime.fromisoformat(now) if now else timezone.now()
    with job_batch("tiers.requalify", batch=requeues + 1, cursor=after_member_id) as batch:
        done, cursor = tier_requalify_batch(now=moment, after_member_id=after_member_id)
        batch.rows = done
    if cursor is not None:
        if requeues < MAX_REQUEUES:
            tiers_requalify.delay(moment.isoformat(), cursor, requeues + 1)
        else:
            logger.error("tier requalification stopped after %s batches at member %s", requeues + 1, cursor)
    return done

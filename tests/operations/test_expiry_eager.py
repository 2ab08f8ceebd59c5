"""The expiry chain run eagerly (CELERY_TASK_ALWAYS_EAGER): it loops through its batches instead
of recursing once per batch, so a run of more batches than the recursion limit allows finishes."""

import logging
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from points.earning import points_earn
from points.models import Lot, Posting, PostingKind
from points.tasks import expire_points
from tests.factories import enrol_member


@pytest.fixture
def eager(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


def test_an_eager_run_of_more_batches_than_the_recursion_limit_expires_every_due_lot(eager, settings, bu, monkeypatch,
                                                                                    ledger_sound, caplog):
    settings.POINTS_EXPIRY_PARTITIONS = 1
    settings.POINTS_EXPIRY_BATCH_SIZE = 1
    wallets = 120
    # A recursion limit that 120 nested task calls (several frames each) exceed, well above
    # what one call needs.
    limit = sys.getrecursionlimit()
    long_ago = timezone.now() - timedelta(days=400)
    members = [enrol_member() for _ in range(wallets)]
    for member in members:
        points_earn(member_id=member.pk, business_unit=bu, points=10, occurred_at=long_ago, max_backdate=None)
    sys.setrecursionlimit(len(_stack()) + 250)
    try:
        with caplog.at_level(logging.INFO, logger="points.tasks"):
            result = expire_points.delay()
    finally:
        sys.setrecursionlimit(limit)
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == wallets
    assert not Lot.objects.filter(remaining__gt=0).exists()
    assert result.successful(), result.traceback
    assert result.get() == wallets, "one call ran the whole chain"
    assert f"finished: {wallets} postings in" in caplog.text
    ledger_sound()


def test_an_eager_run_still_stops_at_the_requeue_bound(eager, settings, bu, caplog):
    settings.POINTS_EXPIRY_PARTITIONS = 1
    settings.POINTS_EXPIRY_BATCH_SIZE = 1
    settings.POINTS_EXPIRY_MAX_REQUEUES = 2
    long_ago = timezone.now() - timedelta(days=400)
    for member in [enrol_member() for _ in range(5)]:
        points_earn(member_id=member.pk, business_unit=bu, points=10, occurred_at=long_ago, max_backdate=None)
    with caplog.at_level(logging.ERROR, logger="points.tasks"):
        assert expire_points.delay().get() == 3
    assert "stopped after 3 batches" in caplog.text
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 3


def _stack():
    frames, frame = [], sys._getframe()
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames

"""The expiry task, run eagerly: batched, re-queued with a cursor, one `now` for the whole run."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app as celery_app
from points import tasks
from points.expiry import expiry_run_batch
from points.models import Lot, Posting, PostingKind
from points.earning import points_earn
from points.tasks import expire_points
from tests.factories import enrol_member


@pytest.fixture
def eager(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


@pytest.fixture
def expired_wallets(bu):
    """Three members whose points expired a month ago, and one whose points are still valid."""
    long_ago = timezone.now() - timedelta(days=400)
    members = [enrol_member() for _ in range(4)]
    for member in members[:3]:
        points_earn(member_id=member.pk, business_unit=bu, points=250, occurred_at=long_ago, max_backdate=None)
    points_earn(member_id=members[3].pk, business_unit=bu, points=90)
    return members


def test_run_walks_every_batch_with_one_now_and_expires_once(eager, settings, expired_wallets, ledger_sound):
    settings.POINTS_EXPIRY_BATCH_SIZE = 1
    now = timezone.now()
    expire_points.delay(now=now.isoformat())
    expiries = Posting.objects.filter(kind=PostingKind.EXPIRE)
    assert sorted(expiries.values_list("wallet__member", flat=True)) == sorted(m.pk for m in expired_wallets[:3])
    assert set(expiries.values_list("occurred_at", flat=True)) == {now}
    assert set(expiries.values_list("points", flat=True)) == {-250}
    expire_points.delay(now=now.isoformat())
    expire_points.delay()
    assert expiries.count() == 3
    assert Lot.objects.filter(wallet__member=expired_wallets[3]).get().remaining == 90
    ledger_sound()


def test_run_stops_at_the_requeue_limit_and_says_so(eager, settings, expired_wallets, caplog):
    settings.POINTS_EXPIRY_PARTITIONS = 1
    settings.POINTS_EXPIRY_BATCH_SIZE = 1
    settings.POINTS_EXPIRY_MAX_REQUEUES = 1
    with caplog.at_level(logging.ERROR, logger="points.tasks"):
        expire_points.delay()
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 2
    assert "stopped after 2 batches" in caplog.text
    expire_points.delay()
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 3


@pytest.mark.django_db
def test_daily_expiry_is_scheduled_in_beat_in_the_group_time_zone():
    task = PeriodicTask.objects.get(name="Expire points (daily)")
    assert task.task == "points.tasks.expire_points" and task.task in celery_app.tasks
    assert task.enabled
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, str(crontab.timezone)) == ("10", "0", "Asia/Shanghai")


def test_failed_batch_is_logged_and_retried_with_the_same_now(eager, settings, expired_wallets, monkeypatch, caplog):
    settings.POINTS_EXPIRY_PARTITIONS = 1
    calls = []

    def flaky_batch(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return expiry_run_batch(**kwargs)

    monkeypatch.setattr(tasks, "expiry_run_batch", flaky_batch)
    now = timezone.now()
    with caplog.at_level(logging.ERROR, logger="points.tasks"):
        expire_points.apply(kwargs={"now": now.isoformat()})
    assert "failed in the batch after wallet 0" in caplog.text
    assert [call["now"] for call in calls] == [now, now]
    assert Posting.objects.filter(kind=PostingKind.EXPIRE, occurred_at=now).count() == 3


def test_a_run_splits_into_chains_over_disjoint_ranges_of_wallets(eager, settings, bu, ledger_sound, caplog):
    settings.POINTS_EXPIRY_PARTITIONS = 3
    settings.POINTS_EXPIRY_BATCH_SIZE = 2
    long_ago = timezone.now() - timedelta(days=400)
    members = [enrol_member() for _ in range(10)]
    for member in members:
        points_earn(member_id=member.pk, business_unit=bu, points=40, occurred_at=long_ago, max_backdate=None)
    now = timezone.now()
    with caplog.at_level(logging.INFO, logger="points.tasks"):
        expire_points.delay(now=now.isoformat())
    expiries = Posting.objects.filter(kind=PostingKind.EXPIRE)
    assert sorted(expiries.values_list("wallet__member", flat=True)) == sorted(m.pk for m in members)
    assert set(expiries.values_list("occurred_at", flat=True)) == {now}
    assert f"points expiry run {now.isoformat()} started in 3 ranges" in caplog.text
    assert caplog.text.count(f"points expiry run {now.isoformat()} finished") == 3
    ledger_sound()


def test_a_retried_first_batch_does_not_split_the_run_again(eager, settings, expired_wallets, monkeypatch):
    settings.POINTS_EXPIRY_PARTITIONS = 2
    splits, calls = [], []
    real_split = tasks.expiry_partitions

    def counted_split(**kwargs):
        splits.append(kwargs)
        return real_split(**kwargs)

    def first_range_fails_once(**kwargs):
        calls.append(kwargs)
        if kwargs["after_wallet_id"] == 0 and len([c for c in calls if c["after_wallet_id"] == 0]) == 1:
            raise ConnectionError("database went away")
        return expiry_run_batch(**kwargs)

    monkeypatch.setattr(tasks, "expiry_partitions", counted_split)
    monkeypatch.setattr(tasks, "expiry_run_batch", first_range_fails_once)
    expire_points.apply(kwargs={"now": timezone.now().isoformat()})
    assert len(splits) == 1
    first_range = [call for call in calls if call["after_wallet_id"] == 0]
    assert len(first_range) == 2, "the first range's batch failed once and was retried"
    assert first_range[0]["through_wallet_id"] == first_range[1]["through_wallet_id"] is not None
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 3

"""The platform's own metrics at /metrics (config.metrics) and the one log line per job batch
(config.jobs): postings by kind counted on commit, job batches and tasks measured, the holds
outstanding and the queue lengths collected when /metrics is scraped."""

import logging
import os
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import redis
from django.db import transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config.jobs import job_batch
from config.metrics import postings_committed
from points.earning import points_earn
from points.ledger import Idempotency, hold_place
from points.services import points_spend
from points.tasks import release_expired_holds


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db(transaction=True)
def test_postings_are_counted_by_kind_when_they_commit_and_never_when_rolled_back(client, bu, member):
    before = scrape(client)
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("50"), idempotency=Idempotency("pos", "e1"))
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("50"), idempotency=Idempotency("pos", "e2"))
    points_spend(member_id=member.pk, business_unit=bu, points=10, idempotency=Idempotency("pos", "s1"))
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        postings_committed(["earn"])  # as the writer does, in a transaction that then rolls back
        1 / 0
    after = scrape(client)
    assert value(after, "points_postings_total", kind="earn") - value(before, "points_postings_total", kind="earn") == 2
    assert value(after, "points_postings_total", kind="spend") - value(before, "points_postings_total", kind="spend") == 1


def test_holds_outstanding_are_collected_at_scrape_time(client, bu, member):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100"))
    hold_place(member_id=member.pk, points=30, business_unit=bu, purpose="pos_bill", idempotency=Idempotency("pos", "h1"))
    hold_place(member_id=member.pk, points=5, business_unit=bu, purpose="pos_bill", expires_in=timedelta(seconds=1),
               idempotency=Idempotency("pos", "h2"))
    from points.models import Hold

    Hold.objects.filter(points=5).update(expires_at=timezone.now() - timedelta(minutes=1))
    samples = scrape(client)
    assert value(samples, "points_holds_outstanding", state="live") == 1
    assert value(samples, "points_holds_outstanding_points", state="live") == 30
    assert value(samples, "points_holds_outstanding", state="expired") == 1
    assert value(samples, "points_holds_outstanding_points", state="expired") == 5


@pytest.fixture
def redis_broker(settings):
    base = os.environ.get("TEST_REDIS_URL")
    if not base:
        pytest.skip("TEST_REDIS_URL is not set")
    settings.CELERY_BROKER_URL = base
    settings.CELERY_TASK_DEFAULT_QUEUE = f"points-metrics-{uuid.uuid4().hex}"
    settings.METRICS_QUEUES = [f"{settings.CELERY_TASK_DEFAULT_QUEUE}-slow"]
    client = redis.Redis.from_url(base)
    yield client
    client.delete(settings.CELERY_TASK_DEFAULT_QUEUE, *settings.METRICS_QUEUES)
    client.close()


def test_queue_lengths_are_read_from_the_broker_at_scrape_time(client, db, redis_broker, settings):
    redis_broker.rpush(settings.CELERY_TASK_DEFAULT_QUEUE, "a", "b", "c")
    samples = scrape(client)
    assert value(samples, "points_queue_length", queue=settings.CELERY_TASK_DEFAULT_QUEUE) == 3
    assert ("points_queue_length", (("queue", settings.METRICS_QUEUES[0]),)) in samples


def test_an_unreachable_broker_leaves_the_queue_lengths_out_and_the_rest_served(client, db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    samples = scrape(client)
    assert not any(name == "points_queue_length" for name, _labels in samples)
    assert any(name == "points_holds_outstanding" for name, _labels in samples)


def job_lines(caplog, name: str) -> list[dict]:
    return [record.job for record in caplog.records if record.name == "points.jobs" and record.job["name"] == name]


def test_a_job_logs_one_line_per_batch_and_is_measured(client, bu, member, caplog, settings):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100"))
    for key in ("h1", "h2"):
        hold_place(member_id=member.pk, points=10, business_unit=bu, purpose="pos_bill", idempotency=Idempotency("pos", key))
    before = scrape(client)
    with caplog.at_level(logging.INFO, logger="points.jobs"):
        released = release_expired_holds.apply(kwargs={"now": (timezone.now() + timedelta(days=30)).isoformat()}).get()
    assert released == 2
    [line] = job_lines(caplog, "points.holds_sweep")
    assert (line["batch"], line["rows"], line["outcome"]) == (1, 2, "ok")
    assert line["duration_ms"] >= 0
    after = scrape(client)
    job = "points.holds_sweep"
    assert value(after, "points_job_batch_duration_seconds_count", job=job) == \
        value(before, "points_job_batch_duration_seconds_count", job=job) + 1
    assert value(after, "points_job_batch_rows_total", job=job) == value(before, "points_job_batch_rows_total", job=job) + 2
    task = "points.tasks.release_expired_holds"
    assert value(after, "points_task_duration_seconds_count", task=task) == \
        value(before, "points_task_duration_seconds_count", task=task) + 1


def test_a_failed_batch_logs_an_error_line_and_counts_a_failure(client, db, caplog):
    before = scrape(client)
    with caplog.at_level(logging.INFO, logger="points.jobs"), pytest.raises(RuntimeError):
        with job_batch("test.failing", batch=3, cursor=41):
            raise RuntimeError("boom")
    [line] = job_lines(caplog, "test.failing")
    assert (line["batch"], line["cursor"], line["rows"], line["outcome"]) == (3, 41, 0, "failed")
    assert [r.levelname for r in caplog.records if r.name == "points.jobs"] == ["ERROR"]
    after = scrape(client)
    assert value(after, "points_job_batch_failures_total", job="test.failing") == \
        value(before, "points_job_batch_failures_total", job="test.failing") + 1


@pytest.mark.parametrize("task_path, job, kwargs", [
    ("points.tasks.expire_points", "points.expiry", {}),
    ("points.tasks.award_birthdays", "points.birthdays", {}),
    ("mall.tasks.expire_coupons", "mall.coupon_expiry", {}),
    ("tiers.tasks.tiers_requalify", "tiers.requalify", {}),
    ("riskcontrol.tasks.risk_housekeeping", "riskcontrol.housekeeping", {}),
    ("members.notifications.tasks.notifications_dispatch_due", "notifications.dispatch", {}),
    ("points.statements.tasks.send_upgrade_nudges", "statements.upgrade_nudges", {}),
    ("points.statements.tasks.send_winback", "statements.winback", {}),
    ("points.statements.tasks.send_expiry_reminders", "statements.expiry_reminders", {"offset": 7}),
    ("points.statements.tasks.generate_statements", "statements.generate", {"period": "2020-01"}),
    ("settlement.tasks.create_monthly_draft", "settlement.monthly_draft", {"period": "2020-01-01"}),
])
def test_every_periodic_job_logs_its_batch(db, caplog, task_path, job, kwargs):
    from importlib import import_module

    module, name = task_path.rsplit(".", 1)
    with caplog.at_level(logging.INFO, logger="points.jobs"):
        getattr(import_module(module), name).apply(kwargs=kwargs).get()
    [line] = job_lines(caplog, job)
    assert line["outcome"] == "ok" and line["rows"] == 0 and line["batch"] == 1

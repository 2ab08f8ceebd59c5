"""A real celery worker and beat, as subprocesses, on Redis and the test PostgreSQL database.

Each run uses its own queue, so test runs sharing the Redis database never take each other's
tasks.

The expiry task goes through the broker twice for one run (`now`), as an overlapping or
retried run would: every due lot expires exactly once. Beat then fires a short-interval
periodic task from the database scheduler, again and again with one `now`: one posting.
Waits are bounded and fail with the subprocess logs; the subprocesses are killed in a finally.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.celery import app as celery_app
from points.models import Lot, Posting, PostingKind
from points.selectors import ledger_problems
from points.earning import points_earn
from points.tasks import expire_points
from tests.factories import BusinessUnitFactory, enrol_member

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

REDIS_DB = 2
WAIT_SECONDS = 90


@pytest.fixture
def broker_url():
    base = os.environ.get("TEST_REDIS_URL")
    if not base:
        pytest.skip("TEST_REDIS_URL is not set (scripts/test.sh starts Redis and sets it)")
    return f"{base.rsplit('/', 1)[0]}/{REDIS_DB}"


@pytest.fixture
def queue(broker_url):
    name = f"points-itest-{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(broker_url).delete(name)


def live_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database)."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Processes:
    """Celery subprocesses writing to log files; all of them killed by `stop`."""

    def __init__(self, env, logs: Path):
        self.env, self.logs, self.running = env, logs, []

    def start(self, name, *args):
        log = self.logs / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=settings.BASE_DIR, env=self.env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append(process)
        return log

    def stop(self):
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def wait_for(self, what, condition):
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if condition():
                return
            if any(process.poll() is not None for process in self.running):
                break
            time.sleep(0.2)
        logs = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.logs.glob("*.log")))
        pytest.fail(f"gave up waiting for {what} (or a celery process exited)\n{logs}")


def test_worker_expires_once_and_beat_fires_a_schedule(broker_url, queue, tmp_path):
    bu = BusinessUnitFactory(code="mall")
    long_ago = timezone.now() - timedelta(days=400)
    expired = [enrol_member() for _ in range(5)]
    for member in expired:
        points_earn(member_id=member.pk, business_unit=bu, points=300, occurred_at=long_ago, max_backdate=None)
    current = enrol_member()
    points_earn(member_id=current.pk, business_unit=bu, points=120)

    env = {
        **os.environ,
        "DATABASE_URL": live_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "POINTS_EXPIRY_BATCH_SIZE": "2",
        "LOG_LEVEL": "INFO",
    }
    processes = Processes(env, tmp_path)
    try:
        worker_log = processes.start(
            "worker", "worker", "--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--hostname=points-itest@%h",
        )
        processes.wait_for("the worker to be ready", lambda: " ready." in worker_log.read_text())

        now = timezone.now().isoformat()
        with celery_app.connection_for_write(broker_url) as broker:
            for _ in range(2):
                expire_points.apply_async(kwargs={"now": now}, connection=broker, queue=queue)
        started = re.compile(rf"points expiry run {re.escape(now)} started in (\d+) ranges")
        finished = f"points expiry run {now} finished"

        def every_chain_finished():
            text = worker_log.read_text()
            ranges = [int(count) for count in started.findall(text)]
            return len(ranges) == 2 and text.count(finished) == sum(ranges)

        processes.wait_for("both runs to finish, every range of each", every_chain_finished)

        expiries = Posting.objects.filter(kind=PostingKind.EXPIRE)
        assert sorted(expiries.values_list("wallet__member", flat=True)) == sorted(m.pk for m in expired)
        assert set(expiries.values_list("points", flat=True)) == {-300}
        assert not Lot.objects.filter(wallet__member__in=expired, remaining__gt=0).exists()
        assert Lot.objects.get(wallet__member=current).remaining == 120
        assert ledger_problems() == {}

        later = (timezone.now() + timedelta(days=800)).isoformat()
        every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(
            name="expire points every second (test)", task="points.tasks.expire_points", interval=every_second,
            kwargs=json.dumps({"now": later}),
        )
        processes.start(
            "beat", "beat", "--loglevel=INFO", "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
            "--max-interval=1", "--pidfile=", f"--schedule={tmp_path / 'beat-schedule'}",
        )
        fired = f"points expiry run {later} finished"
        processes.wait_for("beat to fire the schedule three times", lambda: worker_log.read_text().count(fired) >= 3)
    finally:
        processes.stop()

    assert list(Posting.objects.filter(kind=PostingKind.EXPIRE, wallet__member=current).values_list("points", flat=True)) == [-120]
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 6
    assert ledger_problems() == {}

"""The statement job on real celery workers and beats (subprocesses) on Redis and the test
PostgreSQL database: two runs for one month sent through the broker to two workers at once,
then two beats firing the job every second. Each member has one statement and got one e-mail
and one SMS; the member without consent got none and still has a statement.

Each run uses its own queue (test runs share the Redis), TEST_REDIS_URL's database. Waits are
bounded and fail with the subprocess logs; the subprocesses are killed in a finally.
"""

import json
import os
import re
import uuid
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.celery import app as celery_app
from members.notifications.models import NotificationLog
from members.services import member_update
from points.earning import points_earn
from points.models import Statement
from points.statements.periods import period_last_closed
from points.statements.tasks import generate_statements
from points.statements.selectors import period_differences
from tests.factories import BusinessUnitFactory, enrol_member
from tests.statements.conftest import Clock
from tests.platform.test_celery_integration import Processes, live_database_url

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

MEMBERS = 5


@pytest.fixture
def broker_url():
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set (scripts/test.sh starts Redis and sets it)")
    return url


@pytest.fixture
def queue(broker_url):
    name = f"points-stmt-itest-{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(broker_url).delete(name)


def email_keys(folder) -> list[str]:
    return re.findall(r"^X-Notification-Key: (\S+)$", "".join(p.read_text() for p in folder.glob("*.log")), re.M)


def test_two_runs_and_two_beats_make_one_statement_and_one_message_each(broker_url, queue, tmp_path):
    period = period_last_closed(timezone.now())
    clock = Clock()
    clock.set(period.start + timedelta(days=3))
    bu = BusinessUnitFactory(code="mall")
    members = []
    for number in range(MEMBERS):
        member = enrol_member(name=f"member {number}", email=f"m{number}@example.com")
        member_update(member=member, consent_email=True, consent_sms=True)
        points_earn(member_id=member.pk, business_unit=bu, points=100 + number)
        members.append(member)
    silent = enrol_member(email="silent@example.com")
    points_earn(member_id=silent.pk, business_unit=bu, points=5)
    clock.stop()

    env = {
        **os.environ,
        "DATABASE_URL": live_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "STATEMENTS_BATCH_SIZE": "2",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "SMS_BACKEND": "members.sms.FileSmsBackend",
        "SMS_FILE_PATH": str(tmp_path / "sms.log"),
        "NOTIFICATIONS_SMS_QUIET_HOURS": "",
        "LOG_LEVEL": "INFO",
    }
    finished = f"statements run {period.name} finished"
    processes = Processes(env, tmp_path)

    def finished_runs():
        return sum(log.read_text().count(finished) for log in tmp_path.glob("worker*.log"))

    def all_sent():
        return NotificationLog.objects.filter(status="delivered").count() == 2 * MEMBERS and not (
            NotificationLog.objects.filter(status__in=["queued", "sending", "retrying"]).exists()
        )

    try:
        for name in ("worker-a", "worker-b"):
            log = processes.start(
                name, "worker", "--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle",
                "--without-heartbeat", f"--hostname={name}-{queue}@%h",
            )
            processes.wait_for(f"{name} to be ready", lambda log=log: " ready." in log.read_text())

        with celery_app.connection_for_write(broker_url) as broker:
            for _ in range(2):
                generate_statements.apply_async(kwargs={"period": period.name}, connection=broker, queue=queue)
        processes.wait_for("both runs to finish", lambda: finished_runs() >= 2)
        processes.wait_for("every message to be sent", all_sent)

        every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(
            name="statements every second (test)", task="points.statements.tasks.generate_statements",
            interval=every_second, kwargs=json.dumps({"period": period.name}),
        )
        for name in ("beat-a", "beat-b"):
            processes.start(
                name, "beat", "--loglevel=INFO", "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
                "--max-interval=1", "--pidfile=", f"--schedule={tmp_path / name}",
            )
        processes.wait_for("the beats to fire the job four more times", lambda: finished_runs() >= 6)
        processes.wait_for("every message to be sent", all_sent)
    finally:
        processes.stop()

    assert sorted(Statement.objects.filter(period=period.name).values_list("member_id", flat=True)) == sorted(
        [member.pk for member in members] + [silent.pk]
    )
    keys = email_keys(tmp_path / "mail")
    assert sorted(keys) == sorted(f"statement:{member.pk}:{period.name}:email" for member in members)
    texts = [json.loads(line) for line in (tmp_path / "sms.log").read_text().splitlines()]
    assert sorted(text["phone"] for text in texts) == sorted(member.phone for member in members)
    assert NotificationLog.objects.filter(member=silent, status="skipped").count() == 2
    assert NotificationLog.objects.count() == 2 * (MEMBERS + 1)
    assert period_differences(period=period, member_ids=[m.pk for m in [*members, silent]]) == []

"""The beat schedules registered by the data migrations name tasks celery knows, at the
documented times in the group's time zone."""

import pytest
from django_celery_beat.models import PeriodicTask

from config.celery import app as celery_app

pytestmark = pytest.mark.django_db

EXPECTED = {
    "Generate member statements (monthly)": ("points.statements.tasks.generate_statements", ("0", "4", "1")),
    "Send expiry reminders (daily)": ("points.statements.tasks.send_expiry_reminders", ("0", "9", "*")),
    "Send near-upgrade nudges (daily)": ("points.statements.tasks.send_upgrade_nudges", ("0", "10", "*")),
    "Send win-back messages (daily)": ("points.statements.tasks.send_winback", ("30", "10", "*")),
}


def test_statement_and_reminder_schedules_run_in_shanghai_time():
    celery_app.loader.import_default_modules()
    for name, (task, (minute, hour, day)) in EXPECTED.items():
        periodic = PeriodicTask.objects.select_related("crontab").get(name=name)
        assert periodic.task == task and task in celery_app.tasks
        crontab = periodic.crontab
        assert (crontab.minute, crontab.hour, crontab.day_of_month, str(crontab.timezone)) == (
            minute, hour, day, "Asia/Shanghai"
        )


def test_the_notification_sweep_runs_every_five_minutes():
    celery_app.loader.import_default_modules()
    sweep = PeriodicTask.objects.select_related("interval").get(name="Send due notifications (every 5 minutes)")
    assert sweep.task == "members.notifications.tasks.notifications_dispatch_due" and sweep.task in celery_app.tasks
    assert (sweep.interval.every, sweep.interval.period) == (5, "minutes")
    assert "members.notifications.tasks.notification_send" in celery_app.tasks

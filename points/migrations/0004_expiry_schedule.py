"""Register the daily expiry job in django-celery-beat: 00:10 in the group's time zone.

get_or_create by name: rerunning never duplicates it, and an operator's later edits in the
admin (time, enabled) are kept.
"""

from django.conf import settings
from django.db import migrations

TASK_NAME = "Expire points (daily)"


def schedule_expiry(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="10", hour="0", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "points.tasks.expire_points",
            "crontab": crontab,
            "description": "Expire the points lots whose validity has ended, in batches of wallets.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0003_operator_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_expiry, migrations.RunPython.noop)]

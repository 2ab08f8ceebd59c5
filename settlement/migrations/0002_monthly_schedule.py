"""Register the monthly settlement draft in django-celery-beat: 03:00 on the 1st, group time zone.

get_or_create by name: rerunning never duplicates it, and an operator's later edits are kept.
"""

from django.conf import settings
from django.db import migrations

TASK_NAME = "Settlement draft for the month just ended (monthly)"


def schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="3", day_of_week="*", day_of_month="1", month_of_year="*", timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "settlement.tasks.create_monthly_draft",
            "crontab": crontab,
            "description": "Create the draft settlement run of the month just ended, for finance to review and close.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("settlement", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, migrations.RunPython.noop)]

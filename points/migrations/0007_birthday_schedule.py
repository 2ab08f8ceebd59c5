"""Register the daily birthday awards in django-celery-beat: 00:20 in the group's time zone.

get_or_create by name: rerunning never duplicates it, and an operator's later edits in the
admin (time, enabled) are kept. Without an active birthday rule the run does nothing.
"""

from django.conf import settings
from django.db import migrations

TASK_NAME = "Award birthday points (daily)"


def schedule_birthdays(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="20", hour="0", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "points.tasks.award_birthdays",
            "crontab": crontab,
            "description": "Post the birthday event for the members born today; the birthday rules price it.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0006_rule_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_birthdays, migrations.RunPython.noop)]

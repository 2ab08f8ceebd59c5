"""Register the ledger's partition upkeep in django-celery-beat: 01:40 daily in the group's time
zone (it does nothing until `partition_ledger` has partitioned the ledger).

get_or_create by name: rerunning never duplicates the task, and an operator's later edits in the
admin (time, enabled) are kept.
"""

from django.conf import settings
from django.db import migrations

TASK_NAME = "Create the ledger's partitions of the coming months (daily)"


def schedule_partitions(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="40", hour="1", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "points.tasks.extend_ledger_partitions",
            "crontab": crontab,
            "description": "On a ledger partitioned by month, create the partitions of this month and the "
                           "POINTS_PARTITION_MONTHS_AHEAD next ones that are missing.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0021_partition_ready_ledger"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_partitions, migrations.RunPython.noop)]

"""Register the notification sweep in django-celery-beat: every 5 minutes it hands the queued
messages whose time has come (SMS held over quiet hours, sends lost) to the send task.

get_or_create by name: rerunning never duplicates it, and an operator's later edits are kept.
"""

from django.db import migrations

TASK_NAME = "Send due notifications (every 5 minutes)"


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_5_minutes, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "members.notifications.tasks.notifications_dispatch_due",
            "interval": every_5_minutes,
            "description": "Send the queued notifications that are due (quiet-hours SMS in the morning).",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0003_notifications"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, migrations.RunPython.noop)]

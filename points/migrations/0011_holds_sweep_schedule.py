"""Register the holds sweep in django-celery-beat: every minute.

get_or_create by name: rerunning never duplicates it, and an operator's later edits in the
admin (interval, enabled) are kept.
"""

from django.db import migrations

TASK_NAME = "Release expired holds (every minute)"


def schedule_sweep(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "points.tasks.release_expired_holds",
            "interval": every_minute,
            "description": "Release the points of holds past their expiry (a read already counts them as released).",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0010_holds"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_sweep, migrations.RunPython.noop)]

"""Registers risk control's housekeeping job in django-celery-beat (editable in admin)."""

from django.db import migrations

TASK_NAME = "Risk control housekeeping"


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _created = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "riskcontrol.tasks.risk_housekeeping",
            "interval": every,
            "description": "Every 5 minutes: freezes past their end lifted, adjustment requests past their date "
                           "expired, held points kept held when their expiry moved.",
        },
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("riskcontrol", "0002_operator_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]

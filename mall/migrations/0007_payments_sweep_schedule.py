"""Register the payments sweep in django-celery-beat: every minute.

get_or_create by name: rerunning never duplicates it, and an operator's later edits in the
admin (interval, enabled) are kept.
"""

from django.db import migrations

TASK_NAME = "Settle lapsed payments (every minute)"


def schedule_sweep(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "mall.tasks.settle_lapsed_payments",
            "interval": every_minute,
            "description": "Write the expired move of authorised payments whose hold is no longer live.",
        },
    )


def unschedule_sweep(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("mall", "0006_presence_on_partner_key"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_sweep, unschedule_sweep)]

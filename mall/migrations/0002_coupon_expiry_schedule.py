"""Register the daily coupon expiry in django-celery-beat: 00:20 in the group's time zone (after
the points expiry at 00:10).

get_or_create by name: rerunning never duplicates it, and an operator's later edits in the
admin (time, enabled) are kept.
"""

from django.conf import settings
from django.db import migrations

TASK_NAME = "Expire mall coupons (daily)"


def schedule_expiry(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="20", hour="0", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "mall.tasks.expire_coupons",
            "crontab": crontab,
            "description": "Expire the unused mall coupons whose validity has ended, in batches.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("mall", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_expiry, migrations.RunPython.noop)]

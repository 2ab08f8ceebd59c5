"""Register the statement and reminder jobs in django-celery-beat, in the group's time zone:

* statements: 04:00 on the 1st of every month (the month just ended);
* expiry reminders: 09:00 daily; near-upgrade nudges: 10:00 daily; win-back: 10:30 daily
  (all outside the SMS quiet hours).

get_or_create by name: rerunning never duplicates them, and an operator's later edits in the
admin (time, enabled) are kept.
"""

from django.conf import settings
from django.db import migrations

SCHEDULES = [
    ("Generate member statements (monthly)", "points.statements.tasks.generate_statements",
     {"minute": "0", "hour": "4", "day_of_month": "1"},
     "Generate last month's statement of every member with activity or points, in batches, and send them."),
    ("Send expiry reminders (daily)", "points.statements.tasks.send_expiry_reminders",
     {"minute": "0", "hour": "9", "day_of_month": "*"},
     "Remind members of points expiring in NOTIFICATIONS_EXPIRY_REMINDER_DAYS days."),
    ("Send near-upgrade nudges (daily)", "points.statements.tasks.send_upgrade_nudges",
     {"minute": "0", "hour": "10", "day_of_month": "*"},
     "Tell members who earned yesterday and are close to the next tier how close."),
    ("Send win-back messages (daily)", "points.statements.tasks.send_winback",
     {"minute": "30", "hour": "10", "day_of_month": "*"},
     "Invite back members with points and no activity for NOTIFICATIONS_WINBACK_DAYS days, once a month."),
]


def schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, when, description in SCHEDULES:
        crontab, _ = CrontabSchedule.objects.get_or_create(
            day_of_week="*", month_of_year="*", timezone=settings.TIME_ZONE, **when,
        )
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": crontab, "description": description})


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0012_statements"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, migrations.RunPython.noop)]

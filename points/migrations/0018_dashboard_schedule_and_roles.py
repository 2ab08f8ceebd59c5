"""Register the dashboard aggregates' refresh in django-celery-beat (every 10 minutes) and let
operations and finance see the dashboard.

get_or_create by name: rerunning never duplicates the task, and an operator's later edits in the
admin (interval, enabled) are kept.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

TASK_NAME = "Refresh dashboard figures (every 10 minutes)"
ROLES = ["operations", "finance"]


def schedule_refresh(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_ten_minutes, _ = IntervalSchedule.objects.get_or_create(every=10, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "points.tasks.refresh_dashboard_aggregates",
            "interval": every_ten_minutes,
            "description": "Recompute the dashboard's daily aggregates of the days touched by postings booked since "
                           "the last run (backdated postings included).",
        },
    )


def grant(apps, schema_editor):
    app_config = apps.get_app_config("points")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(content_type__app_label="points", codename="view_dashboard")
    for name in ROLES:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0017_dashboard_aggregates"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(schedule_refresh, migrations.RunPython.noop),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]

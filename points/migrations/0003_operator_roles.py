"""Operator roles as Django groups: operations, finance, risk review, merchant staff.

This lives in points, not members: the roles grant ledger permissions (adjust, freeze, export)
and members never depends on the apps above it. It runs on every database, not only the demo,
so a fresh deployment has its roles. Apps above points grant their own permissions to these
groups in their own data migrations (get the group by name, add their permissions).
Permissions are normally created after the last migration; they are created here first.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

LEDGER_VIEW = [
    "points.view_posting", "points.view_entry", "points.view_lot", "points.view_lotmovement",
    "points.view_walletstatuschange", "points.view_wallet",
]
ROLES = {
    "operations": [
        "members.view_member", "members.add_member", "members.change_member",
        "members.view_businessunit", "members.add_businessunit", "members.change_businessunit",
        "members.view_merchant", "members.add_merchant", "members.change_merchant",
        "members.view_organization", "members.add_organization", "members.change_organization",
        "members.view_partnerkey", "members.add_partnerkey", "members.change_partnerkey",
        "members.view_membertoken",
        *LEDGER_VIEW, "points.adjust_points", "points.freeze_wallet",
        "django_celery_beat.view_periodictask", "django_celery_beat.change_periodictask",
        "django_celery_beat.view_crontabschedule", "django_celery_beat.view_intervalschedule",
    ],
    "finance": [
        "members.view_member", "members.view_businessunit", "members.view_merchant", "members.view_organization",
        *LEDGER_VIEW, "points.export_ledger",
    ],
    "risk review": [
        "members.view_member", "members.view_membertoken", "members.view_businessunit", "members.view_merchant",
        *LEDGER_VIEW, "points.freeze_wallet",
    ],
    "merchant staff": [
        "members.view_member", "members.view_merchant", "points.view_posting",
    ],
}


def create_roles(apps, schema_editor):
    for app_label in ("auth", "members", "points", "django_celery_beat"):
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, labels in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for label in labels:
            app_label, codename = label.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0002_operator_permissions"),
        ("members", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]

"""Grants the earning-rule permissions to the operator roles (groups of 0003_operator_roles).

Operations edit rules, expiry policies and member tags (rules are switched off, not deleted:
their awards refer to them); finance and risk review read them.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

RULES_VIEW = ["view_earningrule", "view_expirypolicy", "view_lotexpirychange"]
ROLES = {
    "operations": [
        *RULES_VIEW, "add_earningrule", "change_earningrule", "add_expirypolicy", "change_expirypolicy",
        "view_membertag", "add_membertag", "change_membertag", "delete_membertag",
    ],
    "finance": RULES_VIEW,
    "risk review": [*RULES_VIEW, "view_membertag"],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("points")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _created = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="points", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0005_earning_rules"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

"""Grants the tier permissions to the operator roles (groups created by points' 0003_operator_roles).

Operations edit programmes and levels and set tiers by hand; finance and risk review read.
Member tiers and their history change only through the services, so nobody gets change or delete
on them.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

TIERS_VIEW = ["view_tierprogramme", "view_tierlevel", "view_membertier", "view_tierchange"]
ROLES = {
    "operations": [*TIERS_VIEW, "add_tierprogramme", "change_tierprogramme", "add_tierlevel", "change_tierlevel",
                   "set_manual_tier"],
    "finance": TIERS_VIEW,
    "risk review": ["view_membertier", "view_tierchange"],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("tiers")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _created = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="tiers", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("tiers", "0003_membertier_set_manual_permission"),
        ("points", "0003_operator_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

"""Settlement's permissions for the operator roles (created by points' 0003_operator_roles):
finance reads the clearing lines and runs, edits clearing rates, closes and exports runs;
operations may read them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

READ = ["settlement.view_clearingline", "settlement.view_settlementrun", "settlement.view_settlementline",
        "settlement.view_runevent", "settlement.view_clearingrate"]
ROLES = {
    "finance": [*READ, "settlement.add_clearingrate", "settlement.change_clearingrate", "settlement.add_settlementrun",
                "settlement.change_settlementrun", "settlement.close_settlementrun", "settlement.export_settlement"],
    "operations": READ,
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("settlement")
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
        ("settlement", "0002_monthly_schedule"),
        ("points", "0003_operator_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

"""The mall's permissions for the operator roles (groups made by points' 0003_operator_roles).

Operations curate the catalogue, fulfil, cancel, issue at the desk and write off; finance reads
and exports; merchant staff manage their own merchant's items and orders and write off coupons
(the console scopes them to their merchant, mall.admin). Permissions are normally created
after the last migration; they are created here first.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

READ = ["mall.view_item", "mall.view_category", "mall.view_slot", "mall.view_order", "mall.view_orderevent",
        "mall.view_coupon", "mall.view_couponevent", "mall.view_writeoff", "mall.view_poolcode"]
ROLES = {
    "operations": [
        *READ, "mall.add_item", "mall.change_item", "mall.add_category", "mall.change_category", "mall.add_slot",
        "mall.change_slot", "mall.fulfil_order", "mall.cancel_order", "mall.issue_item", "mall.write_off_coupon",
        "mall.export_mall", "mall.view_merchantstaff", "mall.add_merchantstaff", "mall.change_merchantstaff",
        "mall.delete_merchantstaff",
    ],
    "finance": [*READ, "mall.export_mall"],
    "merchant staff": [
        *READ, "mall.add_item", "mall.change_item", "mall.add_slot", "mall.change_slot", "mall.fulfil_order",
        "mall.cancel_order", "mall.write_off_coupon", "mall.export_mall", "mall.view_merchantstaff",
    ],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("mall")
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
        ("mall", "0003_console_permissions"),
        ("points", "0003_operator_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

"""Grants the risk-control permissions to the operator roles (groups of points' 0003_operator_roles).

Risk review configures rules, the blacklist and adjustment limits, decides review cases, freezes
and lifts, and approves adjustment requests; finance approves adjustment requests too; operations
see cases and requests (they make requests through the member console's adjust action).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

RISK_VIEW = [
    "view_riskrule", "view_riskcase", "view_riskcaseevent", "view_blockedattempt", "view_riskfreeze",
    "view_blacklistentry", "view_adjustmentrequest", "view_riskdevice", "view_riskdeviceuse", "view_riskreceipt",
]
ROLES = {
    "risk review": [
        *RISK_VIEW, "add_riskrule", "change_riskrule", "review_riskcase", "add_riskfreeze", "change_riskfreeze",
        "add_blacklistentry", "change_blacklistentry", "approve_adjustmentrequest",
        "view_adjustmentthreshold", "add_adjustmentthreshold", "change_adjustmentthreshold",
        "delete_adjustmentthreshold", "view_operatormember", "add_operatormember", "delete_operatormember",
    ],
    "finance": ["view_adjustmentrequest", "approve_adjustmentrequest", "view_riskcase"],
    "operations": ["view_riskcase", "view_adjustmentrequest", "view_riskfreeze"],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("riskcontrol")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _created = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="riskcontrol", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("riskcontrol", "0001_initial"),
        ("points", "0003_operator_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

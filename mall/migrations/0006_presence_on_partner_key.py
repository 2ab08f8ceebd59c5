from django.db import migrations


def presence_rules_onto_keys(apps, schema_editor):
    """Whether a key may spend without the member present moves onto the key itself
    (members.PartnerKey.may_spend_without_presence): every key whose rule allowed it keeps it."""
    PartnerKey = apps.get_model("members", "PartnerKey")
    PartnerKeyPresence = apps.get_model("mall", "PartnerKeyPresence")
    allowed = PartnerKeyPresence.objects.filter(may_spend_without_presence=True).values_list("key_id", flat=True)
    PartnerKey.objects.filter(pk__in=list(allowed)).update(may_spend_without_presence=True)


def presence_rules_from_keys(apps, schema_editor):
    PartnerKey = apps.get_model("members", "PartnerKey")
    PartnerKeyPresence = apps.get_model("mall", "PartnerKeyPresence")
    PartnerKeyPresence.objects.bulk_create(
        [PartnerKeyPresence(key_id=key_id, may_spend_without_presence=True)
         for key_id in PartnerKey.objects.filter(may_spend_without_presence=True).values_list("id", flat=True)],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('mall', '0005_payments'),
        ('members', '0007_partner_key_presence'),
    ]

    operations = [
        migrations.RunPython(presence_rules_onto_keys, presence_rules_from_keys),
        migrations.DeleteModel(
            name='PartnerKeyPayment',
        ),
        migrations.DeleteModel(
            name='PartnerKeyPresence',
        ),
    ]

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MembersConfig(AppConfig):
    name = "members"
    verbose_name = _("Members and parties")

    def ready(self):
        from members.models import BusinessUnit, Merchant, PartnerKey
        from members.selectors import active_merchants, partner_keys

        partner_keys.invalidate_on_change(PartnerKey, BusinessUnit, Merchant)
        active_merchants.invalidate_on_change(BusinessUnit, Merchant)

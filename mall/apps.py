from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MallConfig(AppConfig):
    name = "mall"
    verbose_name = _("Redemption mall")

    def ready(self):
        from mall.selectors_payments import payment_earn_amount
        from points.policies import register_payment_earn_amount

        register_payment_earn_amount(payment_earn_amount)

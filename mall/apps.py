from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

class MallConfig(AppConfig):
    name = "mall"
    verbose_name = _("Redemption mall")

    def ready(self):
        # What an order's spend posting and a payment's hold carry: statements read them through
        # points' redemption channels to split what members redeemed.
        from mall.services import MALL_ORDER_KEY_PREFIX
        from mall.services_payments import HOLD_PURPOSE
        from points.policies import RedemptionChannel, register_redemption_channel

        register_redemption_channel(RedemptionChannel(name="mall_order", key_prefix=MALL_ORDER_KEY_PREFIX))
        register_redemption_channel(RedemptionChannel(name="payment", hold_purposes=(HOLD_PURPOSE,)))

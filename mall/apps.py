from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MallConfig(AppConfig):
    name = "mall"
    verbose_name = _("Redemption mall")

    def ready(self):
        """The member 360 page's mall panels (points.member_panels), and what an order's spend
        posting and a payment's hold carry: statements read them through points' redemption
        channels to split what members redeemed; the amount a payment lets its bill earn on; and
        the hold purpose of payments, which only payments move (the mall's orders hold nothing:
        they spend at once)."""
        from mall.member_panels import ORDERS_PANEL, PAYMENTS_PANEL
        from mall.services import MALL_ORDER_KEY_PREFIX
        from mall.services_payments import HOLD_PURPOSE
        from mall.selectors_payments import payment_earn_amount
        from points.member_panels import register_member_panel
        from points.policies import (
            RedemptionChannel,
            register_payment_earn_amount,
            register_redemption_channel,
            register_reserved_hold_purpose,
        )

        register_member_panel(ORDERS_PANEL)
        register_member_panel(PAYMENTS_PANEL)
        register_redemption_channel(RedemptionChannel(name="mall_order", key_prefix=MALL_ORDER_KEY_PREFIX))
        register_redemption_channel(RedemptionChannel(name="payment", hold_purposes=(HOLD_PURPOSE,)))
        register_payment_earn_amount(payment_earn_amount)
        register_reserved_hold_purpose(HOLD_PURPOSE)

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MallConfig(AppConfig):
    name = "mall"
    verbose_name = _("Redemption mall")

    def ready(self):
        """The member 360 page's mall panels, through points' registry (points.member_panels)."""
        from mall.member_panels import ORDERS_PANEL, PAYMENTS_PANEL
        from points.member_panels import register_member_panel

        register_member_panel(ORDERS_PANEL)
        register_member_panel(PAYMENTS_PANEL)

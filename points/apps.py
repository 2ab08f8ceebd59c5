from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = _("Points ledger")

    def ready(self):
        from members.services import register_enrolment_hook
        from points.services import wallet_open

        register_enrolment_hook(wallet_open)

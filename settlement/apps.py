from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SettlementConfig(AppConfig):
    name = "settlement"
    verbose_name = _("Settlement")

    def ready(self):
        from points.aggregates import register_daily_aggregate
        from points.policies import register_after_post_hook
        from settlement.flow_days import FLOW_DAYS
        from settlement.hooks import record_clearing

        register_after_post_hook(record_clearing)
        register_daily_aggregate(FLOW_DAYS)

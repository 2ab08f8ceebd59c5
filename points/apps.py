from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = _("Points ledger")

    def ready(self):
        from config.metrics import register_scrape_collector
        from members.services import register_enrolment_hook
        from points.models import EarningRule, ExpiryPolicy
        from points.rules.selectors import rule_configs
        from points.earning import points_registration_award
        from points.ledger import wallet_open
        from points.metrics import holds_outstanding_metrics

        register_enrolment_hook(wallet_open)
        register_enrolment_hook(points_registration_award)
        rule_configs.invalidate_on_change(EarningRule, ExpiryPolicy)
        register_scrape_collector("holds_outstanding", holds_outstanding_metrics)

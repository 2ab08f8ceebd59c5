from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = _("Points ledger")

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from members.services import register_enrolment_hook
        from points.models import EarningRule, ExpiryPolicy
        from points.selectors import rule_config_changed
        from points.services import points_registration_award, wallet_open

        register_enrolment_hook(wallet_open)
        register_enrolment_hook(points_registration_award)
        # Cache invalidation only: whatever saves a rule or policy (admin, shell, fixtures)
        # must make the earn path see it; no business logic runs here.
        for model in (EarningRule, ExpiryPolicy):
            post_save.connect(rule_config_changed, sender=model, dispatch_uid=f"rules-cache-{model.__name__}-save")
            post_delete.connect(rule_config_changed, sender=model, dispatch_uid=f"rules-cache-{model.__name__}-delete")

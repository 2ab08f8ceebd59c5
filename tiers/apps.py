from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TiersConfig(AppConfig):
    name = "tiers"
    verbose_name = _("Tiers")

    def ready(self):
        from points.policies import register_after_earn_hook, register_tier_progress_provider, register_tier_provider
        from points.member_panels import register_member_panel
        from tiers.member_panel import TIER_PANEL
        from tiers.models import TierLevel, TierProgramme
        from tiers.selectors import tier_configs, tier_info, tier_info_many, tier_progress_info, tier_progress_info_many
        from tiers.services import tier_after_earn, tier_after_earn_many

        register_tier_provider(tier_info, many=tier_info_many)
        register_after_earn_hook(tier_after_earn, many=tier_after_earn_many)
        register_tier_progress_provider(tier_progress_info, many=tier_progress_info_many)
        register_member_panel(TIER_PANEL)
        tier_configs.invalidate_on_change(TierProgramme, TierLevel)

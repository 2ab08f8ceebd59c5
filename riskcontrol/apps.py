from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RiskcontrolConfig(AppConfig):
    name = "riskcontrol"
    verbose_name = _("Risk control")

    def ready(self):
        """Take part in the ledger through points' registry only (points.policies), and in
        enrolment through members' hooks: what runs on every earn, spend and adjustment is
        listed here, nothing through signals."""
        from members.services import register_enrolment_hook
        from points.policies import (
            register_adjust_gate,
            register_after_earn_hook,
            register_earn_gate,
            register_spend_gate,
        )
        from points.member_panels import register_member_panel
        from riskcontrol.member_panel import RISK_PANEL
        from riskcontrol.models import AdjustmentThreshold, BlacklistEntry, OperatorMember, RiskFreeze, RiskRule
        from riskcontrol.selectors import risk_configs
        from riskcontrol.services import (
            risk_adjust_gate,
            risk_after_earn,
            risk_after_earn_many,
            risk_earn_gate,
            risk_enrolment_hook,
            risk_spend_gate,
        )

        register_earn_gate(risk_earn_gate)
        register_after_earn_hook(risk_after_earn, many=risk_after_earn_many)
        register_spend_gate(risk_spend_gate)
        register_adjust_gate(risk_adjust_gate)
        register_enrolment_hook(risk_enrolment_hook)
        register_member_panel(RISK_PANEL)
        risk_configs.invalidate_on_change(RiskRule, RiskFreeze, BlacklistEntry, AdjustmentThreshold, OperatorMember)

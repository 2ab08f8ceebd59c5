"""Forms of the risk console: the reason of a decision, a freeze, a blacklist entry, a rule."""

from django import forms
from django.utils.translation import gettext_lazy as _

from riskcontrol.models import BlacklistEntry, RiskFreeze, RiskRule
from riskcontrol.selectors import blacklist_live


class ReasonForm(forms.Form):
    """The reason of an action on the selected rows (a decision, a lift, a removal)."""

    reason = forms.CharField(label=_("reason"), max_length=200, widget=forms.TextInput(attrs={"size": 60}))


class RiskRuleForm(forms.ModelForm):
    """The rule's own checks (RiskRule.clean) refuse what makes no sense for its kind; the
    database refuses a threshold or window that is not positive whatever the path."""

    class Meta:
        model = RiskRule
        fields = [
            "code", "name", "description", "is_active", "kind", "threshold", "window_minutes", "min_points",
            "scope", "bu_kind", "business_unit", "merchant", "action", "freeze_mode", "freeze_days",
        ]


class RiskFreezeForm(forms.ModelForm):
    class Meta:
        model = RiskFreeze
        fields = ["member", "mode", "reason", "ends_at"]


class BlacklistEntryForm(forms.ModelForm):
    class Meta:
        model = BlacklistEntry
        fields = ["kind", "value", "action", "reason", "expires_at"]

    def clean(self):
        data = super().clean()
        if blacklist_live(kind=data.get("kind"), value=(data.get("value") or "").strip()):
            self.add_error("value", _("This value is on the blacklist already."))
        return data

"""Intermediate forms of the operator console's ledger actions.

Each form carries a `token` generated when it is first shown. The action builds its
idempotency key from it, so submitting the same form twice (a double click, a browser
resubmission) posts once; opening the action again gives a new token and a new operation.
"""

import uuid

from django import forms
from django.utils.translation import gettext_lazy as _

from members.models import BusinessUnit


def new_form_token() -> str:
    return uuid.uuid4().hex


class ActionForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput, max_length=32)
    reason = forms.CharField(label=_("reason"), max_length=200, widget=forms.TextInput(attrs={"size": 60}))


class AdjustPointsForm(ActionForm):
    points = forms.IntegerField(
        label=_("points"), help_text=_("Positive to credit, negative to debit."),
    )
    business_unit = forms.ModelChoiceField(
        label=_("business unit"), queryset=BusinessUnit.objects.filter(is_active=True),
        help_text=_("The business unit whose adjustment account funds or receives the points."),
    )
    field_order = ["points", "business_unit", "reason", "token"]

    def clean_points(self):
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("Points must not be zero."))
        return points


class WalletStatusForm(ActionForm):
    """The reason for a freeze or an unfreeze."""

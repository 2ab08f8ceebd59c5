"""The operator console's rule simulation form: an event to price, nothing posted."""

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models import BusinessUnit, Member, Merchant
from points.models import EventType


class RuleSimulationForm(forms.Form):
    member = forms.CharField(label=_("member"), max_length=20, help_text=_("Phone, card number or member id."))
    business_unit = forms.ModelChoiceField(label=_("business unit"), queryset=BusinessUnit.objects.filter(is_active=True))
    merchant = forms.ModelChoiceField(
        label=_("merchant"), queryset=Merchant.objects.filter(is_active=True).select_related("business_unit"),
        required=False,
    )
    event_type = forms.ChoiceField(label=_("event type"), choices=EventType.choices, initial=EventType.PURCHASE)
    amount = forms.DecimalField(label=_("amount (CNY)"), max_digits=14, decimal_places=2, min_value=0, required=False)
    occurred_at = forms.DateTimeField(
        label=_("date and time"), required=False, help_text=_("Empty: now. Format: 2026-03-01 10:15 (group time zone)."),
    )

    def clean_member(self):
        value = self.cleaned_data["member"].strip()
        lookup = Q(phone=value) | Q(card_no=value)
        if value.isdigit() and len(value) <= 10:
            lookup |= Q(pk=int(value))
        member = Member.objects.filter(lookup).first()
        if member is None:
            raise forms.ValidationError(_("No member has this phone, card number or id."))
        return member

    def clean(self):
        cleaned = super().clean()
        merchant, business_unit = cleaned.get("merchant"), cleaned.get("business_unit")
        if merchant is not None and business_unit is not None and merchant.business_unit_id != business_unit.pk:
            self.add_error("merchant", _("This merchant belongs to another business unit."))
        if cleaned.get("event_type") == EventType.PURCHASE and cleaned.get("amount") is None:
            self.add_error("amount", _("A purchase needs an amount."))
        return cleaned

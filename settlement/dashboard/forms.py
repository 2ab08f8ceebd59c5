"""The dashboard's filter: a window of local days, the series' period, and BU, BU kind, merchant."""

from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import BusinessUnit, BusinessUnitKind, Merchant
from settlement.dashboard.selectors import DashboardFilter

DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366


class DashboardFilterForm(forms.Form):
    first = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    last = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    bucket = forms.ChoiceField(label=_("Period"), required=False, initial="day",
                               choices=[("day", _("Day")), ("week", _("Week")), ("month", _("Month"))])
    business_unit = forms.ModelChoiceField(label=_("Business unit"), required=False,
                                           queryset=BusinessUnit.objects.order_by("code"))
    bu_kind = forms.ChoiceField(label=_("Business unit kind"), required=False,
                                choices=[("", "---------"), *BusinessUnitKind.choices])
    merchant = forms.ModelChoiceField(label=_("Merchant"), required=False,
                                      queryset=Merchant.objects.select_related("business_unit").order_by("code"))

    def clean(self):
        data = super().clean()
        last = data.get("last") or timezone.localdate()
        first = data.get("first") or last - timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            raise ValidationError({"first": _("The first day comes after the last.")})
        if (last - first).days >= MAX_DAYS:
            raise ValidationError({"first": _("Choose a window of at most three years.")})
        data["first"], data["last"] = first, last
        return data

    def dashboard_filter(self) -> DashboardFilter:
        """The filter the form asks for (the last 30 days when it is empty or invalid)."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        last = data.get("last") or timezone.localdate()
        return DashboardFilter(
            first=data.get("first") or last - timedelta(days=DEFAULT_DAYS - 1), last=last,
            bucket=data.get("bucket") or "day",
            business_unit_id=data["business_unit"].pk if data.get("business_unit") else None,
            bu_kind=data.get("bu_kind") or "",
            merchant_id=data["merchant"].pk if data.get("merchant") else None,
        )

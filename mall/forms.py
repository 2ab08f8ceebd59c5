"""Forms of the mall console: the intermediate forms of its actions and the write-off page.

Each carries a `token` generated when it is first shown; the idempotency key of what it does is
built from it, so a double submission does it once (as the ledger console's forms do)."""

import uuid

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from members.models import Merchant
from mall.models import Delivery


def new_form_token() -> str:
    return uuid.uuid4().hex


class TokenForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput, max_length=32)


class ReasonForm(TokenForm):
    reason = forms.CharField(label=_("reason"), max_length=200, widget=forms.TextInput(attrs={"size": 60}))


class FulfilForm(TokenForm):
    tracking_no = forms.CharField(label=_("tracking number"), max_length=64, required=False,
                                  help_text=_("Required for shipped orders."))
    reason = forms.CharField(label=_("note"), max_length=200, required=False)


class IssueForm(TokenForm):
    member = forms.CharField(label=_("member's phone or card number"), max_length=20)
    quantity = forms.IntegerField(label=_("quantity"), min_value=1, initial=1)
    slot = forms.IntegerField(label=_("slot id"), min_value=1, max_value=2**63 - 1, required=False,
                              help_text=_("Bookable items only."))
    delivery_method = forms.ChoiceField(label=_("delivery"), choices=[("", "-"), *Delivery.choices], required=False)
    delivery_address = forms.CharField(label=_("delivery address"), max_length=300, required=False)

    def clean_quantity(self):
        quantity = self.cleaned_data["quantity"]
        if quantity > settings.MALL_MAX_QUANTITY:
            raise forms.ValidationError(_("At most %(max)d.") % {"max": settings.MALL_MAX_QUANTITY})
        return quantity


class PoolUploadForm(TokenForm):
    codes = forms.CharField(label=_("codes"), widget=forms.Textarea(attrs={"rows": 12, "cols": 40}), required=False,
                            help_text=_("One code per line (or separated by commas)."))
    file = forms.FileField(label=_("or a text or CSV file"), required=False)
    batch = forms.CharField(label=_("batch"), max_length=64, required=False)

    MAX_BYTES = 2 * 1024 * 1024

    def clean(self):
        data = super().clean()
        text = data.get("codes") or ""
        upload = data.get("file")
        if upload is not None:
            if upload.size > self.MAX_BYTES:
                raise forms.ValidationError(_("The file is larger than 2 MB."))
            text += "\n" + upload.read().decode("utf-8-sig", errors="replace")
        data["lines"] = [part for line in text.splitlines() for part in line.split(",")]
        if not any(line.strip() for line in data["lines"]):
            raise forms.ValidationError(_("Give at least one code."))
        return data


class WriteOffForm(TokenForm):
    code = forms.CharField(label=_("coupon code"), max_length=128,
                           widget=forms.TextInput(attrs={"autofocus": True, "size": 30, "autocomplete": "off"}),
                           help_text=_("Typed or scanned; case, spaces and dashes do not matter."))
    bill_amount = forms.DecimalField(label=_("bill amount (CNY)"), max_digits=12, decimal_places=2, min_value=0,
                                     required=False)
    merchant = forms.ModelChoiceField(label=_("merchant"), queryset=Merchant.objects.none(), required=True)

    def __init__(self, *args, merchants, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["merchant"].queryset = merchants
        if merchants.count() == 1:
            self.fields["merchant"].initial = merchants.first()
            self.fields["merchant"].widget = forms.HiddenInput()

"""Finance exports (django-import-export Resources) of settlement runs' lines and clearing lines.

Stable column names (the `column_name`s below never change), amounts as numbers in CNY with two
decimals (a Decimal in XLSX, "12.30" in CSV), dates in the group's time zone, and formula
escaping on for every text cell: a value beginning with = + - @ or a tab/CR (a member named
"=HYPERLINK(...)") is written with a leading apostrophe, so a spreadsheet shows it as text. The
library's own IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT is not used: it turns every cell, numbers
included, into text and only strips a leading "=".
"""

from decimal import Decimal

from django.utils import timezone
from import_export import fields, resources, widgets

from points.timeutils import group_timezone
from settlement.models import ClearingLine, SettlementLine

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class TextWidget(widgets.CharWidget):
    def render(self, value, obj=None, **kwargs):
        return escape_formula("" if value is None else str(value))


class CNYWidget(widgets.Widget):
    def render(self, value, obj=None, **kwargs):
        if value is None:
            return ""
        amount = Decimal(value).quantize(Decimal("0.01"))
        return amount if kwargs.get("force_native_type") else f"{amount:.2f}"


class LocalDateTimeWidget(widgets.Widget):
    def render(self, value, obj=None, **kwargs):
        if value is None:
            return ""
        local = timezone.localtime(value, group_timezone())
        return local.replace(tzinfo=None) if kwargs.get("force_native_type") else local.strftime("%Y-%m-%d %H:%M:%S")


def text(attribute, column):
    return fields.Field(attribute=attribute, column_name=column, widget=TextWidget())


class SettlementLineResource(resources.ModelResource):
    period = fields.Field(column_name="period")
    status = text("run__status", "run_status")
    kind = text("kind", "kind")
    payer = text("payer__code", "payer_code")
    payer_name = text("payer__name", "payer_name")
    payee = text("payee__code", "payee_code")
    payee_name = text("payee__name", "payee_name")
    merchant = text("merchant__code", "merchant_code")
    merchant_name = text("merchant__name", "merchant_name")
    points = fields.Field(attribute="points", column_name="points", widget=widgets.IntegerWidget(coerce_to_string=False))
    amount_cny = fields.Field(attribute="amount_cny", column_name="amount_cny", widget=CNYWidget())
    source = text("source", "source")
    source_count = fields.Field(attribute="source_count", column_name="source_count",
                                widget=widgets.IntegerWidget(coerce_to_string=False))
    first_source_id = fields.Field(attribute="first_source_id", column_name="first_source_id",
                                   widget=widgets.IntegerWidget(coerce_to_string=False))
    last_source_id = fields.Field(attribute="last_source_id", column_name="last_source_id",
                                  widget=widgets.IntegerWidget(coerce_to_string=False))
    closed_at = fields.Field(attribute="run__closed_at", column_name="closed_at", widget=LocalDateTimeWidget())

    class Meta:
        model = SettlementLine
        fields = ("id", "period", "status", "kind", "payer", "payer_name", "payee", "payee_name", "merchant",
                  "merchant_name", "points", "amount_cny", "source", "source_count", "first_source_id",
                  "last_source_id", "closed_at")
        export_order = fields

    def dehydrate_period(self, line):
        return f"{line.run.period:%Y-%m}"

    def get_queryset(self):
        return super().get_queryset().select_related("run", "payer", "payee", "merchant")


class ClearingLineResource(resources.ModelResource):
    posting = fields.Field(attribute="posting_id", column_name="posting_id",
                           widget=widgets.IntegerWidget(coerce_to_string=False))
    booked_at = fields.Field(attribute="created_at", column_name="booked_at", widget=LocalDateTimeWidget())
    kind = text("kind", "kind")
    member_card_no = text("posting__wallet__member__card_no", "member_card_no")
    member_name = text("posting__wallet__member__name", "member_name")
    issuer = text("issuer__code", "issuer_code")
    redeemer = text("redeemer__code", "redeemer_code")
    merchant = text("merchant__code", "merchant_code")
    points = fields.Field(attribute="points", column_name="points", widget=widgets.IntegerWidget(coerce_to_string=False))
    rate_cny = fields.Field(attribute="rate_cny", column_name="rate_cny",
                            widget=widgets.DecimalWidget(coerce_to_string=False))
    amount_cny = fields.Field(attribute="amount_cny", column_name="amount_cny", widget=CNYWidget())

    class Meta:
        model = ClearingLine
        fields = ("id", "posting", "booked_at", "kind", "member_card_no", "member_name", "issuer", "redeemer",
                  "merchant", "points", "rate_cny", "amount_cny")
        export_order = fields

    def get_queryset(self):
        return super().get_queryset().select_related("posting__wallet__member", "issuer", "redeemer", "merchant")

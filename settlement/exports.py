"""Finance exports (django-import-export Resources) of settlement runs' lines and clearing lines.

Stable column names (the `column_name`s below never change), amounts as numbers in CNY with two
decimals (a Decimal in XLSX, "12.30" in CSV), dates in the group's time zone, and formula
escaping on for every text cell: a value beginning with = + - @ or a tab/CR (a member named
"=HYPERLINK(...)") is written with a leading apostrophe, so a spreadsheet shows it as text. The
library's own IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT is not used: it turns every cell, numbers
included, into text and only strips a leading "=".
"""

import csv
import io
from decimal import Decimal

from django.utils import timezone
from import_export import fields, resources, widgets
from openpyxl import Workbook

from points.timeutils import group_timezone
from settlement.models import ClearingLine, SettlementLine
from settlement.liability import BUCKETS
from settlement.periods import period_bounds

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


class LiabilityResource(resources.Resource):
    """Rows of settlement.liability.liability_report: one per issuing BU."""

    business_unit = text("business_unit__code", "business_unit_code")
    business_unit_name = text("business_unit__name", "business_unit_name")
    available = fields.Field(attribute="available", column_name="available_points",
                             widget=widgets.IntegerWidget(coerce_to_string=False))
    pending = fields.Field(attribute="pending", column_name="pending_points",
                           widget=widgets.IntegerWidget(coerce_to_string=False))
    held = fields.Field(attribute="held", column_name="held_points", widget=widgets.IntegerWidget(coerce_to_string=False))
    points = fields.Field(attribute="points", column_name="outstanding_points",
                          widget=widgets.IntegerWidget(coerce_to_string=False))
    rate_cny = fields.Field(attribute="rate_cny", column_name="rate_cny", widget=widgets.DecimalWidget(coerce_to_string=False))
    value_cny = fields.Field(attribute="value_cny", column_name="value_cny", widget=CNYWidget())
    expected_breakage_rate = fields.Field(attribute="expected_breakage_rate", column_name="expected_breakage_rate",
                                          widget=widgets.DecimalWidget(coerce_to_string=False))

    class Meta:
        fields = ("business_unit", "business_unit_name", "available", "pending", "held", "points", "rate_cny",
                  "value_cny", "expected_breakage_rate")
        export_order = fields

    def get_export_headers(self, selected_fields=None):
        return [*super().get_export_headers(selected_fields), *(f"expires_in_{label}_days" for label in bucket_labels())]

    def export_resource(self, instance, selected_fields=None, **kwargs):
        return [*super().export_resource(instance, selected_fields, **kwargs), *instance.buckets.values()]


def bucket_labels() -> list[str]:
    return [label for *_range, label in BUCKETS]


RESOURCES = {"lines": SettlementLineResource, "clearing": ClearingLineResource}


def export_rows(job):
    """The queryset a background export writes, in a stable order."""
    if job.content == "lines":
        return SettlementLineResource().get_queryset().filter(run=job.run).order_by("kind", "payer", "id")
    start, end = period_bounds(job.run.period)
    return ClearingLineResource().get_queryset().filter(created_at__gte=start, created_at__lt=end).order_by("id")


def write_export(job, out, *, batch_size: int, progress) -> int:
    """Write the job's rows to the binary file `out` (XLSX streamed by openpyxl's write-only
    workbook, or CSV in UTF-8 with a BOM, as spreadsheets expect), calling `progress(rows)` after
    every batch. Returns the rows written."""
    resource = RESOURCES[job.content]()
    rows = export_rows(job)
    xlsx = job.format == "xlsx"
    if xlsx:
        book = Workbook(write_only=True)
        sheet = book.create_sheet(job.content)
        append = sheet.append
    else:
        text_out = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
        append = csv.writer(text_out).writerow
    append(resource.get_export_headers())
    written = 0
    for row in rows.iterator(chunk_size=batch_size):
        append(resource.export_resource(row, force_native_type=xlsx))
        written += 1
        if written % batch_size == 0:
            progress(written)
    if xlsx:
        book.save(out)
    else:
        text_out.flush()
        text_out.detach()
    progress(written)
    return written

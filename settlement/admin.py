"""The finance console of settlement: clearing rates (editable), clearing lines, runs with their
lines and inter-BU matrix, the close and recompute actions (calling settlement.services) and
XLSX/CSV exports (settlement.exports). Closing needs settlement.close_settlementrun, exporting
settlement.export_settlement: both are the finance role's."""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export.admin import ExportMixin

from config.errors import DomainError
from config.routers import ReplicaExportsMixin
from members.admin_mixins import ReadOnlyAdminMixin
from settlement.exports import ClearingLineResource, SettlementLineResource
from settlement.models import ClearingLine, ClearingRate, RunEvent, SettlementLine, SettlementRun
from settlement.selectors import matrix
from settlement.services import settlement_run_close, settlement_run_compute


class SettlementExportMixin(ReplicaExportsMixin, ExportMixin):
    def has_export_permission(self, request):
        return request.user.has_perm("settlement.export_settlement")


@admin.register(ClearingRate)
class ClearingRateAdmin(admin.ModelAdmin):
    list_display = ("business_unit", "value_cny", "effective_from", "note", "created_at")
    list_filter = ("business_unit",)


@admin.register(ClearingLine)
class ClearingLineAdmin(SettlementExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "kind", "posting", "issuer", "redeemer", "merchant", "points", "rate_cny",
                    "amount_cny")
    list_filter = ("kind", "issuer", "redeemer", "created_at")
    list_select_related = ("posting", "issuer", "redeemer", "merchant")
    search_fields = ("=posting__id",)
    resource_classes = [ClearingLineResource]


class SettlementLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = SettlementLine
    fields = ("kind", "payer", "payee", "merchant", "points", "amount_cny", "source", "source_count",
              "first_source_id", "last_source_id")
    readonly_fields = fields
    extra = 0


class RunEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RunEvent
    fields = ("at", "action", "from_status", "to_status", "actor")
    readonly_fields = fields
    extra = 0


@admin.register(SettlementRun)
class SettlementRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("period", "status", "computed_at", "closed_at", "closed_by")
    list_filter = ("status",)
    fields = ("period", "status", "created_at", "computed_at", "closed_at", "closed_by", "matrix_table")
    readonly_fields = fields
    inlines = [SettlementLineInline, RunEventInline]
    actions = ["recompute_runs", "close_runs"]

    def has_close_permission(self, request):
        return request.user.has_perm("settlement.close_settlementrun")

    def has_recompute_permission(self, request):
        return request.user.has_perm("settlement.change_settlementrun")

    @admin.display(description=_("inter-BU matrix (rows: issuers owe, columns: redeemers, CNY)"))
    def matrix_table(self, run):
        rows, columns, cells = matrix(run=run)
        if not rows:
            return _("No inter-BU clearing in this period.")
        head = format_html_join("", "<th>{}</th>", ((unit.code,) for unit in columns))
        body = format_html_join(
            "", "<tr><th>{}</th>{}</tr>",
            ((row.code, format_html_join("", "<td>{}</td>", ((cells.get((row.pk, column.pk), ""),) for column in columns)))
             for row in rows),
        )
        return format_html('<table class="settlement-matrix"><tr><th></th>{}</tr>{}</table>', head, body)

    @admin.action(permissions=["recompute"], description=_("Recompute the selected draft runs"))
    def recompute_runs(self, request, queryset):
        self._apply(request, queryset, lambda run: settlement_run_compute(period=run.period, actor=request.user),
                    lambda n: ngettext("%(n)d run recomputed.", "%(n)d runs recomputed.", n) % {"n": n})

    @admin.action(permissions=["close"], description=_("Close the selected runs (their lines become final)"))
    def close_runs(self, request, queryset):
        self._apply(request, queryset, lambda run: settlement_run_close(run_id=run.pk, actor=request.user),
                    lambda n: ngettext("%(n)d run closed.", "%(n)d runs closed.", n) % {"n": n})

    def _apply(self, request, queryset, operation, done_message):
        done = 0
        for run in queryset.order_by("period"):
            try:
                operation(run)
                done += 1
            except DomainError as error:
                self.message_user(request, f"{run.period:%Y-%m}: {error.detail}", messages.ERROR)
        if done:
            self.message_user(request, done_message(done), messages.SUCCESS)


@admin.register(SettlementLine)
class SettlementLineAdmin(SettlementExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("run", "kind", "payer", "payee", "merchant", "points", "amount_cny", "source_count",
                    "first_source_id", "last_source_id")
    list_filter = ("run__period", "run__status", "kind", "payer", "payee")
    list_select_related = ("run", "payer", "payee", "merchant")
    resource_classes = [SettlementLineResource]

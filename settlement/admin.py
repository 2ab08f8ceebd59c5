"""The finance console of settlement: clearing rates (editable), clearing lines, runs with their
lines and inter-BU matrix, the close and recompute actions (calling settlement.services) and
XLSX/CSV exports (settlement.exports). Closing needs settlement.close_settlementrun, exporting
settlement.export_settlement: both are the finance role's."""

from datetime import date

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV, XLSX

from config.errors import DomainError
from config.routers import ReplicaExportsMixin
from members.admin_mixins import ReadOnlyAdminMixin
from points.timeutils import local_date
from settlement.exports import ClearingLineResource, LiabilityResource, SettlementLineResource, bucket_labels
from settlement.liability import liability_report
from settlement.models import (
    ClearingLine,
    ClearingRate,
    ExportContent,
    ExportFormat,
    ExportJob,
    ExportStatus,
    RunEvent,
    SettlementLine,
    SettlementRun,
)
from settlement.selectors import matrix
from settlement.services import export_request, settlement_run_close, settlement_run_compute


def may_export(request) -> bool:
    return request.user.has_perm("settlement.export_settlement")


class SettlementExportMixin(ReplicaExportsMixin, ExportMixin):
    def has_export_permission(self, request):
        return may_export(request)


class LiabilityForm(forms.Form):
    as_of = forms.DateField(label=_("as of (end of day, group time zone)"), required=False,
                            help_text=_("Empty: now. Format: 2026-03-31."))


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
    actions = ["recompute_runs", "close_runs", "export_clearing_xlsx", "export_clearing_csv", "export_lines_xlsx"]
    change_list_template = "admin/settlement/settlementrun/change_list.html"

    def has_export_permission(self, request):
        return may_export(request)

    def get_urls(self):
        return [
            path("liability/", self.admin_site.admin_view(self.liability_view), name="settlement_liability"),
            *super().get_urls(),
        ]

    def liability_view(self, request):
        """Outstanding liability and aging per issuing BU as of a date; ?format=csv|xlsx exports it
        (finance only)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = LiabilityForm(request.GET or None)
        as_of = (form.cleaned_data.get("as_of") if form.is_valid() else None) or local_date(timezone.now())
        rows = liability_report(as_of=as_of)
        export_format = request.GET.get("format")
        if export_format in ("csv", "xlsx"):
            if not may_export(request):
                raise PermissionDenied
            return liability_download(rows, as_of=as_of, export_format=export_format)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": _("Liability and aging"),
            "form": form, "rows": rows, "as_of": as_of, "bucket_labels": bucket_labels(),
            "may_export": may_export(request),
        }
        return TemplateResponse(request, "admin/settlement/liability.html", context)

    @admin.action(permissions=["export"], description=_("Export the period's clearing lines (XLSX, in the background)"))
    def export_clearing_xlsx(self, request, queryset):
        self._queue_exports(request, queryset, ExportContent.CLEARING, ExportFormat.XLSX)

    @admin.action(permissions=["export"], description=_("Export the period's clearing lines (CSV, in the background)"))
    def export_clearing_csv(self, request, queryset):
        self._queue_exports(request, queryset, ExportContent.CLEARING, ExportFormat.CSV)

    @admin.action(permissions=["export"], description=_("Export the run's lines (XLSX, in the background)"))
    def export_lines_xlsx(self, request, queryset):
        self._queue_exports(request, queryset, ExportContent.LINES, ExportFormat.XLSX)

    def _queue_exports(self, request, queryset, content, export_format):
        for run in queryset.order_by("period"):
            export_request(run=run, content=content, format=export_format, actor=request.user)
        self.message_user(request, _("Export queued: follow its progress under Settlement exports."), messages.SUCCESS)

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


def liability_download(rows, *, as_of: date, export_format: str) -> HttpResponse:
    file_format = XLSX() if export_format == "xlsx" else CSV()
    dataset = LiabilityResource().export(queryset=rows, force_native_type=export_format == "xlsx")
    response = HttpResponse(file_format.export_data(dataset), content_type=file_format.get_content_type())
    response["Content-Disposition"] = f'attachment; filename="liability-{as_of:%Y-%m-%d}.{export_format}"'
    return response


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Background exports: their progress and, once done, the download (finance only)."""

    list_display = ("id", "run", "content", "format", "status", "progress", "download", "requested_by", "created_at",
                    "finished_at")
    list_filter = ("status", "content", "format")
    list_select_related = ("run", "requested_by")
    fields = ("run", "content", "format", "status", "rows_done", "rows_total", "error", "requested_by", "created_at",
              "finished_at")
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        return may_export(request)

    def has_module_permission(self, request):
        return may_export(request)

    @admin.display(description=_("progress"))
    def progress(self, job):
        return format_html('<progress max="100" value="{}"></progress> {}% ({}/{})', job.progress_percent,
                           job.progress_percent, job.rows_done, job.rows_total)

    @admin.display(description=_("file"))
    def download(self, job):
        if job.status != ExportStatus.DONE:
            return ""
        return format_html('<a href="{}">{}</a>', reverse("admin:settlement_exportjob_download", args=[job.pk]),
                           _("Download"))

    def get_urls(self):
        return [
            path("<int:job_id>/download/", self.admin_site.admin_view(self.download_view),
                 name="settlement_exportjob_download"),
            *super().get_urls(),
        ]

    def download_view(self, request, job_id: int):
        if not may_export(request):
            raise PermissionDenied
        job = ExportJob.objects.filter(pk=job_id, status=ExportStatus.DONE).first()
        if job is None:
            raise Http404
        return FileResponse(job.file.open("rb"), as_attachment=True, filename=job.file.name.rsplit("/", 1)[-1])

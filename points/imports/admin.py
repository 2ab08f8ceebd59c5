"""Console of member imports: upload a file (a dry run by default), follow its progress, read
its report, then run the real import of the same file. Every run is a celery task
(points.tasks.member_import); the page refreshes itself while the import runs."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from points.imports.models import ImportStatus, MemberImport
from points.imports.reading import UnreadableFile
from points.imports.services import member_import_again, member_import_create
from points.member_panels import html_table
from points.tasks import member_import as member_import_task

REFRESH_SECONDS = 3


def _queue(import_id: int) -> None:
    """Start the import's task once the console's transaction (the admin's) has committed it."""
    transaction.on_commit(lambda: member_import_task.delay(import_id))


class MemberImportForm(forms.ModelForm):
    upload = forms.FileField(label=_("file"), help_text=_("CSV (UTF-8) or XLSX, with a header row: see docs/import.md."))

    class Meta:
        model = MemberImport
        fields = ("dry_run",)

    def clean_upload(self):
        upload = self.cleaned_data["upload"]
        if not upload.name.lower().endswith((".csv", ".xlsx")):
            raise forms.ValidationError(_("Upload a .csv or .xlsx file."))
        return upload


@admin.register(MemberImport)
class MemberImportAdmin(admin.ModelAdmin):
    list_display = ("id", "file_name", "dry_run", "status", "progress", "created", "updated", "skipped", "error_count",
                    "openings_posted", "actor", "created_at")
    list_filter = ("status", "dry_run")
    actions = ["run_for_real"]
    readonly_fields = ("file_name", "dry_run", "status", "progress", "report", "refused_rows", "failure", "actor",
                       "created_at", "started_at", "finished_at")
    fields = readonly_fields

    def has_module_permission(self, request):
        return request.user.has_perm("points.import_members") or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("points.import_members")

    def has_add_permission(self, request):
        return request.user.has_perm("points.import_members")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_run_permission(self, request):
        return request.user.has_perm("points.import_members")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MemberImportForm
            kwargs["fields"] = ("dry_run",)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ("upload", "dry_run") if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        """The file is stored and the import queued through the service (a celery task runs it)."""
        upload = form.cleaned_data["upload"]
        try:
            created = member_import_create(file_name=upload.name, content=upload, dry_run=form.cleaned_data["dry_run"],
                                           actor=request.user)
        except UnreadableFile as exc:
            self.message_user(request, str(exc), messages.ERROR)
            created = MemberImport.objects.create(file_name=upload.name, digest="", dry_run=True,
                                                  status=ImportStatus.FAILED, failure=str(exc), actor=request.user)
        obj.pk = created.pk
        obj._state.adding = False
        if created.status == ImportStatus.QUEUED:
            _queue(created.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """While the import runs, the page reloads itself to show its progress."""
        response = super().change_view(request, object_id, form_url, extra_context)
        member_import = MemberImport.objects.filter(pk=object_id).only("status").first()
        if member_import and member_import.status in (ImportStatus.QUEUED, ImportStatus.RUNNING):
            response["Refresh"] = str(REFRESH_SECONDS)
        return response

    @admin.display(description=_("progress"))
    def progress(self, obj):
        return format_html(
            '<progress max="100" value="{}"></progress> {}% ({} / {})', obj.percent, obj.percent, obj.rows_done,
            obj.total_rows,
        )

    @admin.display(description=_("report"))
    def report(self, obj):
        rows = [
            (_("members created"), obj.created), (_("members updated"), obj.updated),
            (_("members unchanged"), obj.skipped), (_("rows refused"), obj.error_count),
            (_("opening balances posted"), obj.openings_posted), (_("opening points posted"), obj.opening_points),
            (_("opening balances already posted"), obj.openings_replayed),
        ]
        note = _("A dry run: nothing was written. These are the figures the real import would give.") if obj.dry_run else ""
        return format_html("{}<p>{}</p>", html_table((_("figure"), _("count")), rows), note)

    @admin.display(description=_("refused rows"))
    def refused_rows(self, obj):
        rows = [
            (item["row"], format_html_join(
                mark_safe("<br>"), "{} · <code>{}</code> · {}",  # noqa: S308 - a constant
                ((error["field"], error["code"], error["message"]) for error in item["errors"]),
            ))
            for item in obj.errors
        ]
        shown = "" if obj.error_count <= len(obj.errors) else _("(the first %(count)d shown)") % {"count": len(rows)}
        return format_html("{}<p>{}</p>", html_table((_("file row"), _("reasons")), rows), shown)

    @admin.action(permissions=["run"], description=_("Run the real import of the selected dry runs"))
    def run_for_real(self, request, queryset):
        queued = 0
        for dry in queryset.filter(dry_run=True, status=ImportStatus.DONE):
            real = member_import_again(member_import=dry, dry_run=False, actor=request.user)
            _queue(real.pk)
            queued += 1
        self.message_user(
            request,
            ngettext("%(count)d import queued.", "%(count)d imports queued.", queued) % {"count": queued},
            messages.SUCCESS if queued else messages.WARNING,
        )

"""Operator console for notifications: templates (edited in the console, checked when saved,
previewed for a chosen member), the notification log (read-only; failed messages can be
retried) and the run report (sent, skipped for consent, failed, per job run)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template import Template, TemplateSyntaxError
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from simple_history.admin import SimpleHistoryAdmin

from members.admin_mixins import ReadOnlyAdminMixin
from members.models import Member, MemberLanguage
from members.notifications.models import (
    Channel,
    NotificationKind,
    NotificationLog,
    NotificationStatus,
    NotificationTemplate,
)
from members.notifications.rendering import Sources, default_sources, render_sources, template_sources
from members.notifications.samples import sample_context
from members.notifications.selectors import member_latest_context, run_reports
from members.notifications.services import notification_template_save, notifications_retry


def _check_template(source: str) -> None:
    try:
        Template(source)
    except TemplateSyntaxError as error:
        raise ValidationError(_("The template does not compile: %(error)s"), params={"error": error}) from error


class NotificationTemplateForm(forms.ModelForm):
    class Meta:
        model = NotificationTemplate
        fields = ["kind", "channel", "language", "subject", "body_text", "body_html", "is_active"]

    def clean_subject(self):
        _check_template(self.cleaned_data["subject"])
        return self.cleaned_data["subject"]

    def clean_body_text(self):
        _check_template(self.cleaned_data["body_text"])
        return self.cleaned_data["body_text"]

    def clean_body_html(self):
        _check_template(self.cleaned_data["body_html"])
        return self.cleaned_data["body_html"]


class PreviewForm(forms.Form):
    kind = forms.ChoiceField(label=_("kind"), choices=NotificationKind.choices)
    channel = forms.ChoiceField(label=_("channel"), choices=Channel.choices)
    language = forms.ChoiceField(label=_("language"), choices=MemberLanguage.choices, required=False,
                                 help_text=_("Empty: the member's language."))
    member = forms.ModelChoiceField(label=_("member"), queryset=Member.objects.all(), widget=forms.NumberInput,
                                    help_text=_("The member's id."))
    subject = forms.CharField(label=_("subject"), required=False, validators=[_check_template],
                              help_text=_("Empty: the template in use."))
    body_text = forms.CharField(label=_("text"), required=False, widget=forms.Textarea, validators=[_check_template],
                                help_text=_("Empty: the template in use. Try a change here before saving it."))
    body_html = forms.CharField(label=_("HTML"), required=False, widget=forms.Textarea, validators=[_check_template])


@admin.register(NotificationTemplate)
class NotificationTemplateAdmin(SimpleHistoryAdmin):
    form = NotificationTemplateForm
    list_display = ("kind", "channel", "language", "subject", "is_active", "updated_at", "preview_link")
    list_filter = ("kind", "channel", "language", "is_active")

    @admin.display(description=_("preview"))
    def preview_link(self, template):
        url = reverse("admin:members_notificationtemplate_preview")
        return format_html('<a href="{}?kind={}&channel={}&language={}">{}</a>', url, template.kind, template.channel,
                           template.language, _("preview"))

    def get_changeform_initial_data(self, request):
        """A new template starts from the file it replaces, when kind, channel and language are given."""
        initial = super().get_changeform_initial_data(request)
        if {"kind", "channel", "language"} <= initial.keys():
            try:
                sources = default_sources(kind=initial["kind"], channel=initial["channel"], language=initial["language"])
            except Exception:  # noqa: BLE001 - no such file: start empty
                return initial
            initial.update(subject=sources.subject, body_text=sources.text, body_html=sources.html)
        return initial

    def save_model(self, request, obj, form, change):
        notification_template_save(template=obj)

    def get_urls(self):
        return [
            path("preview/", self.admin_site.admin_view(self.preview_view), name="members_notificationtemplate_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        """Render a template (the one in use, or the text typed here) for a chosen member: with
        the context of their latest message of that kind, else sample figures. Nothing is sent."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PreviewForm(request.POST or None, initial=request.GET.dict())
        rendered = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            member = data["member"]
            language = data["language"] or member.language
            sources = template_sources(kind=data["kind"], channel=data["channel"], language=language)
            sources = Sources(subject=data["subject"] or sources.subject, text=data["body_text"] or sources.text,
                              html=data["body_html"] or sources.html)
            context = member_latest_context(member_id=member.pk, kind=data["kind"]) or sample_context(
                data["kind"], name=member.name or member.phone[-4:], card_no_tail=member.card_no[-4:]
            )
            try:
                rendered = render_sources(sources, context=context, language=language)
            except TemplateSyntaxError as error:
                form.add_error(None, str(error))
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": _("Preview a message"),
            "form": form, "rendered": rendered,
        }
        return TemplateResponse(request, "admin/members/notificationtemplate/preview.html", context)


@admin.register(NotificationLog)
class NotificationLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: rows are written by the jobs; a failed one can be retried."""

    list_display = ("key", "kind", "channel", "member", "recipient", "status", "skip_reason", "attempts", "created_at",
                    "sent_at")
    list_filter = ("status", "kind", "channel", "skip_reason", "run")
    search_fields = ("key", "run", "recipient", "member__phone", "member__card_no")
    list_select_related = ("member",)
    readonly_fields = [field.name for field in NotificationLog._meta.fields]
    actions = ["retry"]
    change_list_template = "admin/members/notificationlog/change_list.html"

    def has_change_permission(self, request, obj=None):
        # Read-only fields, but the retry action needs the change permission of real operators.
        return obj is None and request.user.has_perm("members.change_notificationlog")

    @admin.action(permissions=["change"], description=_("Retry the selected failed messages"))
    def retry(self, request, queryset):
        failed = list(queryset.filter(status=NotificationStatus.FAILED).values_list("pk", flat=True))
        queued = notifications_retry(log_ids=failed)
        self.message_user(request, ngettext("%(count)d message queued again.", "%(count)d messages queued again.",
                                            len(queued)) % {"count": len(queued)}, messages.SUCCESS)
        if len(queued) < queryset.count():
            self.message_user(request, _("Only failed messages are retried."), messages.WARNING)

    def get_urls(self):
        return [
            path("report/", self.admin_site.admin_view(self.report_view), name="members_notificationlog_report"),
            *super().get_urls(),
        ]

    def report_view(self, request):
        """Per job run: sent, skipped for consent, other skips, failed and still waiting."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": _("Run report"),
            "reports": run_reports(),
        }
        return TemplateResponse(request, "admin/members/notificationlog/report.html", context)

"""Operator console for tiers.

Programmes and levels are edited here. Member tiers and their history are read-only: a tier
moves only through the services (earning, the requalification job, or the "set tier by hand"
action, which calls tier_set_manual with `actor=request.user`).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from config.errors import DomainError
from members.admin_mixins import ReadOnlyAdminMixin
from points.timeutils import end_of_local_day, local_date
from tiers.models import MemberTier, TierChange, TierLevel, TierProgramme
from tiers.selectors import member_tier_history
from tiers.services import tier_set_manual

HISTORY_ROWS = 50


class TierLevelInline(admin.TabularInline):
    model = TierLevel
    extra = 0
    fields = ("rank", "code", "name", "threshold", "earn_multiplier", "expiry_extension_months",
              "redemption_discount_percent")


@admin.register(TierProgramme)
class TierProgrammeAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "basis", "window_months", "grace_days", "is_active")
    list_filter = ("is_active", "basis")
    inlines = [TierLevelInline]


@admin.register(TierLevel)
class TierLevelAdmin(admin.ModelAdmin):
    list_display = ("programme", "rank", "code", "name", "threshold", "earn_multiplier", "expiry_extension_months",
                    "redemption_discount_percent")
    list_filter = ("programme",)
    list_select_related = ("programme",)
    search_fields = ("code", "name")


class ManualTierForm(forms.Form):
    level = forms.ModelChoiceField(label=_("tier"), queryset=TierLevel.objects.none())
    ends_on = forms.DateField(
        label=_("until (inclusive)"), widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("The tier applies to the end of this day (group time zone); then the earned tier returns."),
    )
    reason = forms.CharField(label=_("reason"), max_length=200, widget=forms.TextInput(attrs={"size": 60}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["level"].queryset = TierLevel.objects.filter(programme__is_active=True).order_by("rank")

    def clean_ends_on(self):
        ends_on = self.cleaned_data["ends_on"]
        if ends_on < local_date(timezone.now()):
            raise forms.ValidationError(_("The end date is in the past."))
        return ends_on

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("A reason is required."))
        return reason


@admin.register(MemberTier)
class MemberTierAdmin(admin.ModelAdmin):
    list_display = ("member", "level", "override_level", "override_ends_at", "qualifying_value", "since",
                    "below_since", "evaluated_at")
    list_filter = ("programme", "level", "override_level")
    list_select_related = ("member", "level", "override_level")
    search_fields = ("member__phone", "member__card_no", "member__name")
    readonly_fields = ("member", "programme", "level", "since", "qualifying_value", "evaluated_at", "below_since",
                       "override_level", "override_reason", "override_ends_at", "override_set_by", "history_panel")
    actions = ["set_manual_tier"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_set_manual_tier_permission(self, request):
        return request.user.has_perm("tiers.set_manual_tier")

    @admin.display(description=_("tier history"))
    def history_panel(self, member_tier):
        changes = member_tier_history(member=member_tier.member).select_related("actor")[:HISTORY_ROWS]
        rows = format_html_join("", "<tr>{}</tr>", (
            (format_html_join("", "<td>{}</td>", ((cell,) for cell in (
                f"{timezone.localtime(change.at):%Y-%m-%d %H:%M}", change.get_kind_display(),
                change.from_level or "-", change.to_level or "-", change.qualifying_value, change.reason or "-",
                change.actor or "-",
            ))),)
            for change in changes
        ))
        head = format_html_join("", "<th>{}</th>", ((label,) for label in (
            _("at"), _("kind"), _("from"), _("to"), _("qualifying value"), _("reason"), _("operator"),
        )))
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, rows)

    @admin.action(permissions=["set_manual_tier"], description=_("Set tier by hand"))
    def set_manual_tier(self, request, queryset):
        form = ManualTierForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            data = form.cleaned_data
            ends_at = end_of_local_day(data["ends_on"])
            done = 0
            for member_tier in queryset.select_related("member"):
                try:
                    tier_set_manual(member_id=member_tier.member_id, level=data["level"], reason=data["reason"],
                                    ends_at=ends_at, actor=request.user)
                    done += 1
                except DomainError as exc:
                    self.message_user(request, f"{member_tier.member}: {exc.detail}", messages.ERROR)
            if done:
                self.message_user(request, ngettext("%(count)d member's tier set by hand.",
                                                    "%(count)d members' tiers set by hand.", done) % {"count": done},
                                  messages.SUCCESS)
            return None
        return TemplateResponse(request, "admin/action_form.html", {
            **self.admin_site.each_context(request),
            "title": _("Set tier by hand"),
            "submit_label": _("Set tier"),
            "opts": self.model._meta,
            "form": form,
            "queryset": queryset,
            "action": "set_manual_tier",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })


@admin.register(TierChange)
class TierChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "member", "kind", "from_level", "to_level", "qualifying_value", "actor")
    list_filter = ("kind", "to_level")
    list_select_related = ("member", "from_level", "to_level", "actor")
    search_fields = ("member__phone", "member__card_no", "member__name")
    date_hierarchy = "at"

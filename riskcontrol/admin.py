"""The risk console: rules (audited), the review queue with its evidence and timeline, blocked
attempts, freezes, the blacklist, adjustment requests (maker-checker) and limits, and the risk
dashboard. Decisions are admin actions with a reason form, each calling one service per row
with `actor=request.user`; cases, requests and attempts are read-only otherwise."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from simple_history.admin import SimpleHistoryAdmin

from config.errors import DomainError
from config.routers import replica_reads
from members.admin_mixins import ReadOnlyAdminMixin
from riskcontrol.forms import BlacklistEntryForm, ReasonForm, RiskFreezeForm, RiskRuleForm
from riskcontrol.models import (
    AdjustmentRequest,
    AdjustmentRequestEvent,
    AdjustmentThreshold,
    BlacklistEntry,
    BlockedAttempt,
    OperatorMember,
    RiskCase,
    RiskCaseEvent,
    RiskDevice,
    RiskDeviceUse,
    RiskFreeze,
    RiskFreezeEvent,
    RiskRule,
)
from riskcontrol.selectors import case_held_points, risk_dashboard
from riskcontrol.services import (
    adjustment_request_approve,
    adjustment_request_reject,
    adjustment_request_withdraw,
    blacklist_add,
    blacklist_remove,
    case_approve,
    case_reject,
    freeze_lift,
    freeze_open,
    risk_rule_save,
)


def member_link(member):
    return format_html('<a href="{}">{}</a>', reverse("admin:members_member_change", args=[member.pk]), member)


def posting_link(posting_id):
    return format_html('<a href="{}">#{}</a>', reverse("admin:points_posting_change", args=[posting_id]), posting_id)


def html_table(headers, rows):
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def local_minute(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}" if moment else "–"


class ReasonActionMixin:
    """An action's intermediate reason form, then one service call per selected row; each
    domain error is shown for its row, the others still go through."""

    def run_with_reason(self, request, queryset, *, apply, title, submit_label, done):
        if "apply" in request.POST:
            form = ReasonForm(request.POST)
            if form.is_valid():
                applied = 0
                for row in queryset:
                    try:
                        apply(row, form.cleaned_data["reason"])
                    except DomainError as exc:
                        self.message_user(request, f"{row}: {exc.detail}", messages.ERROR)
                        continue
                    applied += 1
                if applied:
                    self.message_user(request, done(applied) % {"count": applied}, messages.SUCCESS)
                return None
        else:
            form = ReasonForm()
        context = {
            **self.admin_site.each_context(request),
            "title": title, "submit_label": submit_label, "form": form, "queryset": queryset, "opts": self.opts,
            "action": request.POST.get("action", ""), "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/riskcontrol/action_form.html", context)


# --- rules -----------------------------------------------------------------------------------


@admin.register(RiskRule)
class RiskRuleAdmin(SimpleHistoryAdmin):
    """Rules are switched off, never deleted: cases and blocked attempts refer to them."""

    form = RiskRuleForm
    list_display = ("code", "name", "kind", "threshold", "window_minutes", "scope", "action", "is_active", "active_since")
    list_filter = ("is_active", "kind", "action", "scope")
    search_fields = ("code", "name")
    autocomplete_fields = ("business_unit", "merchant")
    readonly_fields = ("active_since", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("code", "name", "description", "is_active", "active_since")}),
        (_("What it judges"), {"fields": ("kind", "threshold", "window_minutes", "min_points")}),
        (_("Scope"), {"fields": ("scope", "bu_kind", "business_unit", "merchant")}),
        (_("Action"), {"fields": ("action", "freeze_mode", "freeze_days")}),
        (_("Audit"), {"fields": ("created_at", "updated_at")}),
    )

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        risk_rule_save(rule=obj)


# --- the review queue ------------------------------------------------------------------------


class RiskCaseEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RiskCaseEvent
    extra = 0
    can_delete = False
    fields = ("at", "from_status", "to_status", "note", "reason", "actor")
    readonly_fields = ("at",)
    verbose_name_plural = _("timeline")


@admin.register(RiskCase)
class RiskCaseAdmin(ReasonActionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("reference", "created_at", "member_ref", "rule", "operation", "action", "points", "held_points",
                    "status", "decided_by")
    list_filter = ("status", "action", "origin", "operation", "rule", "created_at")
    search_fields = ("=reference", "=member__phone", "=member__card_no", "=device_id", "=client_address")
    list_select_related = ("member", "rule", "decided_by")
    show_full_result_count = False
    ordering = ("-id",)
    actions = ["approve_cases", "reject_cases"]
    change_list_template = "admin/riskcontrol/riskcase/change_list.html"
    inlines = [RiskCaseEventInline]
    fieldsets = (
        (None, {"fields": ("reference", "status", "member_ref", "origin", "rule", "operation", "action")}),
        (_("What happened"), {"fields": ("earn_ref", "business_unit", "points", "held_points", "held_now",
                                         "device_id", "client_address", "created_at")}),
        (_("Evidence"), {"fields": ("evidence_panel", "device_panel")}),
        (_("Decision"), {"fields": ("decided_at", "decided_by", "decision_reason")}),
    )
    readonly_fields = (
        "reference", "status", "member_ref", "origin", "rule", "operation", "action", "earn_ref", "business_unit",
        "points", "held_points", "held_now", "device_id", "client_address", "created_at", "evidence_panel",
        "device_panel", "decided_at", "decided_by", "decision_reason",
    )

    @admin.display(description=_("member"), ordering="member")
    def member_ref(self, case):
        return member_link(case.member)

    @admin.display(description=_("earn"))
    def earn_ref(self, case):
        return posting_link(case.posting_id) if case.posting_id else "–"

    @admin.display(description=_("still held"))
    def held_now(self, case):
        return case_held_points(case=case)

    @admin.display(description=_("rules that fired"))
    def evidence_panel(self, case):
        rows = []
        for finding in case.evidence.get("findings", []):
            facts = {k: v for k, v in finding.items() if k not in ("origin", "rule", "kind", "action")}
            rows.append((finding.get("rule") or finding.get("origin"), finding.get("kind") or "–", finding.get("action"),
                         "; ".join(f"{key}: {value}" for key, value in facts.items())))
        return html_table((_("rule"), _("kind"), _("action"), _("what it saw")), rows)

    @admin.display(description=_("other members on the device or address"))
    def device_panel(self, case):
        others = sorted({
            member_id for finding in case.evidence.get("findings", []) for member_id in finding.get("other_members", [])
        })
        if not others:
            return "–"
        links = format_html_join(", ", '<a href="{}">#{}</a>', (
            (reverse("admin:members_member_change", args=[member_id]), member_id) for member_id in others
        ))
        cases = reverse("admin:riskcontrol_riskcase_changelist") + f"?q={case.device_id or case.client_address}"
        return format_html('{} · <a href="{}">{}</a>', links, cases, _("cases on this device"))

    def has_review_permission(self, request):
        return request.user.has_perm("riskcontrol.review_riskcase")

    @admin.action(permissions=["review"], description=_("Approve the selected cases (release held points)"))
    def approve_cases(self, request, queryset):
        return self.run_with_reason(
            request, queryset, apply=lambda case, reason: case_approve(case_id=case.pk, actor=request.user, reason=reason),
            title=_("Approve cases"), submit_label=_("Approve"),
            done=lambda n: ngettext("%(count)d case approved.", "%(count)d cases approved.", n),
        )

    @admin.action(permissions=["review"], description=_("Reject the selected cases (reverse their earns)"))
    def reject_cases(self, request, queryset):
        return self.run_with_reason(
            request, queryset, apply=lambda case, reason: case_reject(case_id=case.pk, actor=request.user, reason=reason),
            title=_("Reject cases"), submit_label=_("Reject"),
            done=lambda n: ngettext("%(count)d case rejected.", "%(count)d cases rejected.", n),
        )

    def get_urls(self):
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="riskcontrol_dashboard"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        with replica_reads():  # a dashboard may lag the primary by a moment (config.routers)
            dashboard = risk_dashboard()
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": _("Risk dashboard"),
            "dashboard": dashboard,
        }
        return TemplateResponse(request, "admin/riskcontrol/dashboard.html", context)


@admin.register(BlockedAttempt)
class BlockedAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("reference", "created_at", "operation", "member", "rule", "origin", "business_unit", "device_id",
                    "client_address")
    list_filter = ("operation", "origin", "rule", "created_at")
    search_fields = ("=reference", "=member__phone", "=member__card_no", "=device_id", "=client_address")
    list_select_related = ("member", "rule", "business_unit")
    show_full_result_count = False
    ordering = ("-id",)


class RiskDeviceUseInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RiskDeviceUse
    extra = 0
    fields = ("member", "first_seen_at", "last_seen_at")
    ordering = ("-last_seen_at",)


@admin.register(RiskDevice)
class RiskDeviceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("kind", "value")
    list_filter = ("kind",)
    search_fields = ("=value",)
    inlines = [RiskDeviceUseInline]


# --- freezes and the blacklist ---------------------------------------------------------------


class RiskFreezeEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RiskFreezeEvent
    extra = 0
    fields = ("at", "event", "reason", "actor")
    readonly_fields = ("at",)


@admin.register(RiskFreeze)
class RiskFreezeAdmin(ReasonActionMixin, admin.ModelAdmin):
    """Freezes are opened here (freeze_open) and lifted by the action (freeze_lift), never edited."""

    form = RiskFreezeForm
    list_display = ("member", "mode", "reason", "starts_at", "ends_at", "lifted_at", "actor", "case")
    list_filter = ("mode", "lifted_at", "starts_at")
    search_fields = ("=member__phone", "=member__card_no", "reason")
    list_select_related = ("member", "actor", "case")
    autocomplete_fields = ("member",)
    actions = ["lift_freezes"]
    inlines = [RiskFreezeEventInline]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        freeze = freeze_open(member_id=data["member"].pk, mode=data["mode"], reason=data["reason"],
                             actor=request.user, ends_at=data["ends_at"])
        obj.pk = freeze.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        """Nothing to save: the service wrote the freeze and its event."""

    def has_lift_permission(self, request):
        return request.user.has_perm("riskcontrol.change_riskfreeze")

    @admin.action(permissions=["lift"], description=_("Lift the selected freezes"))
    def lift_freezes(self, request, queryset):
        return self.run_with_reason(
            request, queryset, apply=lambda freeze, reason: freeze_lift(freeze_id=freeze.pk, reason=reason,
                                                                        actor=request.user),
            title=_("Lift freezes"), submit_label=_("Lift"),
            done=lambda n: ngettext("%(count)d freeze lifted.", "%(count)d freezes lifted.", n),
        )


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(ReasonActionMixin, SimpleHistoryAdmin):
    """Entries are added here (blacklist_add) and taken off by the action (kept, with who and when)."""

    form = BlacklistEntryForm
    list_display = ("kind", "value", "action", "reason", "created_at", "expires_at", "removed_at", "actor")
    list_filter = ("kind", "action", "removed_at", "expires_at")
    search_fields = ("=value", "reason")
    list_select_related = ("actor",)
    actions = ["remove_entries"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        entry = blacklist_add(kind=data["kind"], value=data["value"], action=data["action"], reason=data["reason"],
                              actor=request.user, expires_at=data["expires_at"])
        obj.pk = entry.pk
        obj._state.adding = False

    def has_remove_permission(self, request):
        return request.user.has_perm("riskcontrol.change_blacklistentry")

    @admin.action(permissions=["remove"], description=_("Take the selected entries off the blacklist"))
    def remove_entries(self, request, queryset):
        return self.run_with_reason(
            request, queryset, apply=lambda entry, reason: blacklist_remove(entry_id=entry.pk, actor=request.user),
            title=_("Take entries off the blacklist"), submit_label=_("Remove"),
            done=lambda n: ngettext("%(count)d entry removed.", "%(count)d entries removed.", n),
        )


# --- maker-checker ---------------------------------------------------------------------------


class AdjustmentRequestEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = AdjustmentRequestEvent
    extra = 0
    fields = ("at", "from_status", "to_status", "reason", "actor")
    readonly_fields = ("at",)


@admin.register(AdjustmentRequest)
class AdjustmentRequestAdmin(ReasonActionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Requests are made by the member console's adjust action (above the operator's limit) and
    decided only by these actions: no change form, no import. The service refuses the maker, and
    a database constraint refuses a request decided by its maker whatever wrote it."""

    list_display = ("id", "created_at", "member", "points", "business_unit", "reason_code", "reason", "maker", "status",
                    "checker", "expires_at", "posting")
    list_filter = ("status", "reason_code", "created_at")
    search_fields = ("=member__phone", "=member__card_no", "reason")
    list_select_related = ("member", "business_unit", "maker", "checker", "posting")
    actions = ["approve_requests", "reject_requests", "withdraw_requests"]
    inlines = [AdjustmentRequestEventInline]

    def has_approve_permission(self, request):
        return request.user.has_perm("riskcontrol.approve_adjustmentrequest")

    def has_withdraw_permission(self, request):
        return request.user.is_staff

    @admin.action(permissions=["approve"], description=_("Approve the selected requests (post the adjustments)"))
    def approve_requests(self, request, queryset):
        return self.run_with_reason(
            request, queryset,
            apply=lambda row, reason: self._approved(request, adjustment_request_approve(
                request_id=row.pk, checker=request.user, reason=reason)),
            title=_("Approve adjustment requests"), submit_label=_("Approve"),
            done=lambda n: ngettext("%(count)d request decided.", "%(count)d requests decided.", n),
        )

    def _approved(self, request, row):
        if row.failure:
            self.message_user(request, f"#{row.pk}: {row.failure}", messages.WARNING)

    @admin.action(permissions=["approve"], description=_("Reject the selected requests"))
    def reject_requests(self, request, queryset):
        return self.run_with_reason(
            request, queryset,
            apply=lambda row, reason: adjustment_request_reject(request_id=row.pk, checker=request.user, reason=reason),
            title=_("Reject adjustment requests"), submit_label=_("Reject"),
            done=lambda n: ngettext("%(count)d request rejected.", "%(count)d requests rejected.", n),
        )

    @admin.action(permissions=["withdraw"], description=_("Withdraw my selected requests"))
    def withdraw_requests(self, request, queryset):
        return self.run_with_reason(
            request, queryset,
            apply=lambda row, reason: adjustment_request_withdraw(request_id=row.pk, maker=request.user, reason=reason),
            title=_("Withdraw adjustment requests"), submit_label=_("Withdraw"),
            done=lambda n: ngettext("%(count)d request withdrawn.", "%(count)d requests withdrawn.", n),
        )


@admin.register(AdjustmentThreshold)
class AdjustmentThresholdAdmin(admin.ModelAdmin):
    list_display = ("__str__", "group", "max_points")


@admin.register(OperatorMember)
class OperatorMemberAdmin(admin.ModelAdmin):
    list_display = ("operator", "member")
    autocomplete_fields = ("member",)
    search_fields = ("=member__phone", "operator__username")

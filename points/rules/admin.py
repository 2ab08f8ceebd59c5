"""Operator console for the earning rules: rules and expiry policies (edited here, every change
audited by django-simple-history), member tags, the record of lot expiry moves, and a
simulation page that prices an event for a member without posting anything."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from config.errors import DomainError
from members.admin_mixins import ReadOnlyAdminMixin
from points.rules.forms import RuleSimulationForm
from points.models import EarningRule, ExpiryPolicy, LotExpiryChange, MemberTag, RuleBudget
from points.earning import earn_simulate


@admin.register(EarningRule)
class EarningRuleAdmin(SimpleHistoryAdmin):
    list_display = (
        "code", "name", "event_type", "effect", "scope", "priority", "stacking", "is_active", "budget_points",
        "points_given",
    )
    list_filter = ("is_active", "event_type", "effect", "scope", "stacking")
    search_fields = ("code", "name")
    list_select_related = ("budget",)
    autocomplete_fields = ("business_unit", "merchant", "co_funding_merchant")
    readonly_fields = ("points_given", "created_at", "updated_at")
    change_list_template = "admin/points/earningrule/change_list.html"
    fieldsets = (
        (None, {"fields": ("code", "name", "description", "is_active", "event_type")}),
        (_("Scope"), {"fields": ("scope", "bu_kind", "business_unit", "merchant", "merchant_category")}),
        (_("Conditions"), {"fields": (
            "min_amount_cny", ("starts_at", "ends_at"), "weekdays", ("hour_from", "hour_to"), "tier_codes",
            "member_tag", "first_purchase", ("nth_purchase", "nth_period"), "birthday_month", "streak_days",
            "max_awards_per_member",
        )}),
        (_("Effect"), {"fields": ("effect", "rate", "points", "multiplier", "threshold_cny")}),
        (_("Caps and budget"), {"fields": ("cap_per_member_day", "cap_per_member_month", "budget_points", "points_given")}),
        (_("Combination"), {"fields": ("priority", "stacking")}),
        (_("Expiry and pending overrides"), {"fields": ("expiry_months", "expiry_date", "expiry_policy", "pending_days")}),
        (_("Merchant co-funding"), {"fields": ("co_funding_merchant", "co_funding_share")}),
        (_("Audit"), {"fields": ("created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request, obj=None):
        """Co-funding is fixed once the rule exists (the database refuses a change too)."""
        fixed = ("co_funding_merchant", "co_funding_share") if obj is not None else ()
        return (*super().get_readonly_fields(request, obj), *fixed)

    @admin.display(description=_("points given"))
    def points_given(self, rule):
        try:
            return rule.budget.spent
        except RuleBudget.DoesNotExist:
            return 0

    def get_urls(self):
        return [
            path("simulate/", self.admin_site.admin_view(self.simulate_view), name="points_earningrule_simulate"),
            *super().get_urls(),
        ]

    def simulate_view(self, request):
        """Price an event for a member with the active rules; nothing is posted or locked."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = RuleSimulationForm(request.POST or None)
        simulation = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                simulation = earn_simulate(
                    member_id=data["member"].pk, business_unit=data["business_unit"], merchant=data["merchant"],
                    event_type=data["event_type"], amount_cny=data["amount"], occurred_at=data["occurred_at"],
                    max_backdate=None, allow_future=True,
                )
            except DomainError as error:
                form.add_error(None, error.detail)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Simulate an event"),
            "form": form,
            "simulation": simulation,
        }
        return TemplateResponse(request, "admin/points/earningrule/simulate.html", context)


@admin.register(ExpiryPolicy)
class ExpiryPolicyAdmin(SimpleHistoryAdmin):
    list_display = ("code", "name", "kind", "months", "period", "periods", "business_unit", "is_default")
    list_filter = ("kind", "is_default")
    search_fields = ("code", "name")


@admin.register(MemberTag)
class MemberTagAdmin(admin.ModelAdmin):
    list_display = ("tag", "member", "created_at")
    list_filter = ("tag",)
    search_fields = ("tag", "member__phone", "member__card_no", "member__name")
    autocomplete_fields = ("member",)


@admin.register(LotExpiryChange)
class LotExpiryChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: expiry moves are written by the activity-extends policy only."""

    list_display = ("lot", "previous_expires_at", "expires_at", "reason", "created_at")
    list_select_related = ("lot",)
    readonly_fields = ("lot", "posting", "previous_expires_at", "expires_at", "reason", "created_at")

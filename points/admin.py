"""Operator console for members and the ledger.

The member admin is here rather than in members.admin because it shows the wallet and calls
the ledger services, and members never imports the apps above it.

Ledger admins (postings, entries, lots, lot movements, holds, freeze records) are read-only: the
ledger is append-only, and a correction is a new posting made by an action that calls a
service (points_adjust, wallet_freeze, wallet_unfreeze) with `actor=request.user`.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export import fields, resources
from import_export.admin import ExportMixin

from config.errors import DomainError
from config.routers import ReplicaExportsMixin
from members.admin_mixins import ReadOnlyAdminMixin
from members.models import Member
from members.services import MEMBER_PROFILE_FIELDS, member_enrol, member_update
from points import admin_organizations  # noqa: F401 - registers the organization admin with its wallet
from points.imports import admin as imports_admin  # noqa: F401 - registers the member-imports admin
from points.rules import admin as rules_admin  # noqa: F401 - registers the earning-rules admin
from points.statements import admin as statements_admin  # noqa: F401 - registers the statements admin
from points.forms import AdjustPointsForm, WalletStatusForm, new_form_token
from points.member_360 import MEMBER_360_FIELDS, Member360Mixin
from points.member_panels import PANEL_ROWS, balance_rows, expiring_rows, html_table, local_date, local_minute
from points.models import Entry, Hold, HoldAllocation, HoldEvent, Lot, LotMovement, Posting, WalletStatusChange
from points.selectors import wallet_balance, wallet_postings
from points.ledger import OPERATOR_SCOPE, Idempotency
from points.services import points_adjust, wallet_freeze, wallet_unfreeze


def posting_link(posting_id: int):
    return format_html('<a href="{}">#{}</a>', reverse("admin:points_posting_change", args=[posting_id]), posting_id)


def member_link(member: Member):
    return format_html('<a href="{}">{}</a>', reverse("admin:members_member_change", args=[member.pk]), member)


def holder_link(wallet):
    """The wallet's member (a link), or its organization (a tenant company's wallet)."""
    return member_link(wallet.member) if wallet.member_id else str(wallet.organization)


# --- members ---------------------------------------------------------------------------------


@admin.register(Member)
class MemberAdmin(Member360Mixin, admin.ModelAdmin):
    list_display = (
        "card_no", "name", "phone", "status", "organization", "enrolled_business_unit",
        "balance", "debt", "frozen", "enrolled_at",
    )
    list_filter = ("status", "wallet__is_frozen", "enrolled_business_unit", "organization")
    search_fields = ("phone", "card_no", "name")
    list_select_related = ("organization", "enrolled_business_unit", "wallet")
    autocomplete_fields = ("organization",)
    actions = ["adjust_points", "freeze_wallets", "unfreeze_wallets"]
    add_fieldsets = (
        (None, {"fields": ("phone", "name", "birthday", "email", "organization", "enrolled_business_unit")}),
        (_("Consents"), {"fields": ("consent_marketing", "consent_sms", "consent_data_sharing")}),
    )
    fieldsets = (
        (_("Member 360"), {"fields": MEMBER_360_FIELDS}),
        (None, {"fields": ("card_no", "phone", "name", "birthday", "email", "language", "organization",
                           "is_organization_admin", "status")}),
        (_("Consents"), {"fields": ("consent_marketing", "consent_sms", "consent_email", "consent_data_sharing")}),
        (_("Enrolment"), {"fields": ("enrolled_business_unit", "enrolled_at", "referral_code", "referred_by")}),
        (_("Points"), {"fields": ("wallet_panel", "lots_panel", "postings_panel", "freeze_panel")}),
    )
    readonly_fields = (
        "card_no", "enrolled_business_unit", "enrolled_at", "referral_code", "referred_by",
        "wallet_panel", "lots_panel", "postings_panel", "freeze_panel", *MEMBER_360_FIELDS,
    )

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def has_delete_permission(self, request, obj=None):
        """A member holds ledger history: they are suspended or closed (status), never deleted."""
        return False

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        """A new member is enrolled through the service, which opens the wallet; edits go through member_update."""
        if change:
            member_update(member=obj, **{field: form.cleaned_data[field] for field in form.changed_data
                                        if field in MEMBER_PROFILE_FIELDS})
            return
        enrolled = member_enrol(
            phone=obj.phone, name=obj.name, birthday=obj.birthday, email=obj.email,
            organization=obj.organization, business_unit=obj.enrolled_business_unit,
            consent_marketing=obj.consent_marketing, consent_sms=obj.consent_sms,
            consent_data_sharing=obj.consent_data_sharing,
        )
        for field in Member._meta.concrete_fields:
            setattr(obj, field.attname, getattr(enrolled, field.attname))
        obj._state.adding = False

    # --- columns

    @admin.display(description=_("balance"), ordering="wallet__balance")
    def balance(self, member):
        return member.wallet.balance

    @admin.display(description=_("debt"), ordering="wallet__debt")
    def debt(self, member):
        return member.wallet.debt

    @admin.display(description=_("frozen"), boolean=True, ordering="wallet__is_frozen")
    def frozen(self, member):
        return member.wallet.is_frozen

    # --- read-only panels

    @admin.display(description=_("wallet"))
    def wallet_panel(self, member):
        state = wallet_balance(wallet=member.wallet)
        rows = balance_rows(state)
        if member.wallet.is_frozen:
            rows.append((_("freeze reason"), member.wallet.frozen_reason))
        return html_table((_("state"), _("points")), rows + expiring_rows(state))

    @admin.display(description=_("open lots"))
    def lots_panel(self, member):
        lots = (
            Lot.objects.filter(wallet=member.wallet, remaining__gt=0)
            .select_related("business_unit", "merchant").order_by("expires_at", "earned_at", "id")[:PANEL_ROWS]
        )
        rows = [
            (
                format_html('<a href="{}">{}</a>', reverse("admin:points_lot_change", args=[lot.pk]), lot.pk),
                lot.business_unit.code, lot.merchant.name if lot.merchant else "-", lot.amount, lot.remaining,
                local_date(lot.earned_at), local_date(lot.available_at), local_date(lot.expires_at),
            )
            for lot in lots
        ]
        headers = (_("lot"), _("issued by"), _("merchant"), _("amount"), _("remaining"), _("earned at"),
                   _("available at"), _("expires at"))
        return html_table(headers, rows)

    @admin.display(description=_("recent postings"))
    def postings_panel(self, member):
        postings = wallet_postings(wallet=member.wallet)[:PANEL_ROWS]
        rows = [
            (
                posting_link(p.pk), local_minute(p.occurred_at), p.get_kind_display(), f"{p.points:+d}",
                p.business_unit.code if p.business_unit else "-", p.merchant.name if p.merchant else "-",
                p.receipt_no or p.reason or "-",
            )
            for p in postings
        ]
        table = html_table(
            (_("posting"), _("occurred at"), _("kind"), _("points"), _("business unit"), _("merchant"), _("reference")),
            rows,
        )
        all_url = reverse("admin:points_posting_changelist") + f"?wallet__id__exact={member.wallet.pk}"
        return format_html('{}<p><a href="{}">{}</a></p>', table, all_url, _("All postings of this member"))

    @admin.display(description=_("freeze records"))
    def freeze_panel(self, member):
        changes = WalletStatusChange.objects.filter(wallet=member.wallet).select_related("actor")[:PANEL_ROWS]
        rows = [
            (local_minute(c.created_at), _("frozen") if c.frozen else _("unfrozen"), c.reason, c.actor or "-")
            for c in changes
        ]
        return html_table((_("at"), _("status"), _("reason"), _("operator")), rows)

    # --- actions

    def has_adjust_permission(self, request):
        return request.user.has_perm("points.adjust_points")

    def has_freeze_permission(self, request):
        return request.user.has_perm("points.freeze_wallet")

    @admin.action(permissions=["adjust"], description=_("Adjust points of the selected members"))
    def adjust_points(self, request, queryset):
        def apply(member, data):
            return points_adjust(
                member_id=member.pk, points=data["points"], business_unit=data["business_unit"],
                reason=data["reason"], actor=request.user,
                idempotency=Idempotency(
                    scope=OPERATOR_SCOPE, key=f"adjust:{request.user.pk}:{member.pk}:{data['token']}"
                ),
            ).replayed

        return self._run_with_form(
            request, queryset, form_class=AdjustPointsForm, apply=apply, title=_("Adjust points"),
            submit_label=_("Post the adjustment"),
            done=lambda n: ngettext("%(count)d adjustment posted.", "%(count)d adjustments posted.", n),
        )

    @admin.action(permissions=["freeze"], description=_("Freeze the points accounts of the selected members"))
    def freeze_wallets(self, request, queryset):
        def apply(member, data):
            wallet_freeze(member_id=member.pk, reason=data["reason"], actor=request.user)
            return False

        return self._run_with_form(
            request, queryset, form_class=WalletStatusForm, apply=apply, title=_("Freeze points accounts"),
            submit_label=_("Freeze"),
            done=lambda n: ngettext("%(count)d account frozen.", "%(count)d accounts frozen.", n),
        )

    @admin.action(permissions=["freeze"], description=_("Unfreeze the points accounts of the selected members"))
    def unfreeze_wallets(self, request, queryset):
        def apply(member, data):
            wallet_unfreeze(member_id=member.pk, reason=data["reason"], actor=request.user)
            return False

        return self._run_with_form(
            request, queryset, form_class=WalletStatusForm, apply=apply, title=_("Unfreeze points accounts"),
            submit_label=_("Unfreeze"),
            done=lambda n: ngettext("%(count)d account unfrozen.", "%(count)d accounts unfrozen.", n),
        )

    def _run_with_form(self, request, queryset, *, form_class, apply, title, submit_label, done):
        """Show the intermediate form; once it is valid, call `apply` per member.

        `apply(member, cleaned_data)` calls one service and returns whether it was a replay.
        Each domain error is shown for its member; the others still go through.
        """
        if "apply" in request.POST:
            form = form_class(request.POST)
            if form.is_valid():
                applied = replayed = 0
                for member in queryset:
                    try:
                        was_replay = apply(member, form.cleaned_data)
                    except DomainError as exc:
                        self.message_user(request, f"{member}: {exc.detail}", messages.ERROR)
                        continue
                    replayed += was_replay
                    applied += not was_replay
                if applied:
                    self.message_user(request, done(applied) % {"count": applied}, messages.SUCCESS)
                if replayed:
                    self.message_user(
                        request,
                        ngettext(
                            "%(count)d was already posted by this form and was not posted again.",
                            "%(count)d were already posted by this form and were not posted again.",
                            replayed,
                        ) % {"count": replayed},
                        messages.WARNING,
                    )
                return None
        else:
            form = form_class(initial={"token": new_form_token()})
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "submit_label": submit_label,
            "form": form,
            "queryset": queryset,
            "opts": self.opts,
            "action": request.POST.get("action", ""),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/action_form.html", context)


# --- the ledger: read-only -------------------------------------------------------------------


class LedgerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Ledger tables grow to millions of rows: lists are newest first (the primary key index),
    with no full count under filters and no date hierarchy (a scan of every row for its dates);
    searches are exact matches on a whole phone, card or receipt number, which indexes serve."""

    show_full_result_count = False
    ordering = ("-id",)


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class EntryInline(ReadOnlyInline):
    model = Entry
    fields = ("account", "wallet", "business_unit", "amount")


class PostingLotMovementInline(ReadOnlyInline):
    model = LotMovement
    fields = ("lot", "amount")
    verbose_name_plural = _("lots consumed or given back")


class CreatedLotInline(ReadOnlyInline):
    model = Lot
    fk_name = "posting"
    fields = ("amount", "remaining", "earned_at", "available_at", "expires_at")
    verbose_name_plural = _("lots created")
    show_change_link = True


class PostingResource(resources.ModelResource):
    member_card_no = fields.Field(attribute="wallet__member__card_no", column_name="member_card_no")
    business_unit = fields.Field(attribute="business_unit__code", column_name="business_unit")
    merchant = fields.Field(attribute="merchant__code", column_name="merchant")
    actor = fields.Field(attribute="actor__username", column_name="operator")

    class Meta:
        model = Posting
        fields = (
            "id", "occurred_at", "created_at", "kind", "member_card_no", "points", "business_unit", "merchant",
            "amount_cny", "receipt_no", "reason", "reverses", "actor",
        )
        export_order = fields

    def get_queryset(self):
        return super().get_queryset().select_related("wallet__member", "business_unit", "merchant", "actor")


class EntryResource(resources.ModelResource):
    occurred_at = fields.Field(attribute="posting__occurred_at", column_name="occurred_at")
    kind = fields.Field(attribute="posting__kind", column_name="kind")
    member_card_no = fields.Field(attribute="wallet__member__card_no", column_name="member_card_no")
    business_unit = fields.Field(attribute="business_unit__code", column_name="business_unit")

    class Meta:
        model = Entry
        fields = ("id", "posting", "occurred_at", "kind", "account", "member_card_no", "business_unit", "amount")
        export_order = fields

    def get_queryset(self):
        return super().get_queryset().select_related("posting", "wallet__member", "business_unit")


class LedgerExportMixin(ReplicaExportsMixin, ExportMixin):
    """Finance exports postings and entries (CSV, XLSX...) with the export_ledger permission."""

    def has_export_permission(self, request):
        return request.user.has_perm("points.export_ledger")


@admin.register(Posting)
class PostingAdmin(LedgerExportMixin, LedgerAdmin):
    list_display = (
        "id", "occurred_at", "kind", "member", "points", "business_unit", "merchant", "amount_cny", "receipt_no",
        "actor",
    )
    list_filter = ("kind", "business_unit", "occurred_at", "created_at")
    search_fields = ("=wallet__member__phone", "=wallet__member__card_no", "=receipt_no", "=idempotency_key")
    list_select_related = (
        "wallet__member", "wallet__organization", "business_unit", "merchant__business_unit", "actor",
    )
    inlines = [EntryInline, PostingLotMovementInline, CreatedLotInline]
    resource_classes = [PostingResource]

    @admin.display(description=_("member"), ordering="wallet__member")
    def member(self, posting):
        return holder_link(posting.wallet)


@admin.register(Entry)
class EntryAdmin(LedgerExportMixin, LedgerAdmin):
    list_display = ("id", "posting_ref", "kind", "occurred_at", "account", "wallet", "business_unit", "amount")
    list_filter = ("account", "posting__kind", "business_unit", "posting__occurred_at")
    search_fields = ("=wallet__member__phone", "=wallet__member__card_no", "=posting__receipt_no")
    list_select_related = ("posting", "wallet__member", "business_unit")
    resource_classes = [EntryResource]

    @admin.display(description=_("posting"), ordering="posting")
    def posting_ref(self, entry):
        return posting_link(entry.posting_id)

    @admin.display(description=_("kind"), ordering="posting__kind")
    def kind(self, entry):
        return entry.posting.get_kind_display()

    @admin.display(description=_("occurred at"), ordering="posting__occurred_at")
    def occurred_at(self, entry):
        return entry.posting.occurred_at


class LotMovementInline(ReadOnlyInline):
    model = LotMovement
    fields = ("posting", "amount")


@admin.register(Lot)
class LotAdmin(LedgerAdmin):
    list_display = (
        "id", "member", "business_unit", "merchant", "amount", "remaining", "earned_at", "available_at", "expires_at",
    )
    list_filter = ("business_unit", "expires_at", "earned_at")
    search_fields = ("=wallet__member__phone", "=wallet__member__card_no", "=rule_code")
    list_select_related = ("wallet__member", "wallet__organization", "business_unit", "merchant__business_unit")
    inlines = [LotMovementInline]

    @admin.display(description=_("member"), ordering="wallet__member")
    def member(self, lot):
        return holder_link(lot.wallet)


@admin.register(LotMovement)
class LotMovementAdmin(LedgerAdmin):
    list_display = ("id", "posting_ref", "kind", "lot", "amount")
    list_filter = ("posting__kind", "lot__business_unit")
    search_fields = ("=lot__wallet__member__phone", "=lot__wallet__member__card_no")
    list_select_related = ("posting", "lot")

    @admin.display(description=_("posting"), ordering="posting")
    def posting_ref(self, movement):
        return posting_link(movement.posting_id)

    @admin.display(description=_("kind"), ordering="posting__kind")
    def kind(self, movement):
        return movement.posting.get_kind_display()


@admin.register(WalletStatusChange)
class WalletStatusChangeAdmin(LedgerAdmin):
    list_display = ("created_at", "member", "frozen", "reason", "actor")
    list_filter = ("frozen", "created_at")
    search_fields = ("=wallet__member__phone", "=wallet__member__card_no", "reason")
    list_select_related = ("wallet__member", "wallet__organization", "actor")

    @admin.display(description=_("member"), ordering="wallet__member")
    def member(self, change):
        return holder_link(change.wallet)


class HoldAllocationInline(ReadOnlyInline):
    model = HoldAllocation
    fields = ("lot", "points")


class HoldEventInline(ReadOnlyInline):
    model = HoldEvent
    fields = ("at", "from_status", "to_status", "points", "reason", "actor")
    readonly_fields = ("at",)


@admin.register(Hold)
class HoldAdmin(LedgerAdmin):
    """Holds as partners placed them: captured, voided and expired by the ledger only."""

    list_display = ("id", "member", "business_unit", "merchant", "purpose", "reference", "points", "captured", "status",
                    "expires_at", "capture_ref")
    list_filter = ("status", "purpose", "business_unit", "created_at")
    search_fields = ("=wallet__member__phone", "=wallet__member__card_no", "=reference")
    list_select_related = ("wallet__member", "wallet__organization", "business_unit", "merchant__business_unit")
    inlines = [HoldAllocationInline, HoldEventInline]

    @admin.display(description=_("member"), ordering="wallet__member")
    def member(self, hold):
        return holder_link(hold.wallet)

    @admin.display(description=_("capture posting"), ordering="capture_posting")
    def capture_ref(self, hold):
        return posting_link(hold.capture_posting_id) if hold.capture_posting_id else "–"

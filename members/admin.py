"""Operator console for the parties: business units, merchants, organizations and partner keys.

The member admin lives in points.admin: it shows the wallet and calls the ledger services, and
members never imports the apps above it.
"""

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from config.errors import DomainError
from members.admin_mixins import ReadOnlyAdminMixin
from members.models import BusinessUnit, Merchant, MemberToken, Organization, PartnerKey
from members.notifications import admin as notifications_admin  # noqa: F401 - registers the notifications admin
from members.services import partner_key_presence_set, partner_key_rotate

# Partners authenticate with PartnerKey only; the library's unscoped key model is not used.
admin.site.unregister(APIKey)


class MerchantInline(admin.TabularInline):
    model = Merchant
    extra = 0
    fields = ("code", "name", "category", "is_active")
    show_change_link = True


@admin.register(BusinessUnit)
class BusinessUnitAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "point_value_cny", "earn_rate", "pending_days", "expiry_months", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("code", "name")
    inlines = [MerchantInline]


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "business_unit", "category", "is_active")
    list_filter = ("business_unit", "category", "is_active")
    search_fields = ("code", "name")
    list_select_related = ("business_unit",)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


class PartnerKeyForm(forms.ModelForm):
    class Meta:
        model = PartnerKey
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        merchant, business_unit = cleaned.get("merchant"), cleaned.get("business_unit")
        if merchant and business_unit and merchant.business_unit_id != business_unit.pk:
            self.add_error("merchant", _("This merchant belongs to another business unit."))
        return cleaned


@admin.register(PartnerKey)
class PartnerKeyAdmin(APIKeyModelAdmin):
    """The library's admin: only the hash is stored, the full key is shown once on creation (and
    on rotation). Rotating issues a successor; the old key works until it expires or is revoked.
    The list shows which keys may spend without the member present; the actions set it."""

    form = PartnerKeyForm

    list_display = ("prefix", "name", "business_unit", "merchant", "may_spend_without_presence", "created",
                    "last_used_at", "expiry_date", "_has_expired", "revoked", "rate_limit_per_minute", "predecessor")
    list_filter = ("business_unit", "may_spend_without_presence", "revoked", "created")
    search_fields = ("name", "prefix", "business_unit__code", "merchant__code")
    list_select_related = ("business_unit", "merchant__business_unit", "predecessor")
    autocomplete_fields = ("business_unit", "merchant")
    actions = ["rotate", "allow_without_presence", "require_presence"]

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "last_used_at", "predecessor")

    @admin.action(permissions=["change"], description=_("Rotate: issue a successor key (the old one keeps working "
                                                        "until it expires or is revoked)"))
    def rotate(self, request, queryset):
        for key in queryset.order_by("created"):
            try:
                successor, secret = partner_key_rotate(key=key)
            except DomainError as error:
                self.message_user(request, f"{key.prefix}: {error.detail}", messages.ERROR)
                continue
            self.message_user(request, _("The successor of %(old)s is %(key)s. Store it somewhere safe: it is not "
                                         "shown again. %(old)s works until it expires or is revoked.")
                              % {"old": key.prefix, "key": secret}, messages.WARNING)

    def _presence_set(self, request, queryset, allowed: bool):
        for key in queryset:
            partner_key_presence_set(key=key, may_spend_without_presence=allowed)
        self.message_user(request, _("%(count)d keys updated.") % {"count": len(queryset)}, messages.SUCCESS)

    @admin.action(permissions=["change"], description=_("Allow spending without the member present"))
    def allow_without_presence(self, request, queryset):
        self._presence_set(request, queryset, True)

    @admin.action(permissions=["change"], description=_("Require the member's pay code"))
    def require_presence(self, request, queryset):
        self._presence_set(request, queryset, False)


@admin.register(MemberToken)
class MemberTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Tokens are issued by sign-in and revoked through the member services: read-only here."""

    list_display = ("member", "created_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("member__phone", "member__card_no")
    list_select_related = ("member",)
    fields = ("member", "created_at", "expires_at", "revoked_at")

"""Operator console of payments with points: each BU's payment settings (editable), and
payments, their moves and property bills (read-only: they are written by the services only).
Which partner keys may spend without the member present is set on the keys (members.admin)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from mall.models_payments import (
    BusinessUnitPaymentSettings,
    Payment,
    PaymentEvent,
    PropertyBill,
)
from mall.selectors_payments import payment_status_now
from members.admin_mixins import ReadOnlyAdminMixin


@admin.register(BusinessUnitPaymentSettings)
class BusinessUnitPaymentSettingsAdmin(admin.ModelAdmin):
    list_display = ("business_unit", "accepts_points", "min_unit", "max_share_percent", "cap_points",
                    "points_part_earns", "hold_seconds", "point_value")
    list_filter = ("accepts_points",)
    list_select_related = ("business_unit",)
    search_fields = ("business_unit__code", "business_unit__name")
    autocomplete_fields = ("business_unit",)

    @admin.display(description=_("value of one point (CNY)"))
    def point_value(self, settings):
        return settings.business_unit.point_value_cny


class PaymentEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PaymentEvent
    extra = 0
    fields = ("at", "from_status", "to_status", "points", "amount_cny", "posting", "points_to_expired_lots", "reason",
              "partner_key", "actor")
    readonly_fields = fields


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "business_unit", "merchant", "bill_no", "member", "status_now", "points",
                    "amount_cny", "captured_points", "refunded_points")
    list_filter = ("status", "business_unit", "presence")
    search_fields = ("bill_no", "member__phone", "member__card_no")
    list_select_related = ("business_unit", "merchant", "member", "hold")
    date_hierarchy = "created_at"
    inlines = [PaymentEventInline]

    @admin.display(description=_("status"))
    def status_now(self, payment):
        return payment_status_now(payment)


@admin.register(PropertyBill)
class PropertyBillAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("bill_no", "business_unit", "unit", "period", "amount_cny", "payer_member", "payer_organization",
                    "created_at")
    list_filter = ("business_unit", "period")
    search_fields = ("bill_no", "unit", "payer_member__phone", "payer_organization__code")
    list_select_related = ("business_unit", "payer_member", "payer_organization")

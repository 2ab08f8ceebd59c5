"""The mall's panels of the member 360 page (points.member_panels), registered in mall.apps:
the member's latest orders and coupons, and their payments with points at tills and bills."""

from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from mall.models import Coupon, Order
from mall.models_payments import Payment
from members.models import Member
from points.member_panels import PANEL_ROWS, MemberPanel, change_link, changelist_link, html_table, local_date, local_minute

COUPONS_SHOWN = 10


def orders_panel_render(member: Member) -> str:
    orders = Order.objects.filter(member=member).select_related("item").order_by("-placed_at", "-id")[:PANEL_ROWS]
    order_rows = [
        (change_link("admin:mall_order_change", o.pk, o.number), local_minute(o.placed_at), o.item.name, o.quantity,
         o.points, o.get_status_display())
        for o in orders
    ]
    coupons = Coupon.objects.filter(member=member).select_related("item").order_by("-issued_at", "-id")[:COUPONS_SHOWN]
    coupon_rows = [
        (change_link("admin:mall_coupon_change", c.pk, c.item.name), c.get_status_display(), local_date(c.valid_until),
         local_minute(c.redeemed_at))
        for c in coupons
    ]
    return format_html(
        "{}{}{}{}",
        html_table((_("order"), _("placed at"), _("item"), _("quantity"), _("points"), _("status")), order_rows),
        changelist_link("admin:mall_order_changelist", _("All orders of this member"), member__id__exact=member.pk),
        html_table((_("coupon"), _("status"), _("valid until"), _("written off at")), coupon_rows),
        changelist_link("admin:mall_coupon_changelist", _("All coupons of this member"), member__id__exact=member.pk),
    )


def payments_panel_render(member: Member) -> str:
    payments = (
        Payment.objects.filter(member=member).select_related("business_unit").order_by("-created_at", "-id")[:PANEL_ROWS]
    )
    rows = [
        (change_link("admin:mall_payment_change", p.pk, p.bill_no), local_minute(p.created_at), p.business_unit.code,
         p.bill_amount, p.points, p.captured_points, p.refunded_points, p.get_status_display())
        for p in payments
    ]
    return format_html(
        "{}{}",
        html_table((_("bill"), _("at"), _("business unit"), _("bill amount (CNY)"), _("points authorised"),
                    _("points captured"), _("points refunded"), _("status")), rows),
        changelist_link("admin:mall_payment_changelist", _("All payments of this member"), member__id__exact=member.pk),
    )


ORDERS_PANEL = MemberPanel(code="mall_orders", title=_("Mall orders and coupons"), render=orders_panel_render, order=20)
PAYMENTS_PANEL = MemberPanel(code="payments", title=_("Payments with points"), render=payments_panel_render, order=30)

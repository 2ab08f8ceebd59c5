"""The points mall: the catalogue, members' orders, coupons and their write-off at the till.

Design overview
---------------
* An **item** is what members redeem points for: physical goods (picked up at a service desk or
  shipped), a service voucher (parking hours, play area, lounge), a merchant coupon (money off,
  a discount, a fixed value), a property-fee voucher, or a **bookable service** (a meeting room,
  a court) sold by **slot**. Its provider (business unit, and merchant unless the item is
  BU-wide) fulfils it and is reimbursed its settlement value. Operators curate items in the
  console; every change is audited (simple-history).
* An **order** is one redemption: the price, the tier discount and the points are frozen on it,
  and it points at the one spend posting the ledger wrote for it (points.services.spend_locked,
  inside the order's own transaction). The mall never writes a ledger row itself. An order is
  unique per (member, idempotency key). An **organization's order** (a meeting room booked by
  one of a tenant company's administrators) is paid from the organization's wallet: `organization`
  names it, `member` is the administrator who placed it and holds its check-in coupon; a cancel
  gives the points back to that wallet.
* Coupon and voucher items issue one **coupon** per unit ordered: an unguessable code
  (mall.codes) or one taken from the item's uploaded **pool**; a bookable order issues its
  check-in coupon. Merchants write coupons off (**write-off** rows), and may undo a write-off
  within a window.
* Orders and coupons are state machines: the allowed moves are ORDER_MOVES and COUPON_MOVES,
  written once here. Every move is a conditional UPDATE (`WHERE status = <from>`) made with the
  order row locked, and appends an event row (who, when, from, to, why). The only move back is
  a write-off's undo (used -> issued), allowed to the merchant who wrote it off, within
  MALL_WRITE_OFF_UNDO_SECONDS; every other move goes forward.
* The database backs the rules: stock and slot bookings never go negative or over capacity,
  an order's points are its unit points times its quantity, a live coupon code is unique,
  events are append-only.
"""

import pgtrigger
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from members.models import BusinessUnit, Member, Merchant, Organization
from points.models import Posting
from tiers.models import TierLevel


class ItemKind(models.TextChoices):
    GOODS = "goods", _("Goods")
    SERVICE_VOUCHER = "service_voucher", _("Service voucher")
    MERCHANT_COUPON = "merchant_coupon", _("Merchant coupon")
    PROPERTY_FEE_VOUCHER = "property_fee_voucher", _("Property-fee voucher")
    BOOKABLE = "bookable", _("Bookable service")


# Kinds whose order issues coupons (one per unit; a bookable order's coupon is its check-in).
COUPON_KINDS = frozenset({
    ItemKind.SERVICE_VOUCHER, ItemKind.MERCHANT_COUPON, ItemKind.PROPERTY_FEE_VOUCHER, ItemKind.BOOKABLE,
})


class CouponBenefit(models.TextChoices):
    MONEY_OFF = "money_off", _("Money off (spend X, get Y off)")
    DISCOUNT_PERCENT = "discount_percent", _("Discount (%)")
    FIXED_VALUE = "fixed_value", _("Fixed value")


class CodeSource(models.TextChoices):
    GENERATED = "generated", _("Generated codes")
    POOL = "pool", _("Uploaded pool of codes")


class Delivery(models.TextChoices):
    PICKUP = "pickup", _("Pickup at a service desk")
    SHIPPING = "shipping", _("Shipping")


class GoodsDelivery(models.TextChoices):
    PICKUP = "pickup", _("Pickup only")
    SHIPPING = "shipping", _("Shipping only")
    EITHER = "either", _("Pickup or shipping")


class Category(models.Model):
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=60)
    name_en = models.CharField(_("name (English)"), max_length=60)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["position", "code"]

    def __str__(self):
        return self.name_zh if (get_language() or "").startswith("zh") else self.name_en


class Item(models.Model):
    """One thing in the catalogue. See the module docstring."""

    kind = models.CharField(_("kind"), max_length=24, choices=ItemKind.choices)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, null=True, blank=True, related_name="items", verbose_name=_("category")
    )
    name_zh = models.CharField(_("name (Chinese)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=120)
    description_zh = models.TextField(_("description (Chinese)"), max_length=4000, blank=True)
    description_en = models.TextField(_("description (English)"), max_length=4000, blank=True)
    image = models.ImageField(_("image"), upload_to="mall/items/", blank=True)
    price_points = models.BigIntegerField(_("price (points)"), help_text=_("Before the member's tier discount."))
    cash_cny = models.DecimalField(
        _("cash part (CNY)"), max_digits=12, decimal_places=2, default=0,
        help_text=_("Paid at the service desk or the partner's till on top of the points; the platform takes no "
                    "card payments. Not discounted."),
    )
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="mall_items", verbose_name=_("provider business unit")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="mall_items",
        verbose_name=_("provider merchant"),
        help_text=_("Who fulfils it and is reimbursed. Empty: BU-wide (any merchant of the business unit may "
                    "write its coupons off)."),
    )
    stock = models.PositiveIntegerField(_("stock"), null=True, blank=True, help_text=_("Empty: unlimited."))
    limit_total = models.PositiveIntegerField(_("limit per member (total)"), null=True, blank=True)
    limit_per_day = models.PositiveIntegerField(_("limit per member per day"), null=True, blank=True)
    limit_per_week = models.PositiveIntegerField(_("limit per member per week"), null=True, blank=True)
    limit_per_month = models.PositiveIntegerField(_("limit per member per month"), null=True, blank=True)
    display_from = models.DateTimeField(_("shown from"), null=True, blank=True)
    display_until = models.DateTimeField(_("shown until"), null=True, blank=True)
    sale_from = models.DateTimeField(
        _("on sale from"), null=True, blank=True, help_text=_("A flash sale is shown before it opens.")
    )
    sale_until = models.DateTimeField(_("on sale until"), null=True, blank=True)
    min_tier = models.ForeignKey(
        TierLevel, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("minimum tier"), help_text=_("Only members of this tier or higher may order it."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    delivery = models.CharField(
        _("delivery (goods)"), max_length=10, choices=GoodsDelivery.choices, default=GoodsDelivery.PICKUP
    )
    code_source = models.CharField(
        _("coupon codes"), max_length=10, choices=CodeSource.choices, default=CodeSource.GENERATED
    )
    benefit = models.CharField(_("coupon benefit"), max_length=20, choices=CouponBenefit.choices, blank=True)
    face_value_cny = models.DecimalField(
        _("face value (CNY)"), max_digits=12, decimal_places=2, null=True, blank=True,
        help_text=_("The money off or fixed value of a coupon or voucher."),
    )
    discount_percent = models.DecimalField(
        _("coupon discount (%)"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    min_spend_cny = models.DecimalField(
        _("minimum spend (CNY)"), max_digits=12, decimal_places=2, null=True, blank=True,
        help_text=_("The bill a coupon needs at write-off, e.g. 200 for 'spend 200 get 50 off'."),
    )
    valid_from = models.DateTimeField(_("coupons valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("coupons valid until"), null=True, blank=True)
    valid_days = models.PositiveIntegerField(
        _("coupons valid for (days)"), null=True, blank=True,
        help_text=_("From the day of issue, through the end of the last day (group time zone). Or fixed dates."),
    )
    settlement_value_cny = models.DecimalField(
        _("settlement value (CNY)"), max_digits=12, decimal_places=2, default=0,
        help_text=_("What the provider is reimbursed per unit redeemed."),
    )
    points_back_on_expiry = models.BooleanField(
        _("points back on expiry"), default=False,
        help_text=_("Whether an unused coupon's points return to the member when it expires (as printed on the item)."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        verbose_name = _("mall item")
        verbose_name_plural = _("mall items")
        ordering = ["-id"]
        permissions = [("issue_item", _("Can issue an item to a member at the service desk"))]
        constraints = [
            models.CheckConstraint(condition=Q(price_points__gt=0), name="mall_item_price_positive"),
            models.CheckConstraint(condition=Q(cash_cny__gte=0), name="mall_item_cash_non_negative"),
            models.CheckConstraint(condition=Q(stock__isnull=True) | Q(stock__gte=0), name="mall_item_stock_non_negative"),
            *[
                models.CheckConstraint(condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gt": 0}),
                                       name=f"mall_item_{name}_positive")
                for name in ("limit_total", "limit_per_day", "limit_per_week", "limit_per_month", "valid_days")
            ],
            models.CheckConstraint(
                condition=Q(display_from__isnull=True) | Q(display_until__isnull=True) | Q(display_from__lt=F("display_until")),
                name="mall_item_display_window",
            ),
            models.CheckConstraint(
                condition=Q(sale_from__isnull=True) | Q(sale_until__isnull=True) | Q(sale_from__lt=F("sale_until")),
                name="mall_item_sale_window",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True) | Q(valid_until__isnull=True) | Q(valid_from__lt=F("valid_until")),
                name="mall_item_validity_window",
            ),
            models.CheckConstraint(
                condition=Q(valid_days__isnull=True) | (Q(valid_from__isnull=True) & Q(valid_until__isnull=True)),
                name="mall_item_validity_days_or_dates",
            ),
            models.CheckConstraint(
                condition=Q(discount_percent__isnull=True) | (Q(discount_percent__gt=0) & Q(discount_percent__lte=100)),
                name="mall_item_discount_percent",
            ),
            models.CheckConstraint(condition=Q(face_value_cny__isnull=True) | Q(face_value_cny__gte=0),
                                   name="mall_item_face_value_non_negative"),
            models.CheckConstraint(condition=Q(min_spend_cny__isnull=True) | Q(min_spend_cny__gte=0),
                                   name="mall_item_min_spend_non_negative"),
            models.CheckConstraint(condition=Q(settlement_value_cny__gte=0), name="mall_item_settlement_non_negative"),
            models.CheckConstraint(
                condition=~Q(kind=ItemKind.BOOKABLE) | Q(code_source=CodeSource.GENERATED),
                name="mall_item_bookable_generated_codes",
            ),
        ]
        indexes = [models.Index(fields=["business_unit", "merchant"], name="mall_item_provider")]

    def __str__(self):
        return f"{self.name} (#{self.pk})"

    @property
    def name(self) -> str:
        return self.name_zh if (get_language() or "").startswith("zh") else self.name_en

    @property
    def description(self) -> str:
        return self.description_zh if (get_language() or "").startswith("zh") else self.description_en

    @property
    def issues_coupons(self) -> bool:
        return self.kind in COUPON_KINDS

    def clean(self):
        errors = {}
        if self.merchant_id and self.business_unit_id and self.merchant.business_unit_id != self.business_unit_id:
            errors["merchant"] = _("The merchant belongs to another business unit.")
        if self.kind in COUPON_KINDS - {ItemKind.BOOKABLE} and not (self.valid_days or self.valid_until):
            errors["valid_days"] = _("A coupon or voucher needs a validity: N days from issue, or fixed dates.")
        if self.valid_days and (self.valid_from or self.valid_until):
            errors["valid_days"] = _("Give either N days or fixed dates, not both.")
        if self.kind == ItemKind.BOOKABLE and self.code_source == CodeSource.POOL:
            errors["code_source"] = _("A bookable service issues its own check-in codes.")
        if self.kind == ItemKind.MERCHANT_COUPON and not self.benefit:
            errors["benefit"] = _("Say what the coupon gives.")
        if self.benefit == CouponBenefit.DISCOUNT_PERCENT and not self.discount_percent:
            errors["discount_percent"] = _("A discount coupon needs its percentage.")
        if self.benefit in (CouponBenefit.MONEY_OFF, CouponBenefit.FIXED_VALUE) and self.face_value_cny is None:
            errors["face_value_cny"] = _("A money-off or fixed-value coupon needs its value.")
        if errors:
            raise ValidationError(errors)


class Slot(models.Model):
    """A time slot of a bookable item, with its capacity and the places booked."""

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="slots", verbose_name=_("item"))
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    capacity = models.PositiveIntegerField(_("capacity"))
    booked = models.PositiveIntegerField(_("booked"), default=0, editable=False)

    class Meta:
        verbose_name = _("slot")
        verbose_name_plural = _("slots")
        ordering = ["item", "starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["item", "starts_at"], name="mall_slot_unique_start"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="mall_slot_ends_after_start"),
            models.CheckConstraint(condition=Q(capacity__gt=0), name="mall_slot_capacity_positive"),
            models.CheckConstraint(condition=Q(booked__gte=0) & Q(booked__lte=F("capacity")),
                                   name="mall_slot_booked_within_capacity"),
        ]

    def __str__(self):
        return f"{self.item.name} {self.starts_at:%Y-%m-%d %H:%M}"

    def clean(self):
        if self.capacity is not None and self.capacity < self.booked:
            raise ValidationError({"capacity": _("%(booked)d places are booked already.") % {"booked": self.booked}})

    @property
    def free(self) -> int:
        return self.capacity - self.booked


class OrderStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    AWAITING_FULFILMENT = "awaiting_fulfilment", _("Awaiting fulfilment")
    FULFILLED = "fulfilled", _("Fulfilled")
    USED = "used", _("Used")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")
    REFUNDED = "refunded", _("Refunded")


# The moves an order may make, written once. An order is placed in one transaction, so it is
# born issued (coupons, vouchers, bookings) or awaiting fulfilment (goods): the key "" is its
# creation. used -> issued is only a write-off's undo (see the module docstring).
ORDER_MOVES = {
    "": {OrderStatus.ISSUED, OrderStatus.AWAITING_FULFILMENT},
    OrderStatus.ISSUED: {OrderStatus.USED, OrderStatus.EXPIRED, OrderStatus.CANCELLED},
    OrderStatus.AWAITING_FULFILMENT: {OrderStatus.FULFILLED, OrderStatus.CANCELLED},
    OrderStatus.FULFILLED: {OrderStatus.REFUNDED},
    OrderStatus.USED: {OrderStatus.ISSUED},
}
# Orders whose points went back to the member: they count against no limit.
ORDERS_RETURNED = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)


class Order(models.Model):
    number = models.CharField(_("order number"), max_length=20, unique=True, editable=False)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="mall_orders", verbose_name=_("member"))
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="mall_orders",
        verbose_name=_("paid by organization"),
        help_text=_("Set: the organization's wallet paid, and the member is the administrator who placed the order. "
                    "Empty: the member's own wallet paid."),
    )
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="orders", verbose_name=_("item"))
    kind = models.CharField(_("kind"), max_length=24, choices=ItemKind.choices)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="+", verbose_name=_("provider business unit")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("provider merchant")
    )
    quantity = models.PositiveIntegerField(_("quantity"))
    list_price_points = models.BigIntegerField(_("list price per unit (points)"))
    discount_percent = models.DecimalField(_("tier discount (%)"), max_digits=5, decimal_places=2, default=0)
    unit_points = models.BigIntegerField(_("points per unit"), help_text=_("After the tier discount, rounded up."))
    points = models.BigIntegerField(_("points"))
    cash_cny = models.DecimalField(_("cash part (CNY)"), max_digits=12, decimal_places=2, default=0)
    settlement_value_cny = models.DecimalField(_("settlement value per unit (CNY)"), max_digits=12, decimal_places=2,
                                               default=0)
    points_back_on_expiry = models.BooleanField(_("points back on expiry"), default=False,
                                                help_text=_("As the item said when the order was placed."))
    took_stock = models.BooleanField(_("took stock"), default=False, help_text=_("A cancel gives the units back."))
    spend_posting = models.OneToOneField(
        Posting, on_delete=models.PROTECT, related_name="mall_order", verbose_name=_("spend posting")
    )
    status = models.CharField(_("status"), max_length=20, choices=OrderStatus.choices)
    slot = models.ForeignKey(
        Slot, on_delete=models.PROTECT, null=True, blank=True, related_name="orders", verbose_name=_("slot")
    )
    delivery_method = models.CharField(_("delivery"), max_length=10, choices=Delivery.choices, blank=True)
    delivery_address = models.CharField(_("delivery address"), max_length=300, blank=True)
    tracking_no = models.CharField(_("tracking number"), max_length=64, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=128)
    request_hash = models.CharField(_("request fingerprint"), max_length=64)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("placed by operator"),
    )
    placed_at = models.DateTimeField(_("placed at"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("mall order")
        verbose_name_plural = _("mall orders")
        ordering = ["-id"]
        permissions = [
            ("fulfil_order", _("Can fulfil mall orders")),
            ("cancel_order", _("Can cancel mall orders")),
            ("export_mall", _("Can export mall orders, coupons and write-offs")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["member", "idempotency_key"], name="mall_order_idempotency_unique"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="mall_order_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_points__gt=0) & Q(unit_points__lte=F("list_price_points")),
                                   name="mall_order_unit_points_within_price"),
            models.CheckConstraint(condition=Q(points=F("unit_points") * F("quantity")),
                                   name="mall_order_points_are_units_times_quantity"),
            models.CheckConstraint(condition=Q(cash_cny__gte=0), name="mall_order_cash_non_negative"),
            models.CheckConstraint(condition=Q(discount_percent__gte=0) & Q(discount_percent__lte=100),
                                   name="mall_order_discount_percent"),
            models.CheckConstraint(condition=Q(status__in=OrderStatus.values), name="mall_order_status_known"),
            models.CheckConstraint(condition=Q(organization__isnull=True) | Q(kind=ItemKind.BOOKABLE),
                                   name="mall_order_organization_books_only"),
        ]
        indexes = [
            models.Index(fields=["member", "item", "placed_at"], name="mall_order_member_item"),
            models.Index(fields=["organization", "item", "placed_at"], condition=Q(organization__isnull=False),
                         name="mall_order_organization_item"),
            models.Index(fields=["business_unit", "merchant", "placed_at"], name="mall_order_provider"),
        ]

    def __str__(self):
        return self.number


class OrderEvent(models.Model):
    """One move of an order: from which status to which, when, by whom and why."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events", verbose_name=_("order"))
    from_status = models.CharField(_("from"), max_length=20, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=20, choices=OrderStatus.choices)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    by = models.CharField(_("by"), max_length=80, help_text=_("member, operator:<name>, partner:<key>, system"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["id"]
        triggers = [pgtrigger.Protect(name="mall_order_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]


class CouponStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    USED = "used", _("Used")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")


# The moves a coupon may make, written once: from issued to one of three ends; used -> issued is
# only a write-off's undo, by the merchant that wrote it off, within the window.
COUPON_MOVES = {
    "": {CouponStatus.ISSUED},
    CouponStatus.ISSUED: {CouponStatus.USED, CouponStatus.EXPIRED, CouponStatus.CANCELLED},
    CouponStatus.USED: {CouponStatus.ISSUED},
}


class Coupon(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="coupons", verbose_name=_("order"))
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="mall_coupons", verbose_name=_("member"))
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="coupons", verbose_name=_("item"))
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="+", verbose_name=_("business unit")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("issuing merchant"), help_text=_("Empty: any merchant of the business unit may write it off."),
    )
    code = models.CharField(_("code"), max_length=64)
    source = models.CharField(_("code source"), max_length=10, choices=CodeSource.choices)
    status = models.CharField(_("status"), max_length=10, choices=CouponStatus.choices, default=CouponStatus.ISSUED)
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    issued_at = models.DateTimeField(_("issued at"))
    redeemed_at = models.DateTimeField(_("written off at"), null=True, blank=True)
    redeemed_by = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("written off by"),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        ordering = ["-id"]
        permissions = [("write_off_coupon", _("Can write coupons off (and undo a write-off)"))]
        constraints = [
            # What a till looks up: a live code is unique (a cancelled coupon keeps its code for history).
            models.UniqueConstraint(fields=["code"], condition=~Q(status=CouponStatus.CANCELLED),
                                    name="mall_coupon_live_code_unique"),
            models.CheckConstraint(condition=Q(valid_until__gt=F("valid_from")), name="mall_coupon_validity_window"),
            models.CheckConstraint(
                condition=(Q(status=CouponStatus.USED) & Q(redeemed_at__isnull=False))
                | (~Q(status=CouponStatus.USED) & Q(redeemed_at__isnull=True) & Q(redeemed_by__isnull=True)),
                name="mall_coupon_used_has_time",
            ),
            models.CheckConstraint(condition=Q(status__in=CouponStatus.values), name="mall_coupon_status_known"),
        ]
        indexes = [
            models.Index(fields=["code"], name="mall_coupon_code"),
            models.Index(fields=["valid_until"], condition=Q(status=CouponStatus.ISSUED), name="mall_coupon_open_by_end"),
            models.Index(fields=["member", "status"], name="mall_coupon_member"),
        ]

    def __str__(self):
        return self.code


class CouponEvent(models.Model):
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="events", verbose_name=_("coupon"))
    from_status = models.CharField(_("from"), max_length=10, choices=CouponStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=10, choices=CouponStatus.choices)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    by = models.CharField(_("by"), max_length=80)
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("merchant")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("coupon event")
        verbose_name_plural = _("coupon events")
        ordering = ["id"]
        triggers = [pgtrigger.Protect(name="mall_coupon_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]


class WriteOff(models.Model):
    """One write-off (核销) of a coupon at the till, and its undo if the till made a mistake."""

    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="write_offs", verbose_name=_("coupon"))
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="+", verbose_name=_("business unit")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="mall_write_offs",
        verbose_name=_("merchant"),
    )
    bill_amount_cny = models.DecimalField(_("bill amount (CNY)"), max_digits=12, decimal_places=2, null=True,
                                          blank=True)
    by = models.CharField(_("by"), max_length=80)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    idempotency_scope = models.CharField(_("idempotency scope"), max_length=64, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, blank=True)
    request_hash = models.CharField(_("request fingerprint"), max_length=64, blank=True)
    at = models.DateTimeField(_("written off at"))
    undone_at = models.DateTimeField(_("undone at"), null=True, blank=True)
    undone_by = models.CharField(_("undone by"), max_length=80, blank=True)

    class Meta:
        verbose_name = _("write-off")
        verbose_name_plural = _("write-offs")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_scope", "idempotency_key"], condition=~Q(idempotency_key=""),
                                    name="mall_write_off_idempotency_unique"),
            # At most one write-off of a coupon stands at a time.
            models.UniqueConstraint(fields=["coupon"], condition=Q(undone_at__isnull=True),
                                    name="mall_write_off_one_standing"),
            models.CheckConstraint(condition=Q(undone_at__isnull=True) | Q(undone_at__gte=F("at")),
                                   name="mall_write_off_undone_after"),
        ]

    def __str__(self):
        return f"{self.coupon.code} @ {self.at:%Y-%m-%d %H:%M}"


class PoolCode(models.Model):
    """An uploaded code of a pool item (e.g. a cinema's own ticket codes), taken by one coupon."""

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="pool_codes", verbose_name=_("item"))
    code = models.CharField(_("code"), max_length=64, unique=True)
    batch = models.CharField(_("batch"), max_length=64, blank=True)
    coupon = models.OneToOneField(
        Coupon, on_delete=models.PROTECT, null=True, blank=True, related_name="pool_code", verbose_name=_("taken by")
    )
    uploaded_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("pool code")
        verbose_name_plural = _("pool codes")
        ordering = ["id"]
        indexes = [models.Index(fields=["item", "id"], condition=Q(coupon__isnull=True), name="mall_pool_code_free")]

    def __str__(self):
        return self.code


class MerchantStaff(models.Model):
    """A console user who works for one merchant: the console shows them only that merchant's mall."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="merchant_staff", verbose_name=_("user")
    )
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="staff", verbose_name=_("merchant"))

    class Meta:
        verbose_name = _("merchant staff")
        verbose_name_plural = _("merchant staff")

    def __str__(self):
        return f"{self.user} @ {self.merchant}"


# Paying with points at the till and for property fees (a module of its own).
from mall.models_payments import *  # noqa: F401,F403

"""Serializers of the mall API: inputs check shape only, outputs describe the answers."""

import io
from functools import lru_cache

import segno
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mall import codes
from mall.models import (
    CodeSource,
    CouponBenefit,
    CouponStatus,
    Delivery,
    GoodsDelivery,
    ItemKind,
    OrderStatus,
)
from mall.thumbnails import thumbnail_url

BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: strings, decimals and booleans are refused rather than coerced."""

    default_error_messages = {"invalid": _("A whole number is required.")}

    def to_internal_value(self, data):
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class PrintableCharField(serializers.CharField):
    """Free text stored verbatim: no control characters, no markup."""

    default_error_messages = {"markup": _("Control characters and markup (< >) are not allowed.")}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if any(not character.isprintable() for character in value) or "<" in value or ">" in value:
            self.fail("markup")
        return value


# --- inputs ----------------------------------------------------------------------------------


class OrderPlaceSerializer(serializers.Serializer):
    item = StrictIntegerField(min_value=1, max_value=BIGINT_MAX, help_text=_("The item's id."))
    quantity = StrictIntegerField(min_value=1, max_value=INT_MAX, required=False, default=1,
                                  help_text=_("Units; at most MALL_MAX_QUANTITY (20) per order."))
    slot = StrictIntegerField(min_value=1, max_value=BIGINT_MAX, required=False, allow_null=True, default=None,
                              help_text=_("A bookable item's time slot (its id)."))
    delivery_method = serializers.ChoiceField(choices=Delivery.choices, required=False, default="", allow_blank=True,
                                              help_text=_("Goods: pickup (default where offered) or shipping."))
    delivery_address = PrintableCharField(max_length=300, required=False, default="", allow_blank=True,
                                          help_text=_("Goods shipped: the address."))


class ReasonSerializer(serializers.Serializer):
    reason = PrintableCharField(max_length=200, required=False, default="", allow_blank=True)


class RedeemSerializer(serializers.Serializer):
    bill_amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True, default=None,
        help_text=_("The bill in CNY, checked against the coupon's minimum spend."),
    )


# --- outputs ---------------------------------------------------------------------------------


class RefusalSerializer(serializers.Serializer):
    code = serializers.CharField(help_text=_("not_on_sale, tier_required, limit_reached, out_of_stock, "
                                             "account_frozen, member_inactive."))
    detail = serializers.CharField()
    opens_at = serializers.DateTimeField(required=False)


class SlotSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    capacity = serializers.IntegerField()
    free = serializers.IntegerField()


class ItemBaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ItemKind.choices)
    category = serializers.CharField(source="category.code", allow_null=True, default=None)
    name = serializers.CharField(help_text=_("In the request's language (Accept-Language)."))
    name_zh = serializers.CharField()
    name_en = serializers.CharField()
    description_zh = serializers.CharField()
    description_en = serializers.CharField()
    image = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField(help_text=_("The image scaled to fit 160 x 160 pixels (JPEG)."))
    price_points = serializers.IntegerField(help_text=_("List price per unit, before the tier discount."))
    cash_cny = serializers.DecimalField(max_digits=12, decimal_places=2, help_text=_("Paid at the desk or till."))
    business_unit = serializers.CharField(source="business_unit.code")
    merchant = serializers.CharField(source="merchant.code", allow_null=True, default=None,
                                     help_text=_("Empty: BU-wide."))
    merchant_name = serializers.CharField(source="merchant.name", allow_null=True, default=None)
    sale_from = serializers.DateTimeField(allow_null=True)
    sale_until = serializers.DateTimeField(allow_null=True)
    min_tier = serializers.CharField(source="min_tier.code", allow_null=True, default=None)
    delivery = serializers.ChoiceField(choices=GoodsDelivery.choices)
    benefit = serializers.ChoiceField(choices=CouponBenefit.choices, allow_blank=True)
    face_value_cny = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    discount_percent_off = serializers.DecimalField(source="discount_percent", max_digits=5, decimal_places=2,
                                                    allow_null=True, help_text=_("A discount coupon's percentage."))
    min_spend_cny = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    valid_from = serializers.DateTimeField(allow_null=True)
    valid_until = serializers.DateTimeField(allow_null=True)
    valid_days = serializers.IntegerField(allow_null=True)
    points_back_on_expiry = serializers.BooleanField()

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_image(self, item):
        return self._absolute(item.image.url if item.image else None)

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_thumbnail_url(self, item):
        return self._absolute(thumbnail_url(item.image))

    def _absolute(self, url: str | None) -> str | None:
        request = self.context.get("request")
        return request.build_absolute_uri(url) if url and request else url


class MemberItemSerializer(ItemBaseSerializer):
    """An item as the signed-in member sees it: `offer` in the context maps item ids to mall.selectors.Offer."""

    member_price = serializers.SerializerMethodField(help_text=_("Points per unit after the tier discount."))
    tier_discount_percent = serializers.SerializerMethodField()
    affordable = serializers.SerializerMethodField()
    points_short = serializers.SerializerMethodField(help_text=_("Points the member still needs for one unit."))
    remaining_stock = serializers.SerializerMethodField(help_text=_("Null: unlimited."))
    remaining_limit = serializers.SerializerMethodField(help_text=_("Units the member may still order; null: no limit."))
    orderable = serializers.SerializerMethodField()
    not_orderable = serializers.SerializerMethodField(help_text=_("Why it cannot be ordered now; null if it can."))

    def _offer(self, item):
        return self.context["offers"][item.pk]

    def get_member_price(self, item) -> int:
        return self._offer(item).member_price

    @extend_schema_field(OpenApiTypes.DECIMAL)
    def get_tier_discount_percent(self, item):
        return str(self._offer(item).discount_percent)

    def get_affordable(self, item) -> bool:
        return self._offer(item).affordable

    def get_points_short(self, item) -> int:
        return self._offer(item).points_short

    def get_remaining_stock(self, item) -> int | None:
        return self._offer(item).remaining_stock

    def get_remaining_limit(self, item) -> int | None:
        return self._offer(item).remaining_limit

    def get_orderable(self, item) -> bool:
        return self._offer(item).orderable

    @extend_schema_field(RefusalSerializer(allow_null=True))
    def get_not_orderable(self, item):
        refusal = self._offer(item).refusal
        return refusal.as_dict() if refusal is not None else None


class MemberItemDetailSerializer(MemberItemSerializer):
    free_slots = serializers.SerializerMethodField(help_text=_("Bookable items: the slots with places left."))

    @extend_schema_field(SlotSerializer(many=True))
    def get_free_slots(self, item):
        return SlotSerializer(self.context.get("slots", []), many=True).data


@lru_cache(maxsize=2048)
def qr_svg(payload: str) -> str:
    buffer = io.BytesIO()
    segno.make(payload, error="m").save(buffer, kind="svg", scale=4, border=2, xmldecl=False)
    return buffer.getvalue().decode()


class CouponSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField(help_text=_("As stored and encoded in the QR code."))
    code_display = serializers.SerializerMethodField(help_text=_("For people: generated codes in groups of four."))
    status = serializers.ChoiceField(choices=CouponStatus.choices)
    source = serializers.ChoiceField(choices=CodeSource.choices)
    item = serializers.IntegerField(source="item_id")
    item_name = serializers.CharField(source="item.name")
    business_unit = serializers.CharField(source="business_unit.code")
    merchant = serializers.CharField(source="merchant.code", allow_null=True, default=None)
    merchant_name = serializers.CharField(source="merchant.name", allow_null=True, default=None)
    valid_from = serializers.DateTimeField()
    valid_until = serializers.DateTimeField()
    redeemed_at = serializers.DateTimeField(allow_null=True)

    def get_code_display(self, coupon) -> str:
        return codes.grouped(coupon.code)


class MemberCouponSerializer(CouponSerializer):
    order = serializers.CharField(source="order.number")
    qr_payload = serializers.CharField(source="code", help_text=_("What the QR code encodes: the code."))
    qr_svg = serializers.SerializerMethodField(help_text=_("The QR code as an SVG document."))

    def get_qr_svg(self, coupon) -> str:
        return qr_svg(coupon.code)


class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    item = serializers.IntegerField(source="item_id")
    item_name = serializers.CharField(source="item.name")
    kind = serializers.ChoiceField(choices=ItemKind.choices)
    business_unit = serializers.CharField(source="business_unit.code")
    merchant = serializers.CharField(source="merchant.code", allow_null=True, default=None)
    quantity = serializers.IntegerField()
    list_price_points = serializers.IntegerField()
    discount_percent = serializers.DecimalField(max_digits=5, decimal_places=2, help_text=_("The tier discount."))
    unit_points = serializers.IntegerField()
    points = serializers.IntegerField(help_text=_("Points spent."))
    cash_cny = serializers.DecimalField(max_digits=12, decimal_places=2)
    transaction = serializers.IntegerField(source="spend_posting_id", help_text=_("The spend transaction's id."))
    organization = serializers.CharField(
        source="organization.code", allow_null=True, default=None,
        help_text=_("The code of the organization whose wallet paid (an order an administrator placed for it); null: "
                    "the member's own wallet paid."),
    )
    slot = SlotSerializer(allow_null=True)
    delivery_method = serializers.CharField()
    delivery_address = serializers.CharField()
    tracking_no = serializers.CharField()
    placed_at = serializers.DateTimeField()
    coupons = CouponSerializer(many=True)


class PartnerOrderSerializer(OrderSerializer):
    member = serializers.IntegerField(source="member_id")
    member_card_no = serializers.CharField(source="member.card_no")


class OrderResultSerializer(serializers.Serializer):
    order = OrderSerializer()
    replayed = serializers.BooleanField(help_text=_("True when this answers a retry of an earlier request."))


class OrganizationOrderSerializer(OrderSerializer):
    placed_by = serializers.IntegerField(
        source="member_id", help_text=_("The administrator who placed it: the member who holds its check-in coupon."))
    placed_by_name = serializers.CharField(source="member.name")


class OrganizationOrderResultSerializer(serializers.Serializer):
    order = OrganizationOrderSerializer()
    replayed = serializers.BooleanField(help_text=_("True when this answers a retry of an earlier request."))


class PartnerCouponSerializer(CouponSerializer):
    kind = serializers.CharField(source="item.kind")
    benefit = serializers.CharField(source="item.benefit")
    face_value_cny = serializers.DecimalField(source="item.face_value_cny", max_digits=12, decimal_places=2,
                                              allow_null=True)
    discount_percent = serializers.DecimalField(source="item.discount_percent", max_digits=5, decimal_places=2,
                                                allow_null=True)
    min_spend_cny = serializers.DecimalField(source="item.min_spend_cny", max_digits=12, decimal_places=2,
                                             allow_null=True)
    slot = SlotSerializer(source="order.slot", allow_null=True)
    redeemed_by = serializers.CharField(source="redeemed_by.code", allow_null=True, default=None)
    may_redeem = serializers.SerializerMethodField(help_text=_("Whether this key's merchant is one that may write it off (its status and validity say whether it "
                    "can be now)."))

    def get_may_redeem(self, coupon) -> bool:
        return self.context["may_redeem"]


class WriteOffSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    merchant = serializers.CharField(source="merchant.code", allow_null=True, default=None)
    bill_amount_cny = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    undone_at = serializers.DateTimeField(allow_null=True)


class PartnerWriteOffSerializer(WriteOffSerializer):
    code = serializers.CharField(source="coupon.code")
    item = serializers.IntegerField(source="coupon.item_id")
    order = serializers.CharField(source="coupon.order.number")
    by = serializers.CharField(help_text=_("partner:<key prefix> or operator:<name>."))


class WriteOffResultSerializer(serializers.Serializer):
    write_off = WriteOffSerializer()
    coupon = PartnerCouponSerializer()
    replayed = serializers.BooleanField()


# --- the merchant's catalogue ----------------------------------------------------------------


class PartnerItemSerializer(ItemBaseSerializer):
    stock = serializers.IntegerField(allow_null=True, help_text=_("Null: unlimited."))
    limit_total = serializers.IntegerField(allow_null=True)
    limit_per_day = serializers.IntegerField(allow_null=True)
    limit_per_week = serializers.IntegerField(allow_null=True)
    limit_per_month = serializers.IntegerField(allow_null=True)
    display_from = serializers.DateTimeField(allow_null=True)
    display_until = serializers.DateTimeField(allow_null=True)
    is_active = serializers.BooleanField()
    code_source = serializers.ChoiceField(choices=CodeSource.choices)
    settlement_value_cny = serializers.DecimalField(max_digits=12, decimal_places=2)
    updated_at = serializers.DateTimeField()


class ItemWriteSerializer(serializers.Serializer):
    """The fields a partner sets; on PATCH any subset. `stock_delta` adds to the stock as it is
    (negative takes), `stock` sets it; not both."""

    kind = serializers.ChoiceField(choices=ItemKind.choices)
    category = serializers.SlugField(max_length=32, required=False, allow_null=True, help_text=_("A category code."))
    name_zh = PrintableCharField(max_length=120)
    name_en = PrintableCharField(max_length=120)
    description_zh = serializers.CharField(max_length=4000, required=False, allow_blank=True)
    description_en = serializers.CharField(max_length=4000, required=False, allow_blank=True)
    price_points = StrictIntegerField(min_value=1, max_value=BIGINT_MAX)
    cash_cny = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False)
    merchant = serializers.SlugField(max_length=32, required=False, allow_null=True,
                                     help_text=_("A BU key: a merchant code of its unit, or null for BU-wide. A "
                                                 "merchant key: its own (the default)."))
    stock = StrictIntegerField(min_value=0, max_value=INT_MAX, required=False, allow_null=True)
    stock_delta = StrictIntegerField(min_value=-INT_MAX, max_value=INT_MAX, required=False, write_only=True)
    limit_total = StrictIntegerField(min_value=1, max_value=INT_MAX, required=False, allow_null=True)
    limit_per_day = StrictIntegerField(min_value=1, max_value=INT_MAX, required=False, allow_null=True)
    limit_per_week = StrictIntegerField(min_value=1, max_value=INT_MAX, required=False, allow_null=True)
    limit_per_month = StrictIntegerField(min_value=1, max_value=INT_MAX, required=False, allow_null=True)
    display_from = serializers.DateTimeField(required=False, allow_null=True)
    display_until = serializers.DateTimeField(required=False, allow_null=True)
    sale_from = serializers.DateTimeField(required=False, allow_null=True)
    sale_until = serializers.DateTimeField(required=False, allow_null=True)
    min_tier = serializers.SlugField(max_length=32, required=False, allow_null=True,
                                     help_text=_("A tier level code of the active programme."))
    is_active = serializers.BooleanField(required=False)
    delivery = serializers.ChoiceField(choices=GoodsDelivery.choices, required=False)
    benefit = serializers.ChoiceField(choices=CouponBenefit.choices, required=False, allow_blank=True)
    face_value_cny = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False,
                                              allow_null=True)
    discount_percent = serializers.DecimalField(max_digits=5, decimal_places=2, min_value=0, max_value=100,
                                                required=False, allow_null=True)
    min_spend_cny = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False,
                                             allow_null=True)
    valid_from = serializers.DateTimeField(required=False, allow_null=True)
    valid_until = serializers.DateTimeField(required=False, allow_null=True)
    valid_days = StrictIntegerField(min_value=1, max_value=3650, required=False, allow_null=True)
    settlement_value_cny = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False)
    points_back_on_expiry = serializers.BooleanField(required=False)

    def validate(self, data):
        if "stock" in data and "stock_delta" in data:
            raise serializers.ValidationError({"stock_delta": [_("Give stock or stock_delta, not both.")]})
        return data

"""Partner API of the mall (Authorization: Api-Key <key>): coupon look-up, write-off and its undo
at the till, and a merchant's (or a business unit's) own catalogue and orders.

A merchant-scoped key sees its merchant's items, orders and coupons; a key of the business unit
alone sees the unit's. Anything of another merchant or unit is `404`, never shown."""

import django_filters
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, IDEMPOTENCY_PARAMETER, error_responses, idempotency_key
from members.permissions import IsPartner
from config.errors import NotFound
from mall.api.serializers import (
    ItemWriteSerializer,
    PartnerCouponSerializer,
    PartnerItemSerializer,
    PartnerOrderSerializer,
    PartnerWriteOffSerializer,
    RedeemSerializer,
    WriteOffResultSerializer,
)
from mall.exceptions import InvalidRequest
from mall.models import Item, ItemKind, Order, OrderStatus, WriteOff
from mall.selectors import coupon_by_code, may_redeem, partner_items, partner_orders, partner_write_offs
from mall.services import coupon_redeem, coupon_redeem_undo, item_create, item_update, partner_item_fields
from mall import codes
from points.ledger import Idempotency

CODE = OpenApiParameter("code", str, OpenApiParameter.PATH,
                        description="The coupon code as typed or scanned (case, spaces and dashes are ignored).")
ITEM_ID = OpenApiParameter("item_id", int, OpenApiParameter.PATH, description="The item's id.")
WRITE_ERRORS = ("invalid", "parse_error", "idempotency_key_required", "idempotency_conflict", *AUTH_ERRORS)


def partner_label(request) -> str:
    return request.user.idempotency_scope


def write_off_response(result, request, *, created: bool) -> Response:
    body = {
        "write_off": result.write_off,
        "coupon": result.coupon,
        "replayed": result.replayed,
    }
    allowed = may_redeem(coupon=result.coupon, business_unit=request.user.business_unit, merchant=request.user.merchant)
    data = WriteOffResultSerializer(body, context={"may_redeem": allowed}).data
    return Response(data, status=status.HTTP_201_CREATED if created and not result.replayed else status.HTTP_200_OK)


class CouponDetailView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="coupons_read",
        summary="Look a coupon up before writing it off",
        description="Its status, item, value, validity, and whether this key may write it off now.",
        parameters=[CODE],
        responses={200: PartnerCouponSerializer, **error_responses("invalid", "not_found", *AUTH_ERRORS,
                                                                   invalid_fields={"code": ["This is not a coupon code."]})},
        tags=["coupons"],
    )
    def get(self, request, code: str):
        if not codes.lookup_candidates(code):
            raise InvalidRequest(_("This is not a coupon code."), field="code")
        coupon = coupon_by_code(raw_code=code)
        if coupon is None or coupon.business_unit_id != request.user.business_unit.pk:
            raise NotFound(_("Coupon not found."))
        allowed = may_redeem(coupon=coupon, business_unit=request.user.business_unit, merchant=request.user.merchant)
        return Response(PartnerCouponSerializer(coupon, context={"may_redeem": allowed}).data)


class CouponRedeemView(APIView):
    permission_classes = [IsPartner]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="coupons_redeem",
        summary="Write a coupon off (or check a booking in)",
        description=(
            "Only the issuing merchant's key may, or any key of the business unit for a BU-wide coupon. Of racing "
            "write-offs of one coupon exactly one succeeds; the others are `coupon_used`."
        ),
        parameters=[CODE, IDEMPOTENCY_PARAMETER],
        request=RedeemSerializer,
        responses={
            201: OpenApiResponse(WriteOffResultSerializer, description="Written off."),
            200: OpenApiResponse(WriteOffResultSerializer, description="A replay: the original write-off."),
            **error_responses(*WRITE_ERRORS, "merchant_not_permitted", "not_found", "coupon_used",
                              "coupon_not_valid", "min_spend_not_met",
                              invalid_fields={"bill_amount": ["A valid number is required."]}),
        },
        examples=[OpenApiExample("bill", value={"bill_amount": "268.00"}, request_only=True)],
        tags=["coupons"],
    )
    def post(self, request, code: str):
        key = Idempotency(scope=request.user.idempotency_scope, key=idempotency_key(request))
        data = RedeemSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = coupon_redeem(
            raw_code=code, business_unit=request.user.business_unit, merchant=request.user.merchant,
            bill_amount=data.validated_data["bill_amount"], idempotency=key, by=partner_label(request),
        )
        return write_off_response(result, request, created=True)


class CouponUndoView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="coupons_redeem_undo",
        summary="Undo a write-off made by mistake",
        description="By the key's merchant that wrote it off, within MALL_WRITE_OFF_UNDO_SECONDS (default 15 minutes).",
        parameters=[CODE],
        request=None,
        responses={
            200: OpenApiResponse(WriteOffResultSerializer, description="Undone: the coupon is open again."),
            **error_responses("invalid", "not_found", "merchant_not_permitted", "nothing_to_undo",
                              "undo_window_passed", *AUTH_ERRORS, invalid_fields={"code": ["This is not a coupon code."]}),
        },
        tags=["coupons"],
    )
    def post(self, request, code: str):
        result = coupon_redeem_undo(raw_code=code, business_unit=request.user.business_unit,
                                    merchant=request.user.merchant, by=partner_label(request))
        return write_off_response(result, request, created=False)


class PartnerItemFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=ItemKind.choices)
    is_active = django_filters.BooleanFilter()


class PartnerItemListView(generics.ListAPIView):
    permission_classes = [IsPartner]
    serializer_class = PartnerItemSerializer
    filterset_class = PartnerItemFilter
    parser_classes = [JSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Item.objects.none()
        return partner_items(business_unit=self.request.user.business_unit, merchant=self.request.user.merchant)

    @extend_schema(
        operation_id="mall_items",
        summary="The key's own catalogue (its merchant's items, or its business unit's)",
        responses={200: PartnerItemSerializer(many=True), **error_responses("invalid", "page_not_found", *AUTH_ERRORS)},
        tags=["mall"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="mall_items_create",
        summary="Add an item to the key's catalogue",
        request=ItemWriteSerializer,
        responses={201: PartnerItemSerializer,
                   **error_responses("invalid", "parse_error", *AUTH_ERRORS,
                                     invalid_fields={"valid_days": ["A coupon or voucher needs a validity."]})},
        examples=[OpenApiExample("voucher", request_only=True, value={
            "kind": "service_voucher", "name_zh": "停车 2 小时", "name_en": "2 hours of parking", "price_points": 400,
            "stock": 500, "limit_per_day": 1, "valid_days": 30, "settlement_value_cny": "8.00"})],
        tags=["mall"],
    )
    def post(self, request):
        data = ItemWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = partner_item_fields(data=data.validated_data, business_unit=request.user.business_unit,
                                     merchant=request.user.merchant)
        item = item_create(business_unit=request.user.business_unit, fields=fields, by=partner_label(request))
        return Response(PartnerItemSerializer(item, context={"request": request}).data, status=status.HTTP_201_CREATED)


class PartnerItemDetailView(APIView):
    permission_classes = [IsPartner]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="mall_item",
        summary="One item of the key's catalogue",
        parameters=[ITEM_ID],
        responses={200: PartnerItemSerializer, **error_responses("not_found", *AUTH_ERRORS)},
        tags=["mall"],
    )
    def get(self, request, item_id: int):
        item = partner_items(business_unit=request.user.business_unit, merchant=request.user.merchant).filter(
            pk=item_id).first()
        if item is None:
            raise NotFound(_("Item not found."))
        return Response(PartnerItemSerializer(item, context={"request": request}).data)

    @extend_schema(
        operation_id="mall_item_update",
        summary="Change an item: price, stock (absolute or a delta), windows, limits, active",
        description=(
            "Only the fields sent change. `stock` sets the stock; `stock_delta` adds to it as it is at that moment "
            "(orders taking stock meanwhile are not overwritten); below zero is `stock_negative`."
        ),
        parameters=[ITEM_ID],
        request=ItemWriteSerializer(partial=True),
        responses={200: PartnerItemSerializer,
                   **error_responses("invalid", "parse_error", "not_found", "stock_negative", *AUTH_ERRORS,
                                     invalid_fields={"stock_delta": ["Give stock or stock_delta, not both."]})},
        examples=[OpenApiExample("restock", value={"stock_delta": 50}, request_only=True),
                  OpenApiExample("close", value={"is_active": False}, request_only=True)],
        tags=["mall"],
    )
    def patch(self, request, item_id: int):
        data = ItemWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        scope = {"business_unit": request.user.business_unit, "merchant": request.user.merchant}
        changes = partner_item_fields(data=data.validated_data, **scope)
        item = item_update(item_id=item_id, changes=changes, stock_delta=data.validated_data.get("stock_delta"),
                           by=partner_label(request), **scope)
        return Response(PartnerItemSerializer(item, context={"request": request}).data)


class PartnerOrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)
    item = django_filters.NumberFilter(field_name="item_id")
    placed_after = django_filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="gte",
                                                    help_text="Inclusive lower bound (ISO 8601).")
    placed_before = django_filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="lt",
                                                     help_text="Exclusive upper bound (ISO 8601).")


class PartnerOrderListView(generics.ListAPIView):
    permission_classes = [IsPartner]
    serializer_class = PartnerOrderSerializer
    filterset_class = PartnerOrderFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        return partner_orders(business_unit=self.request.user.business_unit, merchant=self.request.user.merchant)

    @extend_schema(
        operation_id="mall_orders",
        summary="Orders of the key's items, newest first",
        responses={200: PartnerOrderSerializer(many=True),
                   **error_responses("invalid", "page_not_found", *AUTH_ERRORS, invalid_fields={"status": ["Select a valid choice."]})},
        tags=["mall"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class PartnerWriteOffFilter(django_filters.FilterSet):
    at_after = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte",
                                                help_text="Inclusive lower bound (ISO 8601).")
    at_before = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt",
                                                 help_text="Exclusive upper bound (ISO 8601).")
    undone = django_filters.BooleanFilter(field_name="undone_at", lookup_expr="isnull", exclude=True,
                                          help_text="true: only undone write-offs; false: only standing ones.")


class PartnerWriteOffListView(generics.ListAPIView):
    permission_classes = [IsPartner]
    serializer_class = PartnerWriteOffSerializer
    filterset_class = PartnerWriteOffFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WriteOff.objects.none()
        return partner_write_offs(business_unit=self.request.user.business_unit, merchant=self.request.user.merchant)

    @extend_schema(
        operation_id="mall_write_offs",
        summary="The key's write-offs, newest first (a merchant key: its own; a BU key: the unit's)",
        responses={200: PartnerWriteOffSerializer(many=True), **error_responses("invalid", "page_not_found", *AUTH_ERRORS)},
        tags=["mall"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

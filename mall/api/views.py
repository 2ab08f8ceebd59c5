"""Member API of the mall (Authorization: Bearer <token>): the catalogue as the member sees it,
their orders (place, read, cancel) and their coupons. Each write view checks shape, makes one
service call and answers the order: 201 when new, 200 on a replay."""

import django_filters
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, IDEMPOTENCY_PARAMETER, error_responses, idempotency_key
from members.permissions import IsMember
from config.errors import NotFound
from mall.api.serializers import (
    MemberCouponSerializer,
    MemberItemDetailSerializer,
    MemberItemSerializer,
    OrderPlaceSerializer,
    OrderResultSerializer,
    OrderSerializer,
    ReasonSerializer,
)
from mall.models import Coupon, CouponStatus, Item, ItemKind, Order, OrderStatus
from mall.selectors import (
    affordable_filter,
    catalogue_items,
    free_slots,
    item_offers,
    member_coupons,
    member_orders,
    member_standing,
)
from mall.services import order_cancel, order_place

ITEM_ID = OpenApiParameter("item_id", int, OpenApiParameter.PATH, description="The item's id.")
ORDER_ID = OpenApiParameter("order_id", int, OpenApiParameter.PATH, description="The order's id.")
ORDER_ERRORS = (
    "invalid", "parse_error", "unsupported_media_type", "idempotency_key_required", "idempotency_conflict",
    "not_on_sale", "tier_required", "limit_reached", "out_of_stock", "slot_full", "insufficient_points",
    "account_frozen", "member_inactive", "risk_blocked", *AUTH_ERRORS,
)


def _standing(request):
    """The member's standing, read once per request (the affordable filter needs it too)."""
    if not hasattr(request, "mall_standing"):
        request.mall_standing = member_standing(member=request.user.member, at=timezone.now())
    return request.mall_standing


class CatalogueFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(field_name="category__code", help_text="Category code.")
    kind = django_filters.ChoiceFilter(choices=ItemKind.choices)
    business_unit = django_filters.CharFilter(field_name="business_unit__code", help_text="Business unit code.")
    affordable = django_filters.BooleanFilter(
        method="filter_affordable", help_text="true: only items whose member price the member can pay now.")
    min_price = django_filters.NumberFilter(field_name="price_points", lookup_expr="gte",
                                            help_text="List price in points, at least.")
    max_price = django_filters.NumberFilter(field_name="price_points", lookup_expr="lte",
                                            help_text="List price in points, at most.")
    ordering = django_filters.OrderingFilter(
        fields=(("price_points", "price"), ("sale_from", "sale_from"), ("id", "id")),
        help_text="price, -price, sale_from, -sale_from, id, -id (default: newest first).",
    )

    class Meta:
        model = Item
        fields = ["category", "kind", "business_unit", "affordable", "min_price", "max_price"]

    def filter_affordable(self, queryset, name, value):
        if value is None or self.request is None:
            return queryset
        affordable = affordable_filter(queryset, standing=_standing(self.request))
        return affordable if value else queryset.exclude(pk__in=affordable.values("pk"))


class MeItemListView(generics.ListAPIView):
    permission_classes = [IsMember]
    filterset_class = CatalogueFilter
    serializer_class = MemberItemSerializer

    def get_queryset(self):
        return catalogue_items().order_by("-id")

    @extend_schema(
        operation_id="me_mall_items",
        summary="The mall's catalogue, priced for the signed-in member",
        description=(
            "Items on display now (a flash sale shows before it opens: `not_orderable.opens_at`). Each says the "
            "member's price after their tier discount, whether they can afford it and how many points they lack, "
            "the stock and their own limit left, and why it cannot be ordered now."
        ),
        responses={200: MemberItemSerializer(many=True),
                   **error_responses("invalid", "page_not_found", *AUTH_ERRORS, invalid_fields={"kind": ["Select a valid choice."]})},
        tags=["me: mall"],
    )
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        offers = item_offers(page, standing=_standing(request), at=timezone.now())
        data = MemberItemSerializer(page, many=True, context={"offers": offers, "request": request}).data
        return self.get_paginated_response(data)


class MeItemDetailView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_mall_item",
        summary="One item, priced for the signed-in member, with its free slots",
        parameters=[ITEM_ID],
        responses={200: MemberItemDetailSerializer, **error_responses("not_found", *AUTH_ERRORS)},
        tags=["me: mall"],
    )
    def get(self, request, item_id: int):
        item = catalogue_items().filter(pk=item_id).first()
        if item is None:
            raise NotFound(_("Item not found."))
        now = timezone.now()
        context = {
            "offers": item_offers([item], standing=_standing(request), at=now), "request": request,
            "slots": free_slots(item=item, at=now) if item.kind == ItemKind.BOOKABLE else [],
        }
        return Response(MemberItemDetailSerializer(item, context=context).data)


class MemberOrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)


class MeOrderListView(generics.ListAPIView):
    permission_classes = [IsMember]
    serializer_class = OrderSerializer
    filterset_class = MemberOrderFilter
    parser_classes = [JSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        return member_orders(member_id=self.request.user.member.pk)

    @extend_schema(
        operation_id="me_mall_orders",
        summary="The signed-in member's orders, newest first",
        responses={200: OrderSerializer(many=True), **error_responses("invalid", "page_not_found", *AUTH_ERRORS)},
        tags=["me: mall"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="me_mall_order_place",
        summary="Order an item with points",
        description=(
            "In one transaction: the sale window, tier, limits and stock are checked under locks, the points "
            "spent at the item's provider, the stock and a slot or codes taken, the order and its coupons "
            "created. Price and discount are frozen on the order. JSON only."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=OrderPlaceSerializer,
        responses={
            201: OpenApiResponse(OrderResultSerializer, description="Placed: the points are spent."),
            200: OpenApiResponse(OrderResultSerializer, description="A replay: the original order, nothing spent."),
            **error_responses(*ORDER_ERRORS, invalid_fields={"quantity": ["Ensure this value is between 1 and 20."]}),
        },
        examples=[
            OpenApiExample("voucher", value={"item": 12, "quantity": 2}, request_only=True),
            OpenApiExample("booking", value={"item": 31, "slot": 907}, request_only=True),
            OpenApiExample("shipped goods", value={"item": 5, "delivery_method": "shipping",
                                                   "delivery_address": "上海市静安区南京西路 1 号"}, request_only=True),
        ],
        tags=["me: mall"],
    )
    def post(self, request):
        key = idempotency_key(request)
        data = OrderPlaceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = order_place(
            member_id=request.user.member.pk, item_id=data.validated_data["item"],
            quantity=data.validated_data["quantity"], slot_id=data.validated_data["slot"],
            delivery_method=data.validated_data["delivery_method"],
            delivery_address=data.validated_data["delivery_address"], idempotency_key=key,
        )
        return order_response(result, created=True)


def order_response(result, *, created: bool) -> Response:
    order = member_orders(member_id=result.order.member_id).get(pk=result.order.pk)
    body = {"order": OrderSerializer(order).data, "replayed": result.replayed}
    return Response(body, status=status.HTTP_201_CREATED if created and not result.replayed else status.HTTP_200_OK)


class MeOrderDetailView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_mall_order",
        summary="One of the signed-in member's orders",
        parameters=[ORDER_ID],
        responses={200: OrderSerializer, **error_responses("not_found", *AUTH_ERRORS)},
        tags=["me: mall"],
    )
    def get(self, request, order_id: int):
        order = member_orders(member_id=request.user.member.pk).filter(pk=order_id).first()
        if order is None:
            raise NotFound(_("Order not found."))
        return Response(OrderSerializer(order).data)


class MeOrderCancelView(APIView):
    permission_classes = [IsMember]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="me_mall_order_cancel",
        summary="Cancel an order before use",
        description=(
            "The points go back to exactly the lots they came from; the stock, the code or slot and the limit are "
            "given back. Exactly once: cancelling a cancelled order answers it again (200, `replayed`). A used, "
            "expired or fulfilled order, or a booking whose slot has started, is `order_not_cancellable`."
        ),
        parameters=[ORDER_ID],
        request=ReasonSerializer,
        responses={
            200: OpenApiResponse(OrderResultSerializer, description="Cancelled (or already: `replayed`)."),
            **error_responses("invalid", "parse_error", "not_found", "order_not_cancellable", *AUTH_ERRORS,
                              invalid_fields={"reason": ["Ensure this field has no more than 200 characters."]}),
        },
        tags=["me: mall"],
    )
    def post(self, request, order_id: int):
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = order_cancel(order_id=order_id, member_id=request.user.member.pk, reason=data.validated_data["reason"])
        return order_response(result, created=False)


class CouponFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CouponStatus.choices)


class MeCouponListView(generics.ListAPIView):
    permission_classes = [IsMember]
    serializer_class = MemberCouponSerializer
    filterset_class = CouponFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Coupon.objects.none()
        return member_coupons(member_id=self.request.user.member.pk)

    @extend_schema(
        operation_id="me_coupons",
        summary="The signed-in member's coupons and vouchers, with their QR codes",
        responses={200: MemberCouponSerializer(many=True),
                   **error_responses("invalid", "page_not_found", *AUTH_ERRORS, invalid_fields={"status": ["Select a valid choice."]})},
        tags=["me: mall"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

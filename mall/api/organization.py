"""Member API of an organization's mall orders (Authorization: Bearer <token> of one of its
administrators): book a bookable item (a meeting room) paid from the organization's wallet,
read the organization's orders, cancel one. Anyone else is refused `not_organization_admin`.
Each write view checks shape, makes one service call and answers the order: 201 when new, 200
on a replay."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, IDEMPOTENCY_PARAMETER, error_responses, idempotency_key
from config.errors import NotFound
from mall.api.serializers import (
    OrderPlaceSerializer,
    OrganizationOrderResultSerializer,
    OrganizationOrderSerializer,
    ReasonSerializer,
)
from mall.api.views import ORDER_ERRORS, ORDER_ID, MemberOrderFilter
from mall.models import Order
from mall.selectors import organization_orders
from mall.services import OrderResult, organization_order_cancel, organization_order_place
from members.permissions import IsMember
from points.organizations import organization_of_admin

TAGS = ["organizations"]


def _orders(request):
    """The orders of the organization the caller administers (not_organization_admin else)."""
    organization = organization_of_admin(member=request.user.member)
    return organization_orders(organization_id=organization.pk)


def _response(result: OrderResult, *, created: bool) -> Response:
    order = organization_orders(organization_id=result.order.organization_id).get(pk=result.order.pk)
    body = {"order": OrganizationOrderSerializer(order).data, "replayed": result.replayed}
    return Response(body, status=status.HTTP_201_CREATED if created and not result.replayed else status.HTTP_200_OK)


class OrganizationOrderListView(generics.ListAPIView):
    permission_classes = [IsMember]
    serializer_class = OrganizationOrderSerializer
    filterset_class = MemberOrderFilter
    parser_classes = [JSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        return _orders(self.request)

    @extend_schema(
        operation_id="me_organization_orders",
        summary="The orders of the organization the signed-in member administers, newest first",
        description="Whichever of its administrators placed them.",
        responses={200: OrganizationOrderSerializer(many=True),
                   **error_responses("invalid", "page_not_found", "not_organization_admin", *AUTH_ERRORS)},
        tags=TAGS,
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="me_organization_order_place",
        summary="Book a bookable item (a meeting room) for the organization, paid from its wallet",
        description=(
            "For an administrator of the organization. As the member's own order of a slot, but the points are "
            "spent from the organization's wallet: at the list price (an organization has no tier; an item for a "
            "minimum tier is `tier_required`), within the item's limits per member counted over the organization's "
            "orders (the administrator's own orders are not counted, nor are these counted against them). Only "
            "bookable items (`invalid` otherwise). The administrator holds the check-in coupon. JSON only."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=OrderPlaceSerializer,
        responses={
            201: OpenApiResponse(OrganizationOrderResultSerializer, description="Booked: the organization's points "
                                                                                "are spent."),
            200: OpenApiResponse(OrganizationOrderResultSerializer,
                                 description="A replay: the original order, nothing spent."),
            **error_responses(*ORDER_ERRORS, "not_organization_admin",
                              invalid_fields={"item": ["An organization books bookable services only (e.g. a meeting "
                                                       "room)."]}),
        },
        examples=[OpenApiExample("meeting room", value={"item": 31, "slot": 907}, request_only=True)],
        tags=TAGS,
    )
    def post(self, request):
        key = idempotency_key(request)
        data = OrderPlaceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = organization_order_place(
            admin=request.user.member, item_id=data.validated_data["item"], quantity=data.validated_data["quantity"],
            slot_id=data.validated_data["slot"], idempotency_key=key,
        )
        return _response(result, created=True)


class OrganizationOrderDetailView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_organization_order",
        summary="One order of the organization the signed-in member administers",
        parameters=[ORDER_ID],
        responses={200: OrganizationOrderSerializer,
                   **error_responses("not_found", "not_organization_admin", *AUTH_ERRORS)},
        tags=TAGS,
    )
    def get(self, request, order_id: int):
        order = _orders(request).filter(pk=order_id).first()
        if order is None:
            raise NotFound(_("Order not found."))
        return Response(OrganizationOrderSerializer(order).data)


class OrganizationOrderCancelView(APIView):
    permission_classes = [IsMember]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="me_organization_order_cancel",
        summary="Cancel an order of the organization before its slot starts",
        description=(
            "Any administrator of the organization may. The points go back to the organization's wallet, to exactly "
            "the lots they came from; the slot's place is given back. Cancelling a cancelled order answers it again "
            "(200, `replayed`); a used or expired booking, or one whose slot has started, is `order_not_cancellable`."
        ),
        parameters=[ORDER_ID],
        request=ReasonSerializer,
        responses={
            200: OpenApiResponse(OrganizationOrderResultSerializer, description="Cancelled (or already: `replayed`)."),
            **error_responses("invalid", "parse_error", "not_found", "not_organization_admin", "order_not_cancellable",
                              *AUTH_ERRORS,
                              invalid_fields={"reason": ["Ensure this field has no more than 200 characters."]}),
        },
        tags=TAGS,
    )
    def post(self, request, order_id: int):
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = organization_order_cancel(admin=request.user.member, order_id=order_id,
                                           reason=data.validated_data["reason"])
        return _response(result, created=False)

"""Partner API of holds: reserve a member's points for a bill or an order, then capture (all
or part), void, or let it expire. Each view checks shape, makes one ledger call and answers the
hold (and, for a capture, the spend posting) with the member's new balance."""

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, IDEMPOTENCY_PARAMETER, REPLAYED_HEADER, error_responses
from members.permissions import IsPartner, MaySpendWithoutPresence
from points.api.serializers import BalanceSerializer, MemberIdField, PointsField, TransactionSerializer
from points.api.views import WRITE_ERRORS, balance_after_commit, idempotency
from points.exceptions import HoldReserved, NotFound
from points.ledger import hold_capture, hold_place, hold_void
from points.models import Hold, HoldStatus
from points.policies import hold_purpose_reserved
from points.selectors import partner_hold

HOLD_ID = OpenApiParameter("hold_id", int, OpenApiParameter.PATH, description="The hold's id.")


class HoldSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    member = serializers.IntegerField(source="wallet.member_id", help_text=_("The member's id."))
    status = serializers.ChoiceField(
        choices=HoldStatus.choices,
        help_text=_("held, captured, voided or expired; a hold past its expiry reads as expired at once."),
    )
    points = serializers.IntegerField(help_text=_("Points reserved."))
    captured = serializers.IntegerField(help_text=_("Points spent by the capture (0 until captured)."))
    purpose = serializers.CharField()
    reference = serializers.CharField()
    business_unit = serializers.CharField(source="business_unit.code")
    merchant = serializers.CharField(source="merchant.code", allow_null=True, default=None)
    expires_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    capture_transaction = serializers.IntegerField(source="capture_posting_id", allow_null=True)

    def to_representation(self, hold):
        data = super().to_representation(hold)
        if hold.status == HoldStatus.HELD and hold.expires_at <= timezone.now():
            data["status"] = HoldStatus.EXPIRED.value
        return data


class HoldResultSerializer(serializers.Serializer):
    hold = HoldSerializer()
    balance = BalanceSerializer(
        allow_null=True, help_text=_("The balance after the write; null only when the database failed right after the "
                                     "write committed: the write stands, read the balance again.")
    )
    replayed = serializers.BooleanField(help_text=_("True when this answers a retry of an earlier request."))


class CaptureResultSerializer(HoldResultSerializer):
    transaction = TransactionSerializer(help_text=_("The spend posting of the capture."))


class HoldPlaceSerializer(serializers.Serializer):
    member = MemberIdField()
    points = PointsField()
    purpose = serializers.SlugField(max_length=32, help_text=_("What the points are held for, e.g. pos_bill."))
    reference = serializers.CharField(max_length=64, required=False, default="", allow_blank=True,
                                      help_text=_("Your own reference, e.g. the bill number."))
    expires_in = serializers.IntegerField(
        min_value=1, max_value=10**9, required=False, default=None,
        help_text=_("Seconds the hold lives (default 900, at most POINTS_HOLD_MAX_SECONDS: 604800); shortened to "
                    "the life of the points it reserves."),
    )


class HoldCaptureSerializer(serializers.Serializer):
    points = PointsField(required=False, default=None, help_text=_("Points to spend; all held by default."))
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class HoldVoidSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


def _partner_hold(request, hold_id: int) -> Hold:
    """The hold, if this partner's business unit placed it through this API; else not found."""
    hold = partner_hold(hold_id=hold_id, business_unit=request.user.business_unit)
    if hold is None:
        raise NotFound(f"hold {hold_id} not found")
    return hold


def _movable_hold(request, hold_id: int) -> Hold:
    """The hold to capture or void: as _partner_hold, but a hold of the business unit whose
    purpose an app above points reserves (a payment's) is refused as such, not hidden."""
    hold = partner_hold(hold_id=hold_id, business_unit=request.user.business_unit, reserved_too=True)
    if hold is None:
        raise NotFound(f"hold {hold_id} not found")
    if hold_purpose_reserved(hold.purpose):
        raise HoldReserved(hold=hold.pk, purpose=hold.purpose)
    return hold


def _result(result, *, created: bool, posting=None) -> Response:
    """The hold (and the capture's posting) as written; the balance read after the commit, which a
    failing database leaves null rather than answering a committed write with an error."""
    balance = balance_after_commit(result.wallet)
    body = {
        "hold": HoldSerializer(result.hold).data,
        "balance": None if balance is None else BalanceSerializer(balance).data,
        "replayed": result.replayed,
    }
    if posting is not None:
        body["transaction"] = TransactionSerializer(posting).data
    return Response(
        body, status=status.HTTP_201_CREATED if created and not result.replayed else status.HTTP_200_OK,
        headers={REPLAYED_HEADER: "true" if result.replayed else "false"},
    )


class HoldListView(APIView):
    permission_classes = [IsPartner, MaySpendWithoutPresence]

    @extend_schema(
        operation_id="holds_create",
        summary="Reserve a member's available points",
        description=(
            "The points stay the member's but can no longer be spent, until the hold is captured, voided or "
            "expires. Capture, void and expiry race safely: exactly one of them resolves the hold. Only for keys "
            "allowed to spend without the member present (`presence_required` otherwise). A purpose reserved by an "
            "operation of its own (`payment`: use /api/v1/payments/) is `hold_reserved`."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=HoldPlaceSerializer,
        responses={
            201: OpenApiResponse(HoldResultSerializer, description="Held."),
            200: OpenApiResponse(HoldResultSerializer, description="A replay: the original hold, nothing reserved."),
            **error_responses(*WRITE_ERRORS, "not_found", "insufficient_points", "account_frozen", "risk_blocked",
                              "presence_required", "hold_reserved",
                              invalid_fields={"points": ["Ensure this value is greater than or equal to 1."]}),
        },
        examples=[OpenApiExample("bill", value={"member": 42, "points": 3000, "purpose": "pos_bill",
                                                "reference": "B-20261201-0042"}, request_only=True)],
        tags=["holds"],
    )
    def post(self, request):
        key = idempotency(request)
        data = HoldPlaceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        expires_in = data.validated_data["expires_in"]
        result = hold_place(
            member_id=data.validated_data["member"], points=data.validated_data["points"],
            business_unit=request.user.business_unit, merchant=request.user.merchant,
            purpose=data.validated_data["purpose"], reference=data.validated_data["reference"],
            expires_in=timedelta(seconds=expires_in) if expires_in else None, idempotency=key,
        )
        return _result(result, created=True)


class HoldDetailView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="holds_read",
        summary="A hold of the key's business unit",
        parameters=[HOLD_ID],
        responses={200: HoldSerializer, **error_responses("not_found", *AUTH_ERRORS)},
        tags=["holds"],
    )
    def get(self, request, hold_id: int):
        return Response(HoldSerializer(_partner_hold(request, hold_id)).data)


class HoldCaptureView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="holds_capture",
        summary="Spend all or part of a hold (the rest is released)",
        description=(
            "A hold that belongs to an operation of its own (a payment's: purpose `payment`) is `hold_reserved`: "
            "capture the payment instead (POST /api/v1/payments/{id}/capture/)."
        ),
        parameters=[HOLD_ID, IDEMPOTENCY_PARAMETER],
        request=HoldCaptureSerializer,
        responses={
            201: OpenApiResponse(CaptureResultSerializer, description="Captured: the spend posting is written."),
            200: OpenApiResponse(CaptureResultSerializer, description="A replay of the same capture."),
            **error_responses(*WRITE_ERRORS, "not_found", "hold_expired", "hold_resolved", "capture_exceeds_hold",
                              "hold_reserved", "account_frozen", invalid_fields={"points": ["A valid integer is required."]}),
        },
        tags=["holds"],
    )
    def post(self, request, hold_id: int):
        key = idempotency(request)
        data = HoldCaptureSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _movable_hold(request, hold_id)
        result, posting = hold_capture(
            hold_id=hold_id, points=data.validated_data["points"], reason=data.validated_data["reason"],
            business_unit=request.user.business_unit, idempotency=key,
        )
        return _result(result, created=True, posting=posting)


class HoldVoidView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="holds_void",
        summary="Release a hold",
        description=(
            "Voiding a voided hold answers it again; a hold past its expiry is resolved as expired. A hold that "
            "belongs to an operation of its own (a payment's) is `hold_reserved`: void the payment instead."
        ),
        parameters=[HOLD_ID],
        request=HoldVoidSerializer,
        responses={
            200: OpenApiResponse(HoldResultSerializer, description="Released (or already voided: `replayed`)."),
            **error_responses("invalid", "parse_error", "not_found", "hold_resolved", "hold_reserved", *AUTH_ERRORS,
                              invalid_fields={"reason": ["Ensure this field has no more than 200 characters."]}),
        },
        tags=["holds"],
    )
    def post(self, request, hold_id: int):
        data = HoldVoidSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _movable_hold(request, hold_id)
        result = hold_void(hold_id=hold_id, business_unit=request.user.business_unit,
                           reason=data.validated_data["reason"])
        return _result(result, created=False)

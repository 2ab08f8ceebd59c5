"""API of payments with points: the member's pay code; quote, authorise, capture, void, refund
and read a payment (partners, under /api/v1/payments/); property bills.

Each view checks shape, makes one service call (mall.services_payments) and answers the
payment with the member's balance: 201 for a new payment or move, 200 for a replay. The rules
(limits, rounding, presence, idempotency, races) are in the services' and selectors' docstrings.
"""

import io
from decimal import Decimal

import barcode
import segno
from barcode.writer import SVGWriter
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, IDEMPOTENCY_PARAMETER, error_responses, idempotency_key
from members.permissions import IsMember, IsPartner
from members.throttles import MemberScopedRateThrottle
from config.errors import NotFound
from mall.exceptions_payments import PayCodeInvalid
from mall.models_payments import PaymentPresence, PaymentStatus
from mall.selectors_payments import (
    member_payments,
    member_property_bills,
    pay_code_member_id,
    payment_earnable_cny,
    payment_for_business_unit,
    payment_quote,
    payment_status_now,
    property_bill_points_paid,
)
from mall.services_payments import (
    PAY_CODE_TTL_SECONDS,
    pay_code_issue,
    payment_authorize,
    payment_capture,
    payment_refund,
    payment_void,
    property_bill_earn,
    property_bill_post,
)
from points.ledger import Idempotency
from points.models import Wallet
from points.selectors import member_balance, wallet_balance

BIGINT_MAX = 2**63 - 1
PAYMENT_ID = OpenApiParameter("payment_id", int, OpenApiParameter.PATH, description="The payment's id.")
WRITE_ERRORS = ("invalid", "parse_error", "idempotency_key_required", "idempotency_conflict", *AUTH_ERRORS)
PAY_CODE_PATTERN = r"^([0-9]{18})?$"  # blank: the payer is named by `member`


def _idempotency(request) -> Idempotency:
    return Idempotency(scope=request.user.idempotency_scope, key=idempotency_key(request))


# --- fields


class BillAmountField(serializers.DecimalField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("The whole bill in CNY, a decimal string with at most 2 decimals, e.g. \"268.00\"."))
        super().__init__(max_digits=12, decimal_places=2, min_value=Decimal("0.01"), coerce_to_string=True, **kwargs)


class CnyField(serializers.DecimalField):
    def __init__(self, **kwargs):
        super().__init__(max_digits=14, decimal_places=2, coerce_to_string=True, **kwargs)


class PointsField(serializers.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=BIGINT_MAX, **kwargs)


# --- inputs


class PayerSerializer(serializers.Serializer):
    pay_code = serializers.RegexField(
        PAY_CODE_PATTERN, required=False, default="", allow_blank=True,
        help_text=_("The 18-digit code the member shows (GET /api/v1/me/pay-code/)."),
    )
    member = serializers.IntegerField(
        min_value=1, max_value=BIGINT_MAX, required=False, default=None,
        help_text=_("The member's id, instead of a pay code: only for keys allowed to spend without the member present."),
    )
    bill_no = serializers.CharField(max_length=64, help_text=_("Your bill number: one live payment per bill."))
    bill_amount = BillAmountField(
        required=False, default=None,
        help_text=_("The whole bill in CNY (at most 2 decimals); may be left out for a property bill, whose amount it must equal."),
    )

    def validate(self, attrs):
        if bool(attrs["pay_code"]) == (attrs["member"] is not None):
            raise serializers.ValidationError(_("Give pay_code or member (exactly one)."))
        return attrs


class QuoteRequestSerializer(PayerSerializer):
    pass


class AuthorizeSerializer(PayerSerializer):
    points = PointsField(required=False, default=None, help_text=_("Points to pay with, a multiple of the unit."))
    amount_cny = CnyField(
        required=False, default=None, min_value=Decimal("0.01"),
        help_text=_("Or the CNY to cover with points: it must be worth a whole number of units."),
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if (attrs["points"] is None) == (attrs["amount_cny"] is None):
            raise serializers.ValidationError(_("Give points or amount_cny (exactly one)."))
        return attrs


class CaptureSerializer(serializers.Serializer):
    points = PointsField(required=False, default=None, help_text=_("Points to capture; all authorised by default."))
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class RefundSerializer(serializers.Serializer):
    points = PointsField(required=False, default=None, help_text=_("Points to give back; all that is left by default."))
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class VoidSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


# --- outputs


class LimitSerializer(serializers.Serializer):
    limit = serializers.CharField(source="name", help_text=_(
        "max_share, cap_per_payment or available_points (of the wallet that pays)."))
    points = serializers.IntegerField(help_text=_("The most points this limit allows, rounded down to the unit."))
    amount_cny = CnyField()


class QuoteSerializer(serializers.Serializer):
    member = serializers.IntegerField(source="member_id")
    organization = serializers.CharField(
        allow_null=True,
        help_text=_("The code of the organization whose wallet pays (a property bill of a company, paid by one of its "
                    "administrators): `available_points` are its. Null: the member's own wallet pays."),
    )
    bill_amount = CnyField()
    point_value_cny = serializers.DecimalField(source="terms.point_value_cny", max_digits=12, decimal_places=6,
                                               coerce_to_string=True)
    unit = serializers.IntegerField(source="terms.unit", help_text=_("Points are used in multiples of this."))
    max_share_percent = serializers.IntegerField(source="terms.max_share_percent")
    cap_points = serializers.IntegerField(source="terms.cap_points", allow_null=True)
    max_points = serializers.IntegerField(help_text=_("The most points usable now for this bill."))
    max_amount_cny = CnyField(help_text=_("Their value: exactly max_points times the point value."))
    binding_limit = serializers.CharField(help_text=_("The limit that decides max_points."))
    limits = LimitSerializer(many=True)


class PaymentEventSerializer(serializers.Serializer):
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    points = serializers.IntegerField()
    amount_cny = CnyField()
    transaction = serializers.IntegerField(source="posting_id", allow_null=True,
                                           help_text=_("The ledger posting of the move (capture: spend; refund: cancel)."))
    points_to_expired_lots = serializers.IntegerField(
        help_text=_("Of a refund's points, those given back to lots already past their expiry: the next expiry run "
                    "expires them."))
    reason = serializers.CharField()
    at = serializers.DateTimeField()


class PaymentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=PaymentStatus.choices,
        help_text=_("An authorised payment whose hold expired reads as expired at once."),
    )
    business_unit = serializers.CharField(source="business_unit.code")
    merchant = serializers.CharField(source="merchant.code", allow_null=True, default=None)
    member = serializers.IntegerField(source="member_id")
    presence = serializers.ChoiceField(choices=PaymentPresence.choices)
    bill_no = serializers.CharField()
    bill_amount = CnyField()
    property_bill = serializers.CharField(source="property_bill.bill_no", allow_null=True, default=None)
    point_value_cny = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=True,
                                               help_text=_("Frozen at authorisation, as are the limits."))
    unit = serializers.IntegerField()
    max_share_percent = serializers.IntegerField()
    cap_points = serializers.IntegerField(allow_null=True)
    points_part_earns = serializers.BooleanField()
    points = serializers.IntegerField(help_text=_("Points authorised."))
    amount_cny = CnyField(help_text=_("CNY the authorised points cover."))
    captured_points = serializers.IntegerField()
    captured_cny = CnyField()
    refunded_points = serializers.IntegerField()
    refunded_cny = CnyField()
    refundable_points = serializers.IntegerField()
    earnable_amount_cny = CnyField(help_text=_(
        "What the bill's purchase earn should count (POST /api/v1/transactions/earn/ `amount`): the cash part only, "
        "unless the business unit's points part earns too."))
    expires_at = serializers.DateTimeField(help_text=_("The authorisation lapses then unless captured."))
    hold = serializers.IntegerField(source="hold_id")
    capture_transaction = serializers.IntegerField(source="capture_posting_id", allow_null=True)
    created_at = serializers.DateTimeField()
    events = PaymentEventSerializer(many=True)

    def to_representation(self, payment):
        payment.earnable_amount_cny = payment_earnable_cny(payment)
        data = super().to_representation(payment)
        data["status"] = payment_status_now(payment)
        return data


class PaymentBalanceSerializer(serializers.Serializer):
    available = serializers.IntegerField()
    held = serializers.IntegerField()
    total = serializers.IntegerField()


class PaymentResultSerializer(serializers.Serializer):
    payment = PaymentSerializer()
    balance = PaymentBalanceSerializer(help_text=_(
        "The points of the wallet that pays, after the call: the member's, or the organization's for its bill."))
    replayed = serializers.BooleanField(help_text=_("True when this answers a retry of an earlier request."))


class PayCodeSerializer(serializers.Serializer):
    code = serializers.CharField(help_text=_("18 digits, single use."))
    expires_at = serializers.DateTimeField()
    expires_in = serializers.IntegerField(help_text=_("Seconds the code stays valid."))
    qr_svg = serializers.CharField(help_text=_("The code as a QR code, an SVG document."))
    barcode_svg = serializers.CharField(help_text=_("The code as a Code 128 barcode, an SVG document."))


def _result(result, *, created: bool) -> Response:
    payment = payment_for_business_unit(payment_id=result.payment.pk, business_unit=result.payment.business_unit)
    if result.wallet.organization_id is not None:  # an organization's bill: its wallet paid
        balance = wallet_balance(wallet=Wallet.objects.get(pk=result.wallet.pk))
    else:
        balance = member_balance(member_id=payment.member_id)
    body = {
        "payment": PaymentSerializer(payment).data,
        "balance": {"available": balance.available, "held": balance.held, "total": balance.total},
        "replayed": result.replayed,
    }
    return Response(body, status=status.HTTP_201_CREATED if created and not result.replayed else status.HTTP_200_OK)


def pay_code_images(code: str) -> tuple[str, str]:
    """The code as a QR code (segno) and as a Code 128 barcode (python-barcode), both SVG."""
    qr = io.BytesIO()
    segno.make_qr(code, error="m").save(qr, kind="svg", scale=4, border=2, xmldecl=False)
    bars = io.BytesIO()
    barcode.get("code128", code, writer=SVGWriter()).write(bars, options={"module_height": 15.0, "write_text": True})
    return qr.getvalue().decode(), bars.getvalue().decode()


# --- views


class PayCodeView(APIView):
    permission_classes = [IsMember]
    throttle_classes = [MemberScopedRateThrottle]
    throttle_scope = "pay_code"

    @extend_schema(
        operation_id="me_pay_code",
        summary="A one-time payment code to show at the till",
        description=(
            f"18 digits, valid {PAY_CODE_TTL_SECONDS} seconds, usable once; only a keyed hash is stored. The till "
            "authorises a payment with it (POST /api/v1/payments/). Ask again for a fresh code. Limited per "
            "member (`throttled`: wait the Retry-After seconds)."
        ),
        responses={200: PayCodeSerializer, **error_responses("throttled", *AUTH_ERRORS)},
        tags=["me"],
    )
    def get(self, request):
        issued = pay_code_issue(member=request.user.member)
        qr_svg, barcode_svg = pay_code_images(issued.code)
        body = {"code": issued.code, "expires_at": issued.expires_at, "expires_in": PAY_CODE_TTL_SECONDS,
                "qr_svg": qr_svg, "barcode_svg": barcode_svg}
        response = Response(PayCodeSerializer(body).data)
        response["Cache-Control"] = "no-store"
        return response


class PaymentQuoteView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="payments_quote",
        summary="The most points usable now for a bill, and why",
        description=(
            "Reserves nothing, and does not use the pay code. The points available are those of the wallet that "
            "would pay: the member's, or for a property bill of a company the member administers, the company's "
            "(`organization`); a bill that is not the member's to pay is `bill_payer_mismatch`."
        ),
        request=QuoteRequestSerializer,
        responses={
            200: QuoteSerializer,
            **error_responses("invalid", "parse_error", "pay_code_invalid", "not_found", "points_not_accepted",
                              "bill_amount_mismatch", "bill_payer_mismatch", *AUTH_ERRORS,
                              invalid_fields={"bill_amount": ["Ensure that there are no more than 2 decimal places."]}),
        },
        examples=[OpenApiExample("till", value={"pay_code": "812345678901234567", "bill_no": "T12-20261201-0042",
                                                "bill_amount": "268.00"}, request_only=True)],
        tags=["payments"],
    )
    def post(self, request):
        data = QuoteRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        member_id = data.validated_data["member"]
        if data.validated_data["pay_code"]:
            member_id = pay_code_member_id(code=data.validated_data["pay_code"])
            if member_id is None:
                raise PayCodeInvalid()
        elif member_balance(member_id=member_id) is None:
            raise NotFound(f"member {member_id} not found")
        quote = payment_quote(business_unit=request.user.business_unit, member_id=member_id,
                              bill_no=data.validated_data["bill_no"], bill_amount=data.validated_data["bill_amount"])
        return Response(QuoteSerializer(quote).data)


class PaymentListView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="payments_authorize",
        summary="Authorise a payment with points (a hold)",
        description=(
            "Holds the points (or the points worth `amount_cny`) of the member present by pay code, within the "
            "business unit's terms, which are frozen on the payment. Idempotent per Idempotency-Key and per "
            "bill_no: the same request answers the original payment (200). Capture it before `expires_at`."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=AuthorizeSerializer,
        responses={
            201: OpenApiResponse(PaymentResultSerializer, description="Authorised: the points are held."),
            200: OpenApiResponse(PaymentResultSerializer, description="A replay: the original payment, nothing held."),
            **error_responses(*WRITE_ERRORS, "pay_code_invalid", "invalid_points_unit", "payment_limit_exceeded",
                              "bill_amount_mismatch", "presence_required", "not_found", "points_not_accepted",
                              "bill_already_paid", "bill_payer_mismatch", "insufficient_points", "account_frozen",
                              "risk_blocked", invalid_fields={"bill_amount": ["Ensure that there are no more than 12 digits in total."]}),
        },
        examples=[OpenApiExample("till", value={"pay_code": "812345678901234567", "bill_no": "T12-20261201-0042",
                                                "bill_amount": "268.00", "points": 5000}, request_only=True)],
        tags=["payments"],
    )
    def post(self, request):
        key = _idempotency(request)
        data = AuthorizeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = payment_authorize(
            business_unit=request.user.business_unit, merchant=request.user.merchant, partner_key=request.user.key,
            idempotency=key, bill_no=data.validated_data["bill_no"], bill_amount=data.validated_data["bill_amount"],
            pay_code=data.validated_data["pay_code"], member_id=data.validated_data["member"],
            points=data.validated_data["points"], amount_cny=data.validated_data["amount_cny"],
        )
        return _result(result, created=True)


class PaymentDetailView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="payments_read",
        summary="A payment of the key's business unit, with its moves",
        parameters=[PAYMENT_ID],
        responses={200: PaymentSerializer, **error_responses("not_found", *AUTH_ERRORS)},
        tags=["payments"],
    )
    def get(self, request, payment_id: int):
        payment = payment_for_business_unit(payment_id=payment_id, business_unit=request.user.business_unit)
        if payment is None:
            raise NotFound(f"payment {payment_id} not found")
        return Response(PaymentSerializer(payment).data)


class PaymentCaptureView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="payments_capture",
        summary="Capture all or part of an authorised payment (the rest is released)",
        parameters=[PAYMENT_ID, IDEMPOTENCY_PARAMETER],
        request=CaptureSerializer,
        responses={
            201: OpenApiResponse(PaymentResultSerializer, description="Captured: the points are spent."),
            200: OpenApiResponse(PaymentResultSerializer, description="A replay of the same capture."),
            **error_responses(*WRITE_ERRORS, "invalid_points_unit", "not_found", "payment_expired", "payment_resolved",
                              "capture_exceeds_authorization", "account_frozen",
                              invalid_fields={"points": ["A valid integer is required."]}),
        },
        tags=["payments"],
    )
    def post(self, request, payment_id: int):
        key = _idempotency(request)
        data = CaptureSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = payment_capture(
            payment_id=payment_id, business_unit=request.user.business_unit, idempotency=key,
            points=data.validated_data["points"], reason=data.validated_data["reason"], partner_key=request.user.key,
        )
        return _result(result, created=True)


class PaymentVoidView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="payments_void",
        summary="Release an authorised payment's points",
        description="Voiding a voided payment answers it again (200, `replayed`).",
        parameters=[PAYMENT_ID],
        request=VoidSerializer,
        responses={
            200: OpenApiResponse(PaymentResultSerializer, description="Voided (or voided already: `replayed`)."),
            **error_responses("invalid", "parse_error", "not_found", "payment_expired", "payment_resolved", *AUTH_ERRORS,
                              invalid_fields={"reason": ["Ensure this field has no more than 200 characters."]}),
        },
        tags=["payments"],
    )
    def post(self, request, payment_id: int):
        data = VoidSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = payment_void(payment_id=payment_id, business_unit=request.user.business_unit,
                              reason=data.validated_data["reason"], partner_key=request.user.key)
        return _result(result, created=False)


class PaymentRefundView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="payments_refund",
        summary="Give back all or part of a captured payment's points",
        description=(
            "The points go back to exactly the lots they came from. Several partial refunds add up to at most "
            "the capture. Points given back to a lot already past its expiry are expired by the next expiry run "
            "(`points_to_expired_lots` of the refund's event)."
        ),
        parameters=[PAYMENT_ID, IDEMPOTENCY_PARAMETER],
        request=RefundSerializer,
        responses={
            201: OpenApiResponse(PaymentResultSerializer, description="Refunded: the points are back."),
            200: OpenApiResponse(PaymentResultSerializer, description="A replay of the same refund."),
            **error_responses(*WRITE_ERRORS, "invalid_points_unit", "not_found", "payment_not_captured",
                              "refund_exceeds_capture", invalid_fields={"points": ["A valid integer is required."]}),
        },
        tags=["payments"],
    )
    def post(self, request, payment_id: int):
        key = _idempotency(request)
        data = RefundSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = payment_refund(
            payment_id=payment_id, business_unit=request.user.business_unit, idempotency=key,
            points=data.validated_data["points"], reason=data.validated_data["reason"], partner_key=request.user.key,
        )
        return _result(result, created=True)


class MemberPaymentsView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_payments",
        summary="The member's payments with points (latest 50)",
        responses={200: PaymentSerializer(many=True), **error_responses(*AUTH_ERRORS)},
        tags=["me"],
    )
    def get(self, request):
        payments = member_payments(member_id=request.user.member.pk)[:50]
        return Response(PaymentSerializer(payments, many=True).data)


# --- property bills


class PropertyBillPostSerializer(serializers.Serializer):
    bill_no = serializers.CharField(max_length=64)
    unit = serializers.CharField(max_length=64, help_text=_("The unit or room billed, e.g. T2-1808."))
    period = serializers.CharField(max_length=32, help_text=_("The period billed, e.g. 2026-05."))
    amount_cny = BillAmountField(help_text=_("The bill in CNY, at most 2 decimals."))
    payer_member = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False, default=None)
    payer_organization = serializers.RegexField(
        r"^[-a-zA-Z0-9_]*$", max_length=32, required=False, default="", allow_blank=True,
        help_text=_("The tenant company's code."),
    )

    def validate(self, attrs):
        if (attrs["payer_member"] is None) == (not attrs["payer_organization"]):
            raise serializers.ValidationError(_("Give payer_member or payer_organization (exactly one)."))
        return attrs


class PropertyBillSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    business_unit = serializers.CharField(source="business_unit.code")
    bill_no = serializers.CharField()
    unit = serializers.CharField()
    period = serializers.CharField()
    amount_cny = CnyField()
    payer_member = serializers.IntegerField(source="payer_member_id", allow_null=True)
    payer_organization = serializers.CharField(source="payer_organization.code", allow_null=True, default=None)
    points_paid = serializers.IntegerField(help_text=_("Points that paid it: captured less refunded."))
    points_paid_cny = CnyField()
    created_at = serializers.DateTimeField()

    def to_representation(self, bill):
        bill.points_paid, bill.points_paid_cny = property_bill_points_paid(bill)
        return super().to_representation(bill)


class PropertyBillListView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="property_bills_post",
        summary="Post a property bill (idempotent on bill_no)",
        description=(
            "The property system posts its bills; a member pays part of one with points by authorising a payment "
            "with the bill's `bill_no` (the amount may then be left out). The same bill again answers the first "
            "(200); different details under its number are refused (`property_bill_conflict`)."
        ),
        request=PropertyBillPostSerializer,
        responses={
            201: OpenApiResponse(PropertyBillSerializer, description="Recorded."),
            200: OpenApiResponse(PropertyBillSerializer, description="The same bill, posted before."),
            **error_responses("invalid", "parse_error", "not_property_business_unit", "not_found",
                              "property_bill_conflict", *AUTH_ERRORS,
                              invalid_fields={"amount_cny": ["Ensure this value is greater than or equal to 0.01."]}),
        },
        tags=["property"],
    )
    def post(self, request):
        data = PropertyBillPostSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = property_bill_post(
            business_unit=request.user.business_unit, bill_no=data.validated_data["bill_no"],
            unit=data.validated_data["unit"], period=data.validated_data["period"],
            amount_cny=data.validated_data["amount_cny"], payer_member_id=data.validated_data["payer_member"],
            payer_organization_code=data.validated_data["payer_organization"], partner_key=request.user.key,
        )
        return Response(PropertyBillSerializer(result.bill).data,
                        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class PropertyBillEarnSerializer(serializers.Serializer):
    transaction = serializers.IntegerField(allow_null=True, help_text=_("The earn posting; null when it earned nothing."))
    points = serializers.IntegerField(help_text=_("Points earned."))
    earned_by = serializers.ChoiceField(choices=["member", "organization"], help_text=_("Whose wallet earned."))
    amount_cny = CnyField(allow_null=True, help_text=_("The amount that earned: the cash part of the bill."))
    replayed = serializers.BooleanField()


BILL_NO = OpenApiParameter("bill_no", str, OpenApiParameter.PATH, description="The property bill's number.")


class PropertyBillEarnView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="property_bills_earn",
        summary="Earn the points of a paid property bill, once",
        description=(
            "A `bill` earn into the payer's wallet: the member's, or the organization's for a tenant company's bill. "
            "It counts the part not paid with points (unless the business unit's points part earns) and happens "
            "once per bill: a second call answers the first (200)."
        ),
        parameters=[BILL_NO],
        request=None,
        responses={
            201: OpenApiResponse(PropertyBillEarnSerializer, description="Earned."),
            200: OpenApiResponse(PropertyBillEarnSerializer, description="Earned before, or nothing to earn."),
            **error_responses("not_found", "payment_pending", "member_inactive", "idempotency_conflict", *AUTH_ERRORS),
        },
        tags=["property"],
    )
    def post(self, request, bill_no: str):
        result = property_bill_earn(business_unit=request.user.business_unit, bill_no=bill_no)
        posting = result.posting
        body = {
            "transaction": posting.pk if posting else None, "points": posting.points if posting else 0,
            "earned_by": "organization" if result.wallet.organization_id else "member",
            "amount_cny": posting.amount_cny if posting else None, "replayed": result.replayed,
        }
        created = posting is not None and not result.replayed
        return Response(PropertyBillEarnSerializer(body).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MemberPropertyBillsView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_property_bills",
        summary="The member's property bills and what points paid of them (latest 50)",
        responses={200: PropertyBillSerializer(many=True), **error_responses(*AUTH_ERRORS)},
        tags=["me"],
    )
    def get(self, request):
        bills = member_property_bills(member_id=request.user.member.pk)[:50]
        return Response(PropertyBillSerializer(bills, many=True).data)

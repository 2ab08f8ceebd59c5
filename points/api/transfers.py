"""Views of transfers between wallets, for members: an organization administrator's view of
the organization wallet and distributions to employees, and member-to-member transfers."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, IDEMPOTENCY_PARAMETER, REPLAYED_HEADER, error_responses
from members.permissions import IsMember
from points.api.serializers import BalanceSerializer, MemberIdField, PointsField, TransactionSerializer
from points.api.views import WRITE_ERRORS, idempotency
from points.organizations import organization_balance, organization_of_admin
from points.selectors import wallet_balance
from points.transfers import TransferResult, member_transfer, organization_distribute


class OrganizationBalanceSerializer(BalanceSerializer):
    """A wallet's points by state, without naming its holder (an organization's wallet has no member)."""

    member = None

    def to_representation(self, balance):
        data = super().to_representation({"member": None, **balance})
        del data["member"]
        return data


class OrganizationSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    balance = OrganizationBalanceSerializer(help_text="The organization wallet's points by state.")


class DistributionSerializer(serializers.Serializer):
    member = MemberIdField()  # the employee
    points = PointsField()
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class TransferSerializer(serializers.Serializer):
    recipient_phone = serializers.CharField(max_length=20, help_text="The phone number of the receiving member.")
    points = PointsField()
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class TransferResultSerializer(serializers.Serializer):
    transaction = TransactionSerializer(help_text="The sender's posting (kind transfer, points negative).")
    received_transaction = serializers.IntegerField(help_text="The id of the receiver's posting.")
    points = serializers.IntegerField(help_text="Points transferred.")
    balance = OrganizationBalanceSerializer(help_text="The sender's wallet after the transfer.")
    replayed = serializers.BooleanField()


def _transfer_response(result: TransferResult) -> Response:
    body = {
        "transaction": result.sent, "received_transaction": result.received.pk, "points": result.received.points,
        "balance": vars(wallet_balance(wallet=result.source)), "replayed": result.replayed,
    }
    return Response(
        TransferResultSerializer(body).data, status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED,
        headers={REPLAYED_HEADER: "true" if result.replayed else "false"},
    )


def _write_responses(*codes: str) -> dict:
    return {
        201: OpenApiResponse(TransferResultSerializer, description="Transferred."),
        200: OpenApiResponse(TransferResultSerializer, description="A replay: the original transfer, nothing moved."),
        **error_responses(*WRITE_ERRORS, "insufficient_points", "account_frozen", "member_inactive", *codes,
                          invalid_fields={"points": ["Ensure this value is greater than or equal to 1."]}),
    }


class MeOrganizationView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_organization",
        summary="The organization the signed-in member administers, with its wallet",
        responses={200: OrganizationSerializer, **error_responses("not_organization_admin", *AUTH_ERRORS)},
        tags=["organizations"],
    )
    def get(self, request):
        organization = organization_of_admin(member=request.user.member)
        balance = organization_balance(organization=organization)
        return Response(OrganizationSerializer(
            {"code": organization.code, "name": organization.name, "balance": vars(balance)}
        ).data)


class MeDistributionView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_organization_distribute",
        summary="Distribute points of the organization wallet to an employee",
        description=(
            "For an administrator of the organization. A transfer: the organization's available lots go to the "
            "employee with their expiry and issuer. Idempotent under the Idempotency-Key."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=DistributionSerializer,
        responses=_write_responses("not_found", "not_organization_admin", "not_an_employee"),
        examples=[OpenApiExample("bonus", value={"member": 42, "points": 500, "reason": "team award"},
                                 request_only=True)],
        tags=["organizations"],
    )
    def post(self, request):
        key = idempotency(request)
        data = DistributionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _transfer_response(organization_distribute(
            admin=request.user.member, member_id=data.validated_data["member"], points=data.validated_data["points"],
            reason=data.validated_data["reason"], idempotency=key,
        ))


class MeTransferView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_transfer",
        summary="Transfer points to another member",
        description=(
            "Only when the group offers transfers (`transfers_disabled` otherwise), within a daily limit per member "
            "(`transfer_limit_exceeded`). The sender's available lots go to the receiver with their expiry and "
            "issuer. Idempotent under the Idempotency-Key."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=TransferSerializer,
        responses=_write_responses("transfers_disabled", "transfer_limit_exceeded"),
        examples=[OpenApiExample("gift", value={"recipient_phone": "13800000002", "points": 200},
                                 request_only=True)],
        tags=["me"],
    )
    def post(self, request):
        key = idempotency(request)
        data = TransferSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _transfer_response(member_transfer(
            sender=request.user.member, recipient_phone=data.validated_data["recipient_phone"],
            points=data.validated_data["points"], reason=data.validated_data["reason"], idempotency=key,
        ))

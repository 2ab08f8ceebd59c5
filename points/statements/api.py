"""The member's statements: `GET /api/v1/me/statements/` (newest first, paginated) and
`GET /api/v1/me/statements/{period}/` (period YYYY-MM). Thin views: the signed-in member, one
selector call, the output serializer. Included by points.api.urls."""

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, error_responses
from members.permissions import IsMember
from config.errors import NotFound
from config.routers import reads_from_replica
from points.statements.models import Statement
from points.statements.periods import period_parse
from points.statements.selectors import member_statement, member_statements


@extend_schema_field({"type": "object", "additionalProperties": {"type": "integer", "format": "int64"}})
class PointsByKeyField(serializers.JSONField):
    """Points per key (event type, business unit code or purpose)."""


@extend_schema_field({
    "type": "object", "nullable": True,
    "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer", "format": "int64"}},
})
class PointsByUnitAndChannelField(serializers.JSONField):
    """Per business unit code, points by channel (mall_order, payment, spend)."""


class TierSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="The tier at the period end ('' below every tier).")
    name = serializers.CharField()
    basis = serializers.CharField(help_text="points or spend (CNY).")
    qualifying_value = serializers.JSONField(help_text="Whole points, or CNY as a decimal string.")
    next_code = serializers.CharField(allow_null=True)
    next_name = serializers.CharField(allow_null=True)
    remaining = serializers.JSONField(allow_null=True, help_text="Still needed for the next tier; null at the top.")


class StatementSummarySerializer(serializers.Serializer):
    period = serializers.CharField(help_text="The month, YYYY-MM, in the group's time zone.")
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField(help_text="The first instant after the period.")
    opening_balance = serializers.IntegerField()
    earned = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    expired = serializers.IntegerField()
    closing_balance = serializers.IntegerField()
    debt = serializers.IntegerField(source="closing_debt", help_text="Points owed at the period end.")
    created_at = serializers.DateTimeField(help_text="When the statement was generated.")

    class Meta:
        model = Statement


class StatementSerializer(StatementSummarySerializer):
    cancelled = serializers.IntegerField(help_text="Points given back by cancelled redemptions.")
    refunded = serializers.IntegerField(help_text="Points taken back by refunded purchases.")
    adjusted = serializers.IntegerField(help_text="Manual adjustments, signed.")
    transferred = serializers.IntegerField(
        help_text="Points received from (+) or transferred to (-) other wallets (an organization's distributions, "
                  "transfers between members)."
    )
    debt_repaid = serializers.IntegerField(help_text="Opening debt minus closing debt (negative: debt arose).")
    opening_debt = serializers.IntegerField()
    earned_by_source = PointsByKeyField(help_text="Earned points by event type (purchase, parking, ...).")
    earned_by_business_unit = PointsByKeyField(help_text="Earned points by business unit code.")
    redeemed_by_business_unit = PointsByKeyField(help_text="Redeemed points by business unit code.")
    redeemed_by_purpose = PointsByKeyField(help_text="Redeemed points by purpose (mall_order, pos_bill, spend).")
    redeemed_by_business_unit_and_channel = PointsByUnitAndChannelField(
        help_text="Per business unit code, redeemed points split into mall orders (mall_order), payments at a till or "
                  "for a bill (payment) and plain spends (spend); null on statements generated before the split."
    )
    expiring_30_days = serializers.IntegerField(help_text="Of the closing balance, points expiring within 30 days.")
    expiring_60_days = serializers.IntegerField(help_text="Of the closing balance, points expiring within 60 days.")
    tier = TierSerializer(allow_null=True, help_text="Tier and progress at the period end; null without a programme.")
    transactions = serializers.IntegerField(source="postings", help_text="Transactions booked in the period.")


PERIOD = OpenApiParameter("period", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                          description="The month, YYYY-MM, e.g. 2026-03.")
DETAIL_OUTPUT = StatementSerializer()


class MyStatementsApi(generics.ListAPIView):
    permission_classes = [IsMember]
    serializer_class = StatementSummarySerializer
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Statement.objects.none()
        return member_statements(member_id=self.request.user.member.pk)

    @extend_schema(
        operation_id="me_statements",
        summary="My monthly statements, newest first",
        description="One per month with activity, points or debt; generated on the 1st for the month before.",
        responses={200: StatementSummarySerializer(many=True),
                   **error_responses("invalid", "page_not_found", *AUTH_ERRORS,
                                     invalid_fields={"page": ["A page is a whole number from 1."]})},
        tags=["me"],
    )
    @reads_from_replica
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MyStatementApi(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_statement",
        summary="My statement of one month",
        parameters=[PERIOD],
        responses={200: StatementSerializer, **error_responses("invalid_period", "not_found", *AUTH_ERRORS)},
        tags=["me"],
    )
    @reads_from_replica
    def get(self, request, period: str):
        statement = member_statement(member_id=request.user.member.pk, period=period_parse(period))
        if statement is None:
            raise NotFound(f"no statement for {period}")
        return Response(DETAIL_OUTPUT.to_representation(statement))


urlpatterns = [
    path("me/statements/", MyStatementsApi.as_view(), name="me-statements"),
    path("me/statements/<str:period>/", MyStatementApi.as_view(), name="me-statement"),
]

"""Partner API of settlement: a BU's key reads its own closed statements."""

from datetime import date

import django_filters
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema
from rest_framework import generics

from config.api.openapi import AUTH_ERRORS, error_responses
from members.permissions import IsPartner
from settlement.api.serializers import StatementLineSerializer
from settlement.models import SettlementLine
from settlement.selectors import business_unit_statements

MONTH = RegexValidator(r"^\d{4}-(0[1-9]|1[0-2])$", "Give a month as YYYY-MM.")


class StatementFilter(django_filters.FilterSet):
    period = django_filters.CharFilter(method="by_period", validators=[MONTH], max_length=7,
                                       help_text="One month, YYYY-MM.")

    def by_period(self, queryset, name, value):
        year, month = value.split("-")
        return queryset.filter(run__period=date(int(year), int(month), 1))


class StatementListView(generics.ListAPIView):
    permission_classes = [IsPartner]
    serializer_class = StatementLineSerializer
    filterset_class = StatementFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SettlementLine.objects.none()
        return business_unit_statements(business_unit=self.request.user.business_unit)

    @extend_schema(
        operation_id="settlement_statements",
        summary="The key's business unit's lines of closed settlement runs, newest month first",
        description=(
            "Every line of a closed month in which the key's business unit owes (payer: issuance, redemption, "
            "breakage, clearing to another BU, reimbursements to merchants) or is owed (payee: clearing from "
            "another BU). Amounts are CNY with two decimals; draft months are not shown."
        ),
        responses={200: StatementLineSerializer(many=True),
                   **error_responses("invalid", "page_not_found", *AUTH_ERRORS, invalid_fields={"period": ["Give a month as YYYY-MM."]})},
        tags=["settlement"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

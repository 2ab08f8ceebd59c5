"""Views of the points API: balances and history (partners and members), earn, spend, reverse
and bulk earn (partners). Each write view checks shape, makes one service call and answers
with the posting, the points moved and the new balance: 201 when new, 200 on a replay."""

import logging

import django_filters
from django.db import InterfaceError, OperationalError
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.exceptions import field_messages
from config.api.openapi import AUTH_ERRORS, IDEMPOTENCY_PARAMETER, REPLAYED_HEADER, error_responses, idempotency_key
from members.permissions import IsMember, IsPartner, MaySpendWithoutPresence
from members.exceptions import MerchantNotPermitted
from members.models import BusinessUnit
from points.api.serializers import (
    BalanceSerializer,
    EarnBatchResponseSerializer,
    EarnBatchSerializer,
    EarnSerializer,
    PostingResultSerializer,
    ReverseSerializer,
    SpendSerializer,
    TransactionSerializer,
)
from points.batch import CREATED, ERROR, REPLAYED, points_earn_batch
from points.models import Posting, PostingKind, Wallet
from points.selectors import MemberPostingList, member_balance, member_postings, wallet_balance, wallet_exists
from points.earning import points_earn
from points.ledger import Idempotency, PostingResult
from points.policies import payment_earn_amount
from points.services import points_spend, posting_reverse

MEMBER_ID = OpenApiParameter("member_id", int, OpenApiParameter.PATH, description="The member's id.")
TRANSACTION_ID = OpenApiParameter("transaction_id", int, OpenApiParameter.PATH, description="The transaction's id.")
DATABASE_ERRORS = (OperationalError, InterfaceError)
logger = logging.getLogger(__name__)
WRITE_ERRORS = ("invalid", "parse_error", "idempotency_key_required", "idempotency_conflict", *AUTH_ERRORS)


def balance_data(wallet: Wallet) -> dict:
    return {"member": wallet.member_id, **vars(wallet_balance(wallet=wallet))}


# The read endpoints' output serializers, built once: a serializer copies and binds its fields
# when first used, which costs more than representing a balance or a page of postings, and
# representing data leaves them unchanged.
BALANCE_OUTPUT = BalanceSerializer()
TRANSACTIONS_OUTPUT = TransactionSerializer(many=True)
POSTING_RESULT_OUTPUT = PostingResultSerializer()


def member_balance_response(member_id: int) -> Response:
    balance = member_balance(member_id=member_id)
    if balance is None:
        raise Http404
    return Response(BALANCE_OUTPUT.to_representation({"member": member_id, **vars(balance)}))


def balance_after_commit(wallet: Wallet) -> dict | None:
    """The balance read after the write committed, or None when the database no longer answers:
    a posting that committed is acknowledged (201 or 200) whatever happens to this read, never
    answered with an error a client would retry as if nothing had been written."""
    try:
        return balance_data(wallet)
    except DATABASE_ERRORS:
        logger.warning("Balance of wallet %s unreadable after its write committed: answered without it", wallet.pk)
        return None


def posting_response(result: PostingResult) -> Response:
    """The posting, the points moved and the new balance: 201 when new, 200 on a replay, and 200
    with no transaction when an earn gave nothing (nothing was written). `balance` is null when
    the database failed between the commit and the balance's read."""
    body = {
        "transaction": result.posting,
        "points": result.posting.points if result.posting else 0,
        "balance": balance_after_commit(result.wallet),
        "replayed": result.replayed,
    }
    written = result.posting is not None and not result.replayed
    return Response(
        POSTING_RESULT_OUTPUT.to_representation(body),
        status=status.HTTP_201_CREATED if written else status.HTTP_200_OK,
        headers={REPLAYED_HEADER: "true" if result.replayed else "false"},
    )


def _item_error(error: dict) -> dict:
    """A bulk-earn item's error as the schema has it: its field messages flat lists of strings."""
    return {**error, "fields": field_messages(error["fields"])} if "fields" in error else error


def earn_arguments(request, serializer_class) -> dict:
    """The keyword arguments of an earn (`points_earn`, `earn_simulate`) from a partner's request:
    its body checked by `serializer_class` (an EarnInputSerializer) and the key's business unit.
    The one body of the earn, event and simulation endpoints."""
    data = serializer_class(data=request.data, context={"request": request})
    data.is_valid(raise_exception=True)
    return {**data.validated_data, "business_unit": request.user.business_unit}


def idempotency(request) -> Idempotency:
    return Idempotency(scope=request.user.idempotency_scope, key=idempotency_key(request))


def write_responses(*codes: str, invalid_fields: dict) -> dict:
    return {
        201: OpenApiResponse(PostingResultSerializer, description="Posted."),
        200: OpenApiResponse(
            PostingResultSerializer,
            description="A replay: the original result, nothing posted; or an event that earned nothing "
                        "(`transaction` null, `points` 0): nothing written.",
        ),
        **error_responses(*WRITE_ERRORS, *codes, invalid_fields=invalid_fields),
    }


# --- reads ---------------------------------------------------------------------------------


class PostingFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=PostingKind.choices)
    business_unit = django_filters.CharFilter(field_name="business_unit__code", help_text="Business unit code.")
    occurred_after = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", help_text="Inclusive lower bound (ISO 8601)."
    )
    occurred_before = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", help_text="Exclusive upper bound (ISO 8601)."
    )

    class Meta:
        model = Posting
        fields = ["kind", "business_unit", "occurred_after", "occurred_before"]


class MemberBalanceView(APIView):
    """Members are group-wide: any partner may read any member's balance."""

    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="members_balance",
        summary="A member's points by state, and what expires when",
        parameters=[MEMBER_ID],
        responses={200: BalanceSerializer, **error_responses("not_found", *AUTH_ERRORS)},
        tags=["members"],
    )
    def get(self, request, member_id: int):
        return member_balance_response(member_id)


# A member's postings, newest first. A page without filters, the usual call, is read in plain
# SQL (MemberPostingList); a page with filters from the queryset that django-filter filters.
# Either finds the wallet through the member in the page's own statement, so only an empty page
# asks whether the member exists (404 if not).
class HistoryView(generics.ListAPIView):
    serializer_class = TransactionSerializer
    filterset_class = PostingFilter

    def member_id(self) -> int:
        raise NotImplementedError

    def business_unit(self) -> BusinessUnit | None:
        """The business unit whose postings are shown; None for all."""
        return None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Posting.objects.none()
        return member_postings(member_id=self.member_id(), business_unit=self.business_unit())

    def filtered(self) -> bool:
        """Whether the request names a filter: any query parameter but the page and its size."""
        paging = {self.paginator.page_query_param, self.paginator.page_size_query_param}
        return not self.request.query_params.keys() <= paging

    def list(self, request, *args, **kwargs):
        if self.filtered():
            postings = self.filter_queryset(self.get_queryset())
        else:
            postings = MemberPostingList(member_id=self.member_id(), business_unit=self.business_unit())
        page = self.paginate_queryset(postings)
        if not page and not wallet_exists(member_id=self.member_id()):
            raise Http404
        return self.get_paginated_response(TRANSACTIONS_OUTPUT.to_representation(page))


class MemberTransactionsView(HistoryView):
    """A member's history as a partner sees it: only the postings of the key's business unit."""

    permission_classes = [IsPartner]

    def member_id(self) -> int:
        return self.kwargs["member_id"]

    def business_unit(self) -> BusinessUnit:
        return self.request.user.business_unit

    @extend_schema(
        operation_id="members_transactions",
        summary="A member's transactions at the key's business unit",
        parameters=[MEMBER_ID],
        responses={
            200: TransactionSerializer(many=True),
            **error_responses("invalid", "not_found", "page_not_found", *AUTH_ERRORS,
                              invalid_fields={"kind": ["Select a valid choice."]}),
        },
        tags=["members"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MeBalanceView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_balance",
        summary="The signed-in member's points",
        responses={200: BalanceSerializer, **error_responses(*AUTH_ERRORS)},
        tags=["me"],
    )
    def get(self, request):
        return member_balance_response(request.user.member.pk)


class MeTransactionsView(HistoryView):
    permission_classes = [IsMember]

    def member_id(self) -> int:
        return self.request.user.member.pk

    @extend_schema(
        operation_id="me_transactions",
        summary="The signed-in member's transactions, at every business unit",
        responses={
            200: TransactionSerializer(many=True),
            **error_responses("invalid", "page_not_found", *AUTH_ERRORS, invalid_fields={"kind": ["Select a valid choice."]}),
        },
        tags=["me"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- writes --------------------------------------------------------------------------------


class EarnView(APIView):
    """Credit points for a purchase; EventView, the same for any event, shares its post."""

    permission_classes = [IsPartner]
    input_serializer = EarnSerializer

    @extend_schema(
        operation_id="transactions_earn",
        summary="Credit points for a purchase",
        description=(
            "Points = amount x the business unit's earn rules, rounded down. The member is named by `member` (the id), "
            "`card_no` or `phone`: exactly one. A key scoped to a merchant books to that merchant; naming another is "
            "refused (`merchant_not_permitted`). The answer's `Idempotent-Replayed` header tells a retry's replay "
            "(`true`, 200) from a new posting (`false`, 201). A bill paid partly with points names its payment "
            "(`payment`): `amount` is the whole bill and the earn counts the cash part only, unless the business "
            "unit's points part earns."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=EarnSerializer,
        responses=write_responses(
            "invalid_occurred_at", "merchant_not_permitted", "not_found", "member_inactive", "risk_blocked",
            "payment_member_mismatch", "payment_not_captured", "bill_amount_mismatch",
            invalid_fields={"amount": ["Ensure that there are no more than 2 decimal places."]},
        ),
        examples=[
            OpenApiExample(
                "purchase",
                value={"member": 42, "amount": "128.50", "merchant": "shop1", "receipt_no": "R-20260301-0001"},
                request_only=True,
            ),
            OpenApiExample(
                "purchase by card number",
                value={"card_no": "8800123456789012", "amount": "58.00", "merchant": "shop1", "receipt_no": "R-0002"},
                request_only=True,
            ),
            OpenApiExample(
                "posted",
                value={
                    "transaction": {
                        "id": 9001, "kind": "earn", "points": 128, "business_unit": "mall", "merchant": "shop1",
                        "amount": "128.50", "event_type": "purchase", "receipt_no": "R-20260301-0001", "reason": "",
                        "occurred_at": "2026-03-01T10:15:00+08:00", "created_at": "2026-03-01T10:15:02+08:00",
                        "explanation": [{"rule": "base_rate", "name": "base rate", "effect": "rate", "points": 128,
                                         "rate": "1.0000"}],
                        "reverses": None,
                    },
                    "points": 128,
                    "balance": {"member": 42, "total": 628, "available": 628, "pending": 0, "frozen": 0,
                                "expired_unswept": 0, "debt": 0,
                                "expiring": [{"expires_at": "2027-03-01T23:59:59.999999+08:00", "points": 628}]},
                    "replayed": False,
                },
                response_only=True,
                status_codes=["201", "200"],
            ),
        ],
        tags=["transactions"],
    )
    def post(self, request):
        key = idempotency(request)
        arguments = earn_arguments(request, self.input_serializer)
        if (payment_id := arguments.pop("payment", None)) is not None:
            arguments["amount_cny"] = payment_earn_amount(
                payment_id=payment_id, member_id=arguments["member_id"], business_unit=arguments["business_unit"],
                bill_amount=arguments["amount_cny"],
            )
        result = points_earn(**arguments, idempotency=key)
        return posting_response(result)


class SpendView(APIView):
    permission_classes = [IsPartner, MaySpendWithoutPresence]

    @extend_schema(
        operation_id="transactions_spend",
        summary="Spend available points",
        description=(
            "Debits available points (not pending, not expired), earliest-expiring first. Only for keys allowed to "
            "spend without the member present (`presence_required` otherwise: a till uses /payments/ with the "
            "member's pay code)."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=SpendSerializer,
        responses=write_responses(
            "not_found", "insufficient_points", "account_frozen", "risk_blocked", "presence_required",
            invalid_fields={"points": ["Ensure this value is greater than or equal to 1."]},
        ),
        examples=[OpenApiExample("parking", value={"member": 42, "points": 500, "reason": "parking 2h"},
                                 request_only=True)],
        tags=["transactions"],
    )
    def post(self, request):
        key = idempotency(request)
        data = SpendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = points_spend(
            member_id=data.validated_data["member"],
            points=data.validated_data["points"],
            reason=data.validated_data["reason"],
            business_unit=request.user.business_unit,
            merchant=request.user.merchant,
            idempotency=key,
        )
        return posting_response(result)


class ReverseView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="transactions_reverse",
        summary="Reverse an earn (refund) or a spend (cancel), in full or in part",
        description=(
            "A refund takes the points back, and whatever the member already spent becomes debt that their next "
            "earnings repay. A transaction of another business unit is `not_found`; a key scoped to a merchant "
            "reverses only that merchant's transactions."
        ),
        parameters=[TRANSACTION_ID, IDEMPOTENCY_PARAMETER],
        request=ReverseSerializer,
        responses=write_responses(
            "not_found", "merchant_not_permitted", "not_reversible", "reversal_exceeds_original",
            invalid_fields={"points": ["A valid integer is required."]},
        ),
        examples=[OpenApiExample("partial refund", value={"points": 40, "reason": "returned one item"},
                                 request_only=True)],
        tags=["transactions"],
    )
    def post(self, request, transaction_id: int):
        key = idempotency(request)
        data = ReverseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        partner = request.user
        if partner.merchant is not None:
            booked_to = Posting.objects.filter(pk=transaction_id, business_unit=partner.business_unit).values_list(
                "merchant_id", flat=True
            )[:1]
            if booked_to and booked_to[0] != partner.merchant.pk:
                raise MerchantNotPermitted()
        result = posting_reverse(
            posting_id=transaction_id,
            points=data.validated_data["points"],
            reason=data.validated_data["reason"],
            business_unit=partner.business_unit,
            idempotency=key,
        )
        return posting_response(result)


class EarnBatchView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="transactions_earn_batch",
        summary="Credit points for up to 1,000 purchases",
        description=(
            "Each item is an earn of its own, all-or-nothing with its own `idempotency_key` (the same namespace as "
            "the Idempotency-Key header), and is reported in `results` in the items' order with status `created`, "
            "`replayed` or `error` (the error body of a single earn). The response is 200 whatever the items' fate."
        ),
        request=EarnBatchSerializer,
        responses={
            200: EarnBatchResponseSerializer,
            **error_responses("invalid", "parse_error", *AUTH_ERRORS,
                              invalid_fields={"items": ["Ensure this field has no more than 1000 elements."]}),
        },
        examples=[OpenApiExample(
            "two purchases",
            value={"items": [
                {"idempotency_key": "pos7-000123", "member": 42, "amount": "58.00", "merchant": "shop1",
                 "receipt_no": "R-000123"},
                {"idempotency_key": "pos7-000124", "member": 43, "amount": "12.90", "merchant": "shop1",
                 "receipt_no": "R-000124"},
            ]},
            request_only=True,
        )],
        tags=["transactions"],
    )
    def post(self, request):
        data = EarnBatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        outcomes = points_earn_batch(
            items=data.validated_data["items"],
            business_unit=request.user.business_unit,
            key_merchant=request.user.merchant,
            scope=request.user.idempotency_scope,
        )
        results = [
            {"idempotency_key": outcome.idempotency_key, "status": outcome.status,
             **({"transaction": outcome.posting} if outcome.posting else {}),
             **({"error": _item_error(outcome.error)} if outcome.error else {})}
            for outcome in outcomes
        ]
        body = {
            "results": results,
            "created": sum(outcome.status == CREATED for outcome in outcomes),
            "replayed": sum(outcome.status == REPLAYED for outcome in outcomes),
            "failed": sum(outcome.status == ERROR for outcome in outcomes),
        }
        return Response(EarnBatchResponseSerializer(body).data)

"""Serializers of the points API: inputs check shape only, outputs describe the answers."""

import re
from decimal import Decimal

from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.exceptions import field_messages
from config.errors import NotFound
from members.fields import CardNoField, PhoneField
from members.selectors import member_id_for, member_ids_by_identifier, merchant_for_partner
from points.batch import EarnBatchItem, RejectedItem
from points.models import EventType, Posting, PostingKind

BIGINT_MAX = 2**63 - 1
MAX_BATCH_ITEMS = 1000


class MemberIdField(serializers.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=BIGINT_MAX, help_text=_("The member's id."), **kwargs)


class PointsField(serializers.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=BIGINT_MAX, **kwargs)


MAX_AMOUNT = Decimal("99999999.99")


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^[0-9]{1,8}(\.[0-9]{1,2})?$",
                      "example": "128.50"})
class AmountField(serializers.DecimalField):
    """A purchase amount: a positive decimal string of at most 2 decimals, up to 99,999,999.99 CNY
    (beyond any one purchase; the ledger's running sums, such as a tier's qualifying value, stay
    within their columns)."""

    def __init__(self, **kwargs):
        super().__init__(
            max_digits=10, decimal_places=2, min_value=Decimal("0.01"), max_value=MAX_AMOUNT, coerce_to_string=True,
            help_text=_("Purchase amount in CNY as a decimal string with at most 2 decimals, e.g. \"128.50\"."),
            **kwargs,
        )


# --- outputs -------------------------------------------------------------------------------


class ExplanationLineSerializer(serializers.Serializer):
    """One line of an earn's explanation: what one rule (or the base rate, or the tier) gave.
    The lines of an event, a purchase and a simulation are the same; a line has the details of
    its effect (`rate`, `multiplier`, `spend_over`) and `capped_from` when a cap trimmed it."""

    rule = serializers.CharField(help_text=_("The rule's code; `base_rate` for the BU's rate, `tier:<code>` for the tier."))
    name = serializers.CharField(required=False)
    effect = serializers.CharField(required=False)
    points = serializers.IntegerField()
    rate = serializers.CharField(required=False, help_text=_("Points per CNY, for a rate."))
    multiplier = serializers.CharField(required=False)
    spend_over = serializers.CharField(required=False)
    capped_from = serializers.IntegerField(required=False, help_text=_("What the rule would have given without its caps."))


def posting_label(name: str) -> str:
    """A posting field's verbose name, as the field's label (the schema shows it as the title)."""
    return capfirst(Posting._meta.get_field(name).verbose_name)


class TransactionSerializer(serializers.Serializer):
    # Declared fields rather than a ModelSerializer, which would inspect the model anew for every
    # response; Meta.model only tells the schema generator the types of the related fields.
    id = serializers.BigIntegerField(read_only=True)
    kind = serializers.ChoiceField(choices=PostingKind.choices, read_only=True, label=posting_label("kind"))
    points = serializers.IntegerField(read_only=True, help_text=_("Change of the member's points: + credited, - debited."))
    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    merchant = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    amount = serializers.DecimalField(
        source="amount_cny", max_digits=14, decimal_places=2, read_only=True, allow_null=True,
        help_text=_("Purchase amount in CNY (earns only)."),
    )
    event_type = serializers.ChoiceField(
        choices=EventType.choices, allow_blank=True, read_only=True, label=posting_label("event_type"),
        help_text=_("What an earn was for (purchase, check_in, parking...); blank for spends, reversals, adjustments "
                    "and expiry."),
    )
    receipt_no = serializers.CharField(
        read_only=True, label=posting_label("receipt_no"),
        help_text=_("The partner's reference: a purchase's receipt number, an event's `reference`."),
    )
    reason = serializers.CharField(read_only=True, label=posting_label("reason"))
    occurred_at = serializers.DateTimeField(read_only=True, label=posting_label("occurred_at"))
    created_at = serializers.DateTimeField(read_only=True, label=posting_label("created_at"))
    explanation = serializers.SerializerMethodField(help_text=_("How the points were computed, step by step."))
    reverses = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True, label=posting_label("reverses"))

    class Meta:
        model = Posting

    @extend_schema_field(ExplanationLineSerializer(many=True))
    def get_explanation(self, posting):
        return posting.explanation

    def to_representation(self, posting):
        """What DRF's field-by-field loop gives (a test holds them equal), at a quarter of its
        cost per posting: a history page holds up to 200. Decimals and dates are the fields' own."""
        fields = self.fields
        unit, merchant = posting.business_unit, posting.merchant
        return {
            "id": posting.pk,
            "kind": posting.kind,
            "points": posting.points,
            "business_unit": None if unit is None else unit.code,
            "merchant": None if merchant is None else merchant.code,
            "amount": None if posting.amount_cny is None else fields["amount"].to_representation(posting.amount_cny),
            "event_type": posting.event_type,
            "receipt_no": posting.receipt_no,
            "reason": posting.reason,
            "occurred_at": fields["occurred_at"].to_representation(posting.occurred_at),
            "created_at": fields["created_at"].to_representation(posting.created_at),
            "explanation": self.get_explanation(posting),
            "reverses": posting.reverses_id,
        }


class ExpiringSerializer(serializers.Serializer):
    expires_at = serializers.DateTimeField()
    points = serializers.IntegerField()


class BalanceSerializer(serializers.Serializer):
    member = serializers.IntegerField(help_text=_("The member's id."))
    total = serializers.IntegerField(help_text=_("available + pending + frozen + held + expired_unswept"))
    available = serializers.IntegerField(help_text=_("Spendable now."))
    pending = serializers.IntegerField(help_text=_("Earned, not yet available (pending period)."))
    frozen = serializers.IntegerField(help_text=_("Held because the account is frozen."))
    held = serializers.IntegerField(
        help_text=_("Reserved by holds not yet captured, voided or expired (and, for a member in debt, the points "
                    "of expired holds that will repay it).")
    )
    expired_unswept = serializers.IntegerField(help_text=_("Past expiry, awaiting the expiry job."))
    debt = serializers.IntegerField(help_text=_("Owed after refunds of spent points; repaid by the next earnings."))
    expiring = ExpiringSerializer(many=True, help_text=_("Points still valid, by expiry date (earliest first)."))

    def to_representation(self, balance):
        """What DRF's field-by-field loop gives (a test holds them equal), at a fraction of its
        cost: the balance is the API's most frequent answer. Dates are the field's own."""
        expires_at = self.fields["expiring"].child.fields["expires_at"]
        return {
            "member": balance["member"],
            "total": balance["total"],
            "available": balance["available"],
            "pending": balance["pending"],
            "frozen": balance["frozen"],
            "held": balance["held"],
            "expired_unswept": balance["expired_unswept"],
            "debt": balance["debt"],
            "expiring": [
                {"expires_at": expires_at.to_representation(row["expires_at"]), "points": row["points"]}
                for row in balance["expiring"]
            ],
        }


class PostingResultSerializer(serializers.Serializer):
    transaction = TransactionSerializer(
        allow_null=True, help_text=_("The posting written; null when the event earned nothing and nothing was written."),
    )
    points = serializers.IntegerField(help_text=_("Points moved for the member: + credited, - debited."))
    balance = BalanceSerializer(
        allow_null=True,
        help_text=_("The balance after the write; null only when the database failed right after the write "
                    "committed: the write stands, read the balance again."),
    )
    replayed = serializers.BooleanField(help_text=_("True when this answers a retry of an earlier request."))


# --- inputs --------------------------------------------------------------------------------


MERCHANT_CODE = re.compile(r"[-a-zA-Z0-9_]{0,32}")


@extend_schema_field({"type": "string", "maxLength": 32, "pattern": "^[-a-zA-Z0-9_]*$"})
class MerchantCodeField(serializers.Field):
    """A merchant code within the key's business unit; blank or left out names no merchant.

    A plain field, not DRF's RegexField: the schema is then one string pattern admitting the
    blank (drf-spectacular gives a blank-admitting pattern field a oneOf that '' matches twice)."""

    default_error_messages = {"invalid": _("A merchant code: at most 32 letters, digits, - or _.")}

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _(
            "Merchant code within the key's business unit. Blank or left out: no merchant (the key's own merchant for "
            "a key scoped to one); a scoped key naming another merchant is refused (`merchant_not_permitted`)."
        ))
        super().__init__(required=False, default="", **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not MERCHANT_CODE.fullmatch(data):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


MEMBER_NAMES = ("member", "card_no", "phone")


class MemberNamedSerializer(serializers.Serializer):
    """The member, named by exactly one of `member` (the id), `card_no` or `phone`."""

    # A POS knows a card or a phone, a mini-program the id: each names the member on its own.

    member = MemberIdField(required=False)
    card_no = CardNoField(required=False, help_text=_("Instead of `member`: the member's card number."))
    phone = PhoneField(required=False, help_text=_("Instead of `member`: the member's phone number."))

    def validate(self, attrs):
        if sum(name in attrs for name in MEMBER_NAMES) != 1:
            raise serializers.ValidationError({"member": [_("Name the member by exactly one of member, card_no, phone.")]})
        return attrs


def named_member(attrs: dict) -> tuple[str, int | str]:
    """The (name, value) naming the member in checked data, e.g. ("card_no", "8800...")."""
    return next((name, attrs[name]) for name in MEMBER_NAMES if name in attrs)


def member_not_found(name: str) -> NotFound:
    """The 404 of a card number or phone no member has."""
    messages = {"card_no": _("No member has this card number."), "phone": _("No member has this phone number.")}
    return NotFound(messages[name])


class EarnInputSerializer(MemberNamedSerializer):
    """The member (by `member`, `card_no` or `phone`: exactly one), the merchant and when it happened.
    A card number or phone no member has is 404 `not_found`."""

    # What every earning request shares (a purchase, an event, a simulation). Its validated data
    # are the keyword arguments of points_earn and earn_simulate but the business unit: the
    # merchant resolved in the partner key's scope, the member's id found from a card or phone.

    merchant = MerchantCodeField()
    occurred_at = serializers.DateTimeField(required=False, default=None, help_text=_("When it happened; now by default."))

    def validate(self, attrs):
        attrs = super().validate(attrs)
        principal = self.context["request"].user
        merchant = merchant_for_partner(
            business_unit=principal.business_unit, key_merchant=principal.merchant, code=attrs["merchant"]
        )
        name, value = named_member(attrs)
        member_id = value if name == "member" else member_id_for(**{name: value})
        if member_id is None:
            raise member_not_found(name)
        arguments = {key: value for key, value in attrs.items() if key not in MEMBER_NAMES}
        return {**arguments, "member_id": member_id, "merchant": merchant}


class EarnSerializer(EarnInputSerializer):
    amount = AmountField(source="amount_cny")
    receipt_no = serializers.CharField(max_length=64)
    payment = serializers.IntegerField(
        min_value=1, max_value=BIGINT_MAX, required=False,
        help_text=_("The payment with points of this bill (its id): `amount` is then the whole bill, and the earn "
                    "counts the part paid in cash unless the business unit's points part earns."),
    )


class SpendSerializer(serializers.Serializer):
    member = MemberIdField()
    points = PointsField()
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class ReverseSerializer(serializers.Serializer):
    points = PointsField(required=False, default=None, help_text=_("Points to reverse; all that is left by default."))
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class EarnBatchItemSerializer(MemberNamedSerializer):
    idempotency_key = serializers.CharField(max_length=128, help_text=_("Unique per partner key, like the header."))
    amount = AmountField()
    merchant = MerchantCodeField()
    receipt_no = serializers.CharField(max_length=64)
    occurred_at = serializers.DateTimeField(required=False, default=None)


@extend_schema_field(EarnBatchItemSerializer(many=True))
class EarnBatchItemsField(serializers.ListField):
    """The items, each checked on its own later, so that one malformed item fails only itself."""

    child = serializers.JSONField()


class EarnBatchSerializer(serializers.Serializer):
    items = EarnBatchItemsField(min_length=1, max_length=MAX_BATCH_ITEMS)

    def validate_items(self, raw_items) -> list[EarnBatchItem | RejectedItem]:
        """Check each item's shape on its own: a malformed item, or one naming by card or phone
        a member nobody is, becomes a RejectedItem that the batch reports as that item's error,
        instead of failing the whole request. Cards and phones are looked up in one statement."""
        checker = EarnBatchItemSerializer()  # one bound serializer for all items: binding costs more than checking
        checked: list[dict | RejectedItem] = []
        for raw in raw_items:
            try:
                checked.append(checker.run_validation(raw))
            except serializers.ValidationError as exc:
                key = raw.get("idempotency_key") if isinstance(raw, dict) else None
                checked.append(RejectedItem(
                    idempotency_key=key if isinstance(key, str) else None,
                    error={"code": "invalid", "detail": _("Invalid input."),
                           "fields": field_messages(serializers.as_serializer_error(exc))},
                ))
        named = [named_member(data) for data in checked if isinstance(data, dict)]
        found = member_ids_by_identifier(card_nos={value for name, value in named if name == "card_no"},
                                         phones={value for name, value in named if name == "phone"})
        items = []
        for data in checked:
            if isinstance(data, RejectedItem):
                items.append(data)
                continue
            name, value = named_member(data)
            member_id = value if name == "member" else found.get((name, value))
            if member_id is None:
                items.append(RejectedItem(idempotency_key=data["idempotency_key"], error=member_not_found(name).as_dict()))
                continue
            items.append(EarnBatchItem(
                idempotency_key=data["idempotency_key"], member_id=member_id, amount_cny=data["amount"],
                receipt_no=data["receipt_no"], merchant_code=data["merchant"], occurred_at=data["occurred_at"],
            ))
        return items


class BatchItemErrorSerializer(serializers.Serializer):
    """An item's error: the body a single earn would have answered."""

    code = serializers.CharField(help_text=_("The code a single earn would have answered."))
    detail = serializers.CharField()

    def get_fields(self):
        # "fields" would shadow Serializer.fields as a class attribute, so it is added here.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), required=False,
            help_text=_("Messages per item field (`invalid`), as in a single earn's 400."),
        )
        return fields


class EarnBatchResultSerializer(serializers.Serializer):
    idempotency_key = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["created", "replayed", "error"])
    transaction = TransactionSerializer(required=False)
    error = BatchItemErrorSerializer(required=False)


class EarnBatchResponseSerializer(serializers.Serializer):
    results = EarnBatchResultSerializer(many=True)
    created = serializers.IntegerField()
    replayed = serializers.IntegerField()
    failed = serializers.IntegerField()

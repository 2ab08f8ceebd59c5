"""Reads of payments with points: a BU's terms, the limits of a bill, pay codes, payments and
property bills as the API shows them.

Conversion and rounding: a point worth `v` CNY pays exactly `v`; an amount is only ever a whole
number of fen, so points are used in multiples of the *unit*: the least common multiple of the
BU's minimum unit and the smallest count of points worth a whole number of fen (1 at 0.01 CNY,
2 at 0.005 CNY, 10 at 0.003 CNY). Limits are rounded down to the unit: rounding never takes a
point for value the bill does not get. The arithmetic is in integers (fen and millionths of a
CNY), never floats.
"""

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from config.errors import NotFound
from mall.exceptions_payments import (
    BillAmountMismatch,
    BillPayerMismatch,
    InvalidPaymentInput,
    PaymentMemberMismatch,
    PaymentNotCaptured,
    PointsNotAccepted,
)
from mall.models_payments import (
    CAPTURED_STATUSES,
    BusinessUnitPaymentSettings,
    PayCode,
    Payment,
    PaymentStatus,
    PropertyBill,
)
from members.models import BusinessUnit, Member
from points.models import HoldStatus
from points.organizations import organization_balance
from points.selectors import member_balance

MICRO = 10**6  # point values have 6 decimal places
FEN_PER_CNY = 100


@dataclass(frozen=True)
class PaymentTerms:
    """A BU's terms as frozen on a payment at authorisation."""

    point_value_cny: Decimal
    unit: int
    max_share_percent: int
    cap_points: int | None
    points_part_earns: bool
    hold_seconds: int | None


@dataclass(frozen=True)
class Limit:
    name: str  # max_share, cap_per_payment, available_points
    points: int
    amount_cny: Decimal


@dataclass(frozen=True)
class Quote:
    member_id: int
    organization: str | None  # the code of the organization whose wallet pays; None: the member's own
    bill_amount: Decimal
    terms: PaymentTerms
    max_points: int
    max_amount_cny: Decimal
    binding_limit: str
    limits: list[Limit]


def fen_step(point_value_cny: Decimal) -> int:
    """The fewest points worth a whole number of fen at this point value."""
    micro = int(point_value_cny * MICRO)
    per_fen = MICRO // FEN_PER_CNY  # 10**4 millionths in a fen
    return per_fen // math.gcd(micro, per_fen)


def points_value_cny(points: int, point_value_cny: Decimal) -> Decimal:
    """The exact value of `points` in CNY; the caller uses multiples of the unit, so it is a
    whole number of fen."""
    micro = points * int(point_value_cny * MICRO)
    assert micro % (MICRO // FEN_PER_CNY) == 0, "points not a multiple of the fen step"
    return Decimal(micro // (MICRO // FEN_PER_CNY)).scaleb(-2)  # fen to CNY, two places


def payment_terms(*, business_unit: BusinessUnit) -> PaymentTerms:
    """The BU's payment terms now; PointsNotAccepted when points do not pay there."""
    config = BusinessUnitPaymentSettings.objects.filter(business_unit=business_unit).first()
    value = business_unit.point_value_cny
    if config is None or not config.accepts_points or not value or value <= 0:
        raise PointsNotAccepted()
    step = fen_step(value)
    return PaymentTerms(
        point_value_cny=value, unit=config.min_unit * step // math.gcd(config.min_unit, step),
        max_share_percent=config.max_share_percent, cap_points=config.cap_points,
        points_part_earns=config.points_part_earns, hold_seconds=config.hold_seconds,
    )


def _floor(points: int, unit: int) -> int:
    return max(points, 0) // unit * unit


def bill_limits(*, terms: PaymentTerms, bill_amount: Decimal, available: int | None) -> list[Limit]:
    """The limits on the points of one payment for this bill, each rounded down to the unit:
    the share of the bill, the cap per payment, and (when given) the member's available points."""
    bill_fen = int(bill_amount * FEN_PER_CNY)
    value_micro = int(terms.point_value_cny * MICRO)
    # share of the bill in millionths of a CNY: bill_fen * 10**4 * percent / 100
    by_share = bill_fen * terms.max_share_percent * 100 // value_micro
    raw = [("max_share", by_share)]
    if terms.cap_points is not None:
        raw.append(("cap_per_payment", terms.cap_points))
    if available is not None:
        raw.append(("available_points", available))
    limits = []
    for name, points in raw:
        floored = _floor(points, terms.unit)
        limits.append(Limit(name=name, points=floored, amount_cny=points_value_cny(floored, terms.point_value_cny)))
    return limits


def payment_quote(*, business_unit: BusinessUnit, member_id: int, bill_no: str, bill_amount: Decimal | None) -> Quote:
    """The most points usable now for this bill and their value, with every limit; reserves
    nothing. The points available are those of the wallet that would pay: the member's, or for
    a property bill of an organization the member administers, the organization's (a bill the
    member may not pay is bill_payer_mismatch, as its authorisation would be)."""
    bill = property_bill_get(business_unit=business_unit, bill_no=bill_no)
    bill_amount = bill_amount_of(bill, bill_amount)
    terms = payment_terms(business_unit=business_unit)
    organization = None
    if bill_paying_organization_id(bill, member_id) is not None:
        organization = bill.payer_organization
        available = organization_balance(organization=organization).available
    else:
        balance = member_balance(member_id=member_id)
        available = balance.available if balance is not None else 0
    limits = bill_limits(terms=terms, bill_amount=bill_amount, available=available)
    binding = min(limits, key=lambda limit: limit.points)
    return Quote(
        member_id=member_id, organization=organization.code if organization else None, bill_amount=bill_amount,
        terms=terms, max_points=binding.points, max_amount_cny=binding.amount_cny, binding_limit=binding.name,
        limits=limits,
    )


def bill_amount_of(bill: PropertyBill | None, bill_amount: Decimal | None) -> Decimal:
    """The amount a payment of the bill is for: as given, which a property bill's must equal
    (bill_amount_mismatch), or the property bill's own when none is given."""
    if bill is None:
        if bill_amount is None:
            raise InvalidPaymentInput("This field is required.", field="bill_amount")
        return bill_amount
    if bill_amount is not None and bill_amount != bill.amount_cny:
        raise BillAmountMismatch(bill_amount=str(bill.amount_cny))
    return bill.amount_cny


def bill_paying_organization_id(bill: PropertyBill | None, member_id: int) -> int | None:
    """Whose wallet pays the bill when `member_id` is present: the member's own (None), or, for
    a property bill of an organization, the organization's when the member is one of its
    administrators. Anyone else is refused (bill_payer_mismatch)."""
    if bill is None or bill.payer_member_id == member_id:
        return None
    if bill.payer_organization_id is None or not Member.objects.filter(
        pk=member_id, organization_id=bill.payer_organization_id, is_organization_admin=True
    ).exists():
        raise BillPayerMismatch()
    return bill.payer_organization_id


# --- pay codes and presence


def pay_code_hash(code: str) -> str:
    """The keyed hash stored for a pay code: 18 digits are too few to store a plain hash of."""
    return hmac.new(settings.SECRET_KEY.encode(), f"pay-code:{code}".encode(), hashlib.sha256).hexdigest()


def pay_code_member_id(*, code: str, now: datetime | None = None) -> int | None:
    """The member of a pay code still usable now (unused, unexpired), or None."""
    now = now or timezone.now()
    return (
        PayCode.objects.filter(code_hash=pay_code_hash(code), used_at__isnull=True, expires_at__gt=now)
        .values_list("member_id", flat=True).first()
    )


# --- payments


def payment_status_now(payment: Payment, now: datetime | None = None) -> str:
    """The payment's status as a reader sees it: an authorised payment whose hold expired (or
    is past its expiry, swept or not) reads as expired; one whose hold was released by the
    holds API reads as voided."""
    if payment.status != PaymentStatus.AUTHORIZED:
        return payment.status
    hold = payment.hold
    now = now or timezone.now()
    if hold.status == HoldStatus.EXPIRED or (hold.status == HoldStatus.HELD and hold.expires_at <= now):
        return PaymentStatus.EXPIRED
    if hold.status == HoldStatus.VOIDED:
        return PaymentStatus.VOIDED
    return payment.status


def payment_earnable_cny(payment: Payment) -> Decimal:
    """What the bill's purchase earn should count: the whole bill when the BU's points part earns
    (frozen on the payment), else the cash part only: the bill less the points captured.

    A refund of points gives back points, not cash: the cash paid is unchanged, and so is its
    earn, before or after the refund. Cash given back is the refund of the purchase itself: a
    reversal of its earn (POST /api/v1/transactions/{id}/reverse/), which leaves the payment be."""
    if payment.points_part_earns:
        return payment.bill_amount
    return payment.bill_amount - payment.captured_cny


def payment_earn_amount(*, payment_id: int, member_id: int, business_unit: BusinessUnit, bill_amount: Decimal) -> Decimal:
    """What the purchase earn of a bill naming its payment counts (points.policies registry):
    `payment_earnable_cny`, for a captured payment of this member at this BU whose bill is
    `bill_amount`; refused otherwise (not_found, payment_member_mismatch, payment_not_captured,
    bill_amount_mismatch)."""
    payment = Payment.objects.filter(pk=payment_id, business_unit=business_unit).select_related("hold").first()
    if payment is None:
        raise NotFound(f"payment {payment_id} not found")
    if payment.member_id != member_id:
        raise PaymentMemberMismatch()
    if payment.status not in CAPTURED_STATUSES:
        raise PaymentNotCaptured(payment=payment.pk, status=payment_status_now(payment))
    if bill_amount != payment.bill_amount:
        raise BillAmountMismatch(bill_amount=str(payment.bill_amount))
    return payment_earnable_cny(payment)


def payments_with_detail() -> QuerySet[Payment]:
    return Payment.objects.select_related("business_unit", "merchant", "hold", "property_bill").prefetch_related("events")


def payment_for_business_unit(*, payment_id: int, business_unit: BusinessUnit) -> Payment | None:
    return payments_with_detail().filter(pk=payment_id, business_unit=business_unit).first()


def member_payments(*, member_id: int) -> QuerySet[Payment]:
    return payments_with_detail().filter(member_id=member_id).order_by("-created_at", "-id")


# --- property bills


def property_bill_get(*, business_unit: BusinessUnit, bill_no: str) -> PropertyBill | None:
    return PropertyBill.objects.filter(business_unit=business_unit, bill_no=bill_no).first()


def property_bill_points_paid(bill: PropertyBill) -> tuple[int, Decimal]:
    """Points, and their CNY, that paid the bill: captured less refunded, over its payments."""
    points, cny = 0, Decimal("0.00")
    for payment in bill.payments.all():
        points += payment.captured_points - payment.refunded_points
        cny += payment.captured_cny - payment.refunded_cny
    return points, cny


def property_bill_cash_cny(bill: PropertyBill) -> Decimal:
    """The part of the bill not paid with points: the bill less the points captured over its
    payments. As for a till's bill (payment_earnable_cny), a refund of points leaves it be."""
    return bill.amount_cny - sum((payment.captured_cny for payment in bill.payments.all()), Decimal("0.00"))


def member_property_bills(*, member_id: int) -> QuerySet[PropertyBill]:
    return (
        PropertyBill.objects.filter(payer_member_id=member_id).select_related("business_unit")
        .prefetch_related("payments").order_by("-created_at", "-id")
    )

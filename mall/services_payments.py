"""Writes of payments with points: pay codes, authorise, capture, void, refund; property bills.

Every move of a payment is ONE durable transaction, in this lock order: the member's wallet
(points.ledger.wallet_lock / hold_lock's wallet), then the payment row (SELECT ... FOR UPDATE);
then the hold moves through the ledger's `_locked` functions (hold_place_locked,
hold_capture_locked, hold_void_locked; a refund through points.services.reverse_locked), the
payment's status is written with a conditional UPDATE from the status read under the lock, and
a PaymentEvent is appended. Capture, void and the holds sweep racing on one payment serialise
on the wallet lock: exactly one of them moves the hold, and the payment follows it.

Expiry follows the hold: the sweep (points.tasks.release_expired_holds) releases the hold
without knowing the payment, which then reads as expired (selectors.payment_status_now); the
next move that touches it (a capture, a void, a new authorisation of its bill) writes the
payment's `expired` move, commits it, and answers `payment_expired`.

Idempotency: an authorisation is unique per Idempotency-Key (per partner key) and per bill_no
(one live payment per bill at the BU): the same request under either answers the original
payment (200, replayed) and holds nothing; a different request is refused
(`idempotency_conflict`, `bill_already_paid`). A refused authorisation (not enough points, a
limit) writes nothing at all, so the pay code it named stays usable until it expires and a
retry under the same key is judged afresh. Captures and refunds carry their own key, stored on
their event: a retry answers the payment as it stands. The ledger rows carry system keys
derived from the payment (`hold-capture:<hold>`, `payment-refund:<payment>:<n>`).

Refunds give the points back to exactly the lots the capture took (the ledger's cancel). Points
whose lot is past its expiry by then come back as a new lot of the same issuer, valid
POINTS_REGRANT_DAYS (30) days: the refund event records how many (`points_to_expired_lots`) so
that the till and the console can see it.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import IdempotencyConflict, NotFound
from mall.exceptions_payments import (
    BillAlreadyPaid,
    CaptureExceedsAuthorization,
    InvalidPaymentInput,
    InvalidPointsUnit,
    NotPropertyBusinessUnit,
    PayCodeInvalid,
    PaymentExpired,
    PaymentLimitExceeded,
    PaymentNotCaptured,
    PaymentPending,
    PaymentResolved,
    PresenceRequired,
    PropertyBillConflict,
    RefundExceedsCapture,
)
from mall.models_payments import (
    BILL_HOLDING_STATUSES,
    PAYMENT_MOVES,
    PayCode,
    Payment,
    PaymentEvent,
    PaymentPresence,
    PaymentStatus,
    PropertyBill,
)
from mall.selectors_payments import (
    MICRO,
    bill_amount_of,
    bill_limits,
    bill_paying_organization_id,
    pay_code_hash,
    pay_code_member_id,
    payment_status_now,
    payment_terms,
    points_value_cny,
    property_bill_cash_cny,
    property_bill_get,
)
from members.models import BusinessUnit, BusinessUnitKind, Member, Merchant, Organization, PartnerKey
from points.ledger import (
    SYSTEM_SCOPE,
    Idempotency,
    PostingResult,
    hold_capture_locked,
    hold_place_locked,
    hold_void_locked,
    organization_wallet_lock,
    organization_wallet_open,
    request_fingerprint,
    wallet_lock,
    wallets_lock,
)
from points.earning import points_earn
from points.models import EventType, Hold, HoldStatus, Posting, Wallet
from points.organizations import organization_earn
from points.selectors import posting_regranted_points
from points.services import reverse_locked

PAY_CODE_TTL_SECONDS = 60
PAY_CODE_PREFIX = "81"  # 2 + 16 random digits: 18 in all
PAY_CODE_RANDOM_DIGITS = 16
HOLD_PURPOSE = "payment"
PAYMENT_CONSTRAINTS = ("payment_idempotency_key_unique", "payment_one_live_per_bill")
EVENT_KEY_CONSTRAINT = "payment_event_idempotency_key_unique"
REFUND_STATUSES = [PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED]


@dataclass(frozen=True)
class IssuedPayCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class PaymentResult:
    payment: Payment
    wallet: Wallet
    replayed: bool = False
    event: PaymentEvent | None = None  # the move this call made (or, replayed, made earlier)


# --- pay codes


def pay_code_issue(*, member: Member) -> IssuedPayCode:
    """A new one-time pay code for the member, valid PAY_CODE_TTL_SECONDS; its keyed hash is
    stored, the code itself only returned. Earlier codes stay valid until their own expiry."""
    for _attempt in range(5):
        code = PAY_CODE_PREFIX + f"{secrets.randbelow(10**PAY_CODE_RANDOM_DIGITS):0{PAY_CODE_RANDOM_DIGITS}d}"
        expires_at = timezone.now() + timedelta(seconds=PAY_CODE_TTL_SECONDS)
        try:
            with transaction.atomic(durable=True):
                PayCode.objects.create(member=member, code_hash=pay_code_hash(code), expires_at=expires_at)
        except IntegrityError:
            continue  # the same 16 random digits drawn twice: draw again
        return IssuedPayCode(code=code, expires_at=expires_at)
    raise RuntimeError("could not draw a unique pay code")


def _pay_code_consume_locked(*, code: str, member_id: int, now: datetime) -> PayCode:
    """Use the code: one conditional UPDATE, so of two tills presenting it exactly one wins."""
    code_hash = pay_code_hash(code)
    used = PayCode.objects.filter(
        code_hash=code_hash, member_id=member_id, used_at__isnull=True, expires_at__gt=now,
    ).update(used_at=now)
    if used != 1:
        raise PayCodeInvalid()
    return PayCode.objects.get(code_hash=code_hash)


# --- authorise


def _points_for(*, terms, points: int | None, amount_cny: Decimal | None) -> int:
    """The points of the request: given, or the exact count worth `amount_cny`; a multiple of the unit."""
    if points is None:
        micro = int(amount_cny * MICRO)
        value_micro = int(terms.point_value_cny * MICRO)
        if micro % value_micro:
            raise InvalidPointsUnit(unit=terms.unit, point_value_cny=str(terms.point_value_cny))
        points = micro // value_micro
    if points <= 0 or points % terms.unit:
        raise InvalidPointsUnit(unit=terms.unit, points=points)
    return points


def _payment_replay(scope: str, key: str, fingerprint: str) -> Payment | None:
    payment = Payment.objects.filter(idempotency_scope=scope, idempotency_key=key).first()
    if payment is not None and payment.request_hash != fingerprint:
        raise IdempotencyConflict()
    return payment


def _same_bill_request(payment: Payment, *, member_id: int, merchant: Merchant | None, bill_amount: Decimal,
                       points: int) -> bool:
    return (payment.member_id == member_id and payment.merchant_id == (merchant.pk if merchant else None)
            and payment.bill_amount == bill_amount and payment.points == points)


def payment_authorize(
    *, business_unit: BusinessUnit, merchant: Merchant | None, partner_key: PartnerKey | None, idempotency: Idempotency,
    bill_no: str, bill_amount: Decimal | None = None, pay_code: str = "", member_id: int | None = None,
    points: int | None = None, amount_cny: Decimal | None = None,
) -> PaymentResult:
    """Authorise a payment: hold the points (given, or worth `amount_cny`) of the member present
    by `pay_code` (or named by `member_id`, for a key that may spend without presence) for the
    bill, within the BU's terms, which are frozen on the payment. See the module docstring.
    `partner_key` is the calling till; None for the group's own systems (the demo seed, a
    console action), which are not partners and need no presence rule."""
    if bool(pay_code) == (member_id is not None):
        raise InvalidPaymentInput("Give pay_code or member, not both.", field="non_field_errors")
    if (points is None) == (amount_cny is None):
        raise InvalidPaymentInput("Give points or amount_cny.", field="non_field_errors")
    if member_id is not None and partner_key is not None and not partner_key.may_spend_without_presence:
        raise PresenceRequired()
    bill = property_bill_get(business_unit=business_unit, bill_no=bill_no)
    bill_amount = bill_amount_of(bill, bill_amount)
    terms = payment_terms(business_unit=business_unit)
    points = _points_for(terms=terms, points=points, amount_cny=amount_cny)
    for limit in bill_limits(terms=terms, bill_amount=bill_amount, available=None):
        if points > limit.points:
            raise PaymentLimitExceeded(limit=limit.name, max_points=limit.points, max_amount_cny=str(limit.amount_cny))
    fingerprint = request_fingerprint(
        "payment", bu=business_unit.pk, merchant=merchant.pk if merchant else None, bill_no=bill_no,
        bill_amount=str(bill_amount), points=points, member=member_id,
        pay_code=pay_code_hash(pay_code) if pay_code else None,
    )
    if replay := _payment_replay(idempotency.scope, idempotency.key, fingerprint):
        return PaymentResult(payment=replay, wallet=replay.hold.wallet, replayed=True)
    if pay_code:
        member_id = pay_code_member_id(code=pay_code)
        if member_id is None:
            raise PayCodeInvalid()
    organization_id = _paying_organization(bill, member_id)
    same = dict(member_id=member_id, merchant=merchant, bill_amount=bill_amount, points=points)
    live = Payment.objects.filter(business_unit=business_unit, bill_no=bill_no, status__in=BILL_HOLDING_STATUSES).first()
    if live is not None and payment_status_now(live) != live.status:
        payment_settle(payment_id=live.pk)  # its authorisation lapsed: the bill may be paid again
    elif live is not None:
        if _same_bill_request(live, **same):
            return PaymentResult(payment=live, wallet=live.hold.wallet, replayed=True)
        raise BillAlreadyPaid(payment=live.pk)

    def authorise() -> PaymentResult:
        with transaction.atomic(durable=True):
            wallet = (organization_wallet_lock(organization_id=organization_id) if organization_id
                      else wallet_lock(member_id=member_id))
            # Under the wallet lock: a racing request of the same member has committed or not begun.
            if replay := _payment_replay(idempotency.scope, idempotency.key, fingerprint):
                return PaymentResult(payment=replay, wallet=wallet, replayed=True)
            now = timezone.now()
            code = _pay_code_consume_locked(code=pay_code, member_id=member_id, now=now) if pay_code else None
            hold = hold_place_locked(
                wallet=wallet, points=points, business_unit=business_unit, merchant=merchant, purpose=HOLD_PURPOSE,
                reference=bill_no[:64], fingerprint=fingerprint,
                expires_in=timedelta(seconds=terms.hold_seconds) if terms.hold_seconds else None,
            )
            payment = Payment.objects.create(
                business_unit=business_unit, merchant=merchant, member_id=member_id, hold=hold, bill_no=bill_no,
                bill_amount=bill_amount, property_bill=bill, status=PaymentStatus.AUTHORIZED,
                presence=PaymentPresence.PAY_CODE if code else PaymentPresence.MEMBER_ID, pay_code=code,
                point_value_cny=terms.point_value_cny, unit=terms.unit, max_share_percent=terms.max_share_percent,
                cap_points=terms.cap_points, points_part_earns=terms.points_part_earns, points=points,
                amount_cny=points_value_cny(points, terms.point_value_cny), expires_at=hold.expires_at,
                idempotency_scope=idempotency.scope, idempotency_key=idempotency.key, request_hash=fingerprint,
                partner_key=partner_key,
            )
            event = PaymentEvent.objects.create(
                payment=payment, from_status="", to_status=PaymentStatus.AUTHORIZED, points=points,
                amount_cny=payment.amount_cny, partner_key=partner_key,
            )
            return PaymentResult(payment=payment, wallet=wallet, event=event)

    try:
        return authorise()
    except IntegrityError as exc:
        if not any(name in str(exc) for name in PAYMENT_CONSTRAINTS):
            raise
    # A concurrent request (of another wallet) won the key or the bill: answer it, or refuse.
    if replay := _payment_replay(idempotency.scope, idempotency.key, fingerprint):
        return PaymentResult(payment=replay, wallet=replay.hold.wallet, replayed=True)
    live = Payment.objects.filter(business_unit=business_unit, bill_no=bill_no, status__in=BILL_HOLDING_STATUSES).first()
    if live is not None and _same_bill_request(live, **same):
        return PaymentResult(payment=live, wallet=live.hold.wallet, replayed=True)
    raise BillAlreadyPaid(payment=live.pk if live else None)


def _paying_organization(bill: PropertyBill | None, member_id: int) -> int | None:
    """Whose wallet pays (selectors_payments.bill_paying_organization_id), the organization's
    wallet opened if this is its first use."""
    organization_id = bill_paying_organization_id(bill, member_id)
    if organization_id is not None:
        organization_wallet_open(bill.payer_organization)
    return organization_id


# --- the moves of an authorised payment


def _lock(payment_id: int, business_unit: BusinessUnit | None) -> tuple[Payment, Hold, Wallet]:
    """Lock the payment's wallet, then the payment row; read its hold under both."""
    found = Payment.objects.filter(pk=payment_id)
    if business_unit is not None:
        found = found.filter(business_unit=business_unit)
    wallet_id = found.values_list("hold__wallet_id", flat=True).first()
    if wallet_id is None:
        raise NotFound(f"payment {payment_id} not found")
    wallet = wallets_lock(wallet_ids=[wallet_id])[0]
    payment = Payment.objects.select_for_update(of=("self",)).select_related("business_unit", "capture_posting").get(
        pk=payment_id
    )
    hold = Hold.objects.select_related("business_unit", "merchant").get(pk=payment.hold_id)
    payment.hold = hold
    return payment, hold, wallet


def _move(payment: Payment, to_status: str, *, partner_key=None, actor=None, reason: str = "", points: int = 0,
          posting: Posting | None = None, idempotency: Idempotency | None = None, fingerprint: str = "",
          points_to_expired_lots: int = 0, **fields) -> PaymentEvent:
    """The payment's move from the status read under the lock: a conditional write, and its event."""
    assert to_status in PAYMENT_MOVES.get(payment.status, ()), (payment.status, to_status)
    moved = Payment.objects.filter(pk=payment.pk, status=payment.status, refunded_points=payment.refunded_points).update(
        status=to_status, updated_at=timezone.now(), **fields
    )
    assert moved == 1, "the caller holds the wallet and payment locks and saw the payment in this state"
    event = PaymentEvent.objects.create(
        payment=payment, from_status=payment.status, to_status=to_status, points=points,
        amount_cny=points_value_cny(points, payment.point_value_cny), posting=posting,
        points_to_expired_lots=points_to_expired_lots,
        idempotency_scope=idempotency.scope if idempotency else "", idempotency_key=idempotency.key if idempotency else "",
        request_hash=fingerprint, reason=reason[:200], partner_key=partner_key, actor=actor,
    )
    payment.status = to_status
    for name, value in fields.items():
        setattr(payment, name, value)
    return event


def _lapse_locked(payment: Payment, hold: Hold, wallet: Wallet, *, partner_key=None, actor=None) -> str | None:
    """When an authorised payment's hold is no longer live (expired, swept or not; released by
    the holds API), write the payment's move that follows it. Returns the status it moved to."""
    if payment.status != PaymentStatus.AUTHORIZED:
        return None
    now = timezone.now()
    if hold.status == HoldStatus.HELD and hold.expires_at > now:
        return None
    if hold.status == HoldStatus.HELD:
        hold_void_locked(hold=hold, wallet=wallet, reason="payment authorisation expired")  # moves it to expired
    to_status = {HoldStatus.EXPIRED: PaymentStatus.EXPIRED, HoldStatus.VOIDED: PaymentStatus.VOIDED}.get(hold.status)
    if to_status is None:
        return None  # captured outside payments: the moves below refuse it
    _move(payment, to_status, partner_key=partner_key, actor=actor, reason=f"the hold {hold.status}")
    return to_status


def _event_replay(idempotency: Idempotency | None, fingerprint: str) -> PaymentEvent | None:
    if idempotency is None or not idempotency.key:
        return None
    event = PaymentEvent.objects.filter(idempotency_scope=idempotency.scope, idempotency_key=idempotency.key).first()
    if event is not None and event.request_hash != fingerprint:
        raise IdempotencyConflict()
    return event


def _replayed(event: PaymentEvent, payment_id: int) -> PaymentResult:
    if event.payment_id != payment_id:
        raise IdempotencyConflict()
    payment = Payment.objects.select_related("hold__wallet").get(pk=payment_id)
    return PaymentResult(payment=payment, wallet=payment.hold.wallet, replayed=True, event=event)


def _checked_unit(payment: Payment, points: int | None) -> None:
    if points is not None and (points <= 0 or points % payment.unit):
        raise InvalidPointsUnit(unit=payment.unit, points=points)


def payment_capture(
    *, payment_id: int, business_unit: BusinessUnit | None, idempotency: Idempotency, points: int | None = None,
    reason: str = "", partner_key: PartnerKey | None = None, actor=None,
) -> PaymentResult:
    """Capture all of the authorised points, or `points` of them (a multiple of the payment's
    unit; the rest is released): the hold's spend posting and the payment's `captured` move in
    one transaction. Refusals: payment_expired (written as expired first), payment_resolved,
    capture_exceeds_authorization, invalid_points_unit, account_frozen."""
    fingerprint = request_fingerprint("payment_capture", payment=payment_id, points=points, reason=reason)
    if event := _event_replay(idempotency, fingerprint):
        return _replayed(event, payment_id)
    refusal = None
    with transaction.atomic(durable=True):
        payment, hold, wallet = _lock(payment_id, business_unit)
        if event := _event_replay(idempotency, fingerprint):
            return _replayed(event, payment_id)
        _checked_unit(payment, points)
        lapsed = _lapse_locked(payment, hold, wallet, partner_key=partner_key, actor=actor)
        if lapsed == PaymentStatus.EXPIRED:
            refusal = PaymentExpired(payment=payment.pk)
        elif payment.status == PaymentStatus.EXPIRED:
            raise PaymentExpired(payment=payment.pk)
        elif payment.status != PaymentStatus.AUTHORIZED:
            raise PaymentResolved(payment=payment.pk, status=payment.status)
        else:
            amount = payment.points if points is None else points
            if amount > payment.points:
                raise CaptureExceedsAuthorization(authorized=payment.points, requested=amount)
            posting = hold_capture_locked(
                hold=hold, wallet=wallet, points=amount, fingerprint=fingerprint, actor=actor,
                reason=reason or f"payment {payment.bill_no}",
            )
            event = _move(
                payment, PaymentStatus.CAPTURED, partner_key=partner_key, actor=actor, reason=reason, points=amount,
                posting=posting, idempotency=idempotency, fingerprint=fingerprint, captured_points=amount,
                captured_cny=points_value_cny(amount, payment.point_value_cny), capture_posting=posting,
            )
            return PaymentResult(payment=payment, wallet=wallet, event=event)
    raise refusal


def payment_void(
    *, payment_id: int, business_unit: BusinessUnit | None, reason: str = "", partner_key: PartnerKey | None = None,
    actor=None,
) -> PaymentResult:
    """Release an authorised payment's points. Voiding a voided payment answers it again
    (replayed); one whose authorisation lapsed is written as expired and refused
    (payment_expired); a captured one is refused (payment_resolved: refund it instead)."""
    refusal = None
    with transaction.atomic(durable=True):
        payment, hold, wallet = _lock(payment_id, business_unit)
        if payment.status == PaymentStatus.VOIDED:
            return PaymentResult(payment=payment, wallet=wallet, replayed=True)
        lapsed = _lapse_locked(payment, hold, wallet, partner_key=partner_key, actor=actor)
        if lapsed == PaymentStatus.EXPIRED:
            refusal = PaymentExpired(payment=payment.pk)
        elif lapsed == PaymentStatus.VOIDED:
            return PaymentResult(payment=payment, wallet=wallet, replayed=True)
        elif payment.status != PaymentStatus.AUTHORIZED:
            raise PaymentExpired(payment=payment.pk) if payment.status == PaymentStatus.EXPIRED else PaymentResolved(
                payment=payment.pk, status=payment.status)
        else:
            hold_void_locked(hold=hold, wallet=wallet, reason=reason or "payment voided", actor=actor)
            event = _move(payment, PaymentStatus.VOIDED, partner_key=partner_key, actor=actor, reason=reason,
                          points=payment.points)
            return PaymentResult(payment=payment, wallet=wallet, event=event)
    raise refusal


def payment_refund(
    *, payment_id: int, business_unit: BusinessUnit | None, idempotency: Idempotency, points: int | None = None,
    reason: str = "", partner_key: PartnerKey | None = None, actor=None,
) -> PaymentResult:
    """Give back all that is left of the captured points, or `points` of them (a multiple of the
    unit): a cancel of the capture posting (back to exactly the lots it took) and the payment's
    move to partially_refunded or refunded, in one transaction. Several partial refunds add up
    to at most the capture (refund_exceeds_capture)."""
    fingerprint = request_fingerprint("payment_refund", payment=payment_id, points=points, reason=reason)
    if event := _event_replay(idempotency, fingerprint):
        return _replayed(event, payment_id)
    with transaction.atomic(durable=True):
        payment, _hold, wallet = _lock(payment_id, business_unit)
        if event := _event_replay(idempotency, fingerprint):
            return _replayed(event, payment_id)
        _checked_unit(payment, points)
        if payment.status not in (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED):
            if payment.status == PaymentStatus.REFUNDED:
                raise RefundExceedsCapture(refundable=0, requested=points)
            raise PaymentNotCaptured(payment=payment.pk, status=payment_status_now(payment))
        refundable = payment.refundable_points
        amount = refundable if points is None else points
        if amount > refundable:
            raise RefundExceedsCapture(refundable=refundable, requested=amount)
        sequence = payment.events.filter(to_status__in=REFUND_STATUSES).count() + 1
        posting = reverse_locked(
            original=payment.capture_posting, wallet=wallet, points=amount, reason=reason or f"refund of payment {payment.pk}",
            idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"payment-refund:{payment.pk}:{sequence}"),
            fingerprint=fingerprint, actor=actor,
        )
        refunded = payment.refunded_points + amount
        event = _move(
            payment, PaymentStatus.REFUNDED if refunded == payment.captured_points else PaymentStatus.PARTIALLY_REFUNDED,
            partner_key=partner_key, actor=actor, reason=reason, points=amount, posting=posting,
            idempotency=idempotency, fingerprint=fingerprint,
            points_to_expired_lots=_given_to_expired_lots(posting), refunded_points=refunded,
            refunded_cny=points_value_cny(refunded, payment.point_value_cny),
        )
        return PaymentResult(payment=payment, wallet=wallet, event=event)


def _given_to_expired_lots(posting: Posting) -> int:
    """Points of the refund whose lots had expired: the ledger credited them as a new lot."""
    return posting_regranted_points(posting_id=posting.pk)


def payment_settle(*, payment_id: int) -> Payment:
    """Write the move of an authorised payment whose authorisation lapsed (its hold expired or
    was released); nothing when it is live or resolved."""
    with transaction.atomic(durable=True):
        payment, hold, wallet = _lock(payment_id, None)
        _lapse_locked(payment, hold, wallet)
        return payment


def payments_settle_lapsed(*, now: datetime | None = None, batch_size: int = 500) -> tuple[int, bool]:
    """Write the expired (or voided) move of up to `batch_size` authorised payments whose hold
    is no longer live, each in its own short transaction; returns how many moved and whether
    more may be due (the batch was full). Reads do not need it (they show such a payment as
    expired); it keeps the stored status, the console's lists and exports in step. A moved
    payment is no longer authorised, so a rerun or an overlapping run moves nothing twice."""
    now = now or timezone.now()
    due = (
        Payment.objects.filter(status=PaymentStatus.AUTHORIZED, hold__expires_at__lte=now)
        | Payment.objects.filter(status=PaymentStatus.AUTHORIZED).exclude(hold__status=HoldStatus.HELD)
    ).order_by("id").values_list("id", flat=True)[:batch_size]
    due = list(due)
    moved = 0
    for payment_id in due:
        if payment_settle(payment_id=payment_id).status != PaymentStatus.AUTHORIZED:
            moved += 1
    return moved, len(due) == batch_size


# --- property bills


@dataclass(frozen=True)
class PropertyBillResult:
    bill: PropertyBill
    created: bool


def property_bill_post(
    *, business_unit: BusinessUnit, bill_no: str, unit: str, period: str, amount_cny: Decimal,
    payer_member_id: int | None = None, payer_organization_code: str = "", partner_key: PartnerKey | None = None,
) -> PropertyBillResult:
    """Record a bill of a property-management BU, idempotent on bill_no: the same bill again
    answers the first (created False), different details under its number are refused."""
    if business_unit.kind != BusinessUnitKind.PROPERTY:
        raise NotPropertyBusinessUnit()
    if bool(payer_member_id) == bool(payer_organization_code):
        raise InvalidPaymentInput("Give payer_member or payer_organization.", field="non_field_errors")
    fingerprint = request_fingerprint(
        "property_bill", bu=business_unit.pk, bill_no=bill_no, unit=unit, period=period, amount=str(amount_cny),
        member=payer_member_id, organization=payer_organization_code or None,
    )

    def existing() -> PropertyBillResult | None:
        bill = property_bill_get(business_unit=business_unit, bill_no=bill_no)
        if bill is None:
            return None
        if bill.request_hash != fingerprint:
            raise PropertyBillConflict(bill=bill.pk)
        return PropertyBillResult(bill=bill, created=False)

    if found := existing():
        return found
    member = organization = None
    if payer_member_id:
        member = Member.objects.filter(pk=payer_member_id).first()
        if member is None:
            raise NotFound(f"member {payer_member_id} not found")
    else:
        organization = Organization.objects.filter(code=payer_organization_code).first()
        if organization is None:
            raise NotFound(f"organization {payer_organization_code} not found")
    try:
        with transaction.atomic(durable=True):
            bill = PropertyBill.objects.create(
                business_unit=business_unit, bill_no=bill_no, unit=unit, period=period, amount_cny=amount_cny,
                payer_member=member, payer_organization=organization, request_hash=fingerprint,
                partner_key=partner_key,
            )
    except IntegrityError as exc:
        if "property_bill_no_unique_in_bu" not in str(exc) or (found := existing()) is None:
            raise
        return found
    return PropertyBillResult(bill=bill, created=True)


def property_bill_earn(*, business_unit: BusinessUnit, bill_no: str) -> PostingResult:
    """The `bill` earn of a paid property bill, once per bill (system key
    `property-bill-earn:<bill>`), into its payer's wallet: the member's, or the organization's.
    It counts the cash part only (the bill less the points captured: a refund of points leaves it
    be) unless the BU's points part earns. A bill with an authorisation still open is
    refused (payment_pending): capture or void it first."""
    bill = property_bill_get(business_unit=business_unit, bill_no=bill_no)
    if bill is None:
        raise NotFound(f"property bill {bill_no} not found")
    live = [payment for payment in bill.payments.all() if payment_status_now(payment) == PaymentStatus.AUTHORIZED]
    if live:
        raise PaymentPending(payment=live[0].pk)
    amount = bill.amount_cny if payment_terms(business_unit=business_unit).points_part_earns else property_bill_cash_cny(bill)
    earn = dict(business_unit=business_unit, amount_cny=amount, event_type=EventType.BILL, receipt_no=bill_no[:64],
                reason=f"property bill {bill.period} {bill.unit}"[:200],
                idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"property-bill-earn:{bill.pk}"))
    if bill.payer_organization_id:
        return organization_earn(organization=bill.payer_organization, **earn)
    return points_earn(member_id=bill.payer_member_id, max_backdate=None, **earn)

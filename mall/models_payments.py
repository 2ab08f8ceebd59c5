"""Points as cash: a member pays part of a bill at a business unit with points.

Design overview
---------------
* A **payment** is built on a ledger hold (points.ledger): authorising places the hold,
  capturing spends it (the hold's spend posting), voiding releases it, and a refund reverses the
  capture posting (points.services.reverse_locked), giving the points back to exactly the lots
  they came from. No row of the ledger is written here: the ledger core writes them all.
* The conversion and the limits in force at authorisation are **frozen** on the payment: the
  value of a point, the unit (a multiple of the BU's minimum unit in which every amount is a
  whole number of fen), the maximum share of the bill, the cap per payment, whether the points
  part earns. `amount_cny = points * point_value_cny` exactly, for the authorised, captured and
  refunded amounts alike (database constraints): no rounding ever takes a point for value not
  delivered.
* The **state machine** is PAYMENT_MOVES: authorized -> captured | voided | expired; captured
  -> partially_refunded | refunded; partially_refunded -> partially_refunded | refunded. Nothing
  moves back. Every move locks the member's wallet first, then the payment row, checks the
  status, writes it with a conditional UPDATE and appends a PaymentEvent, in the same
  transaction as the hold's own move. An authorised payment whose hold expired (the sweep
  points.tasks.release_expired_holds released it) reads as expired, and is written as expired
  by the next move that touches it.
* A **pay code** proves the member is at the till: 18 digits, valid PAY_CODE_TTL seconds,
  single use, only its keyed hash stored. A partner key authorises by member id only when it
  may spend without presence (`PartnerKey.may_spend_without_presence`, members).
* A **property bill** is a bill of the property-management BU (bill_no, unit, period, amount,
  payer), paid in part with points through the same payment flow.
"""

from decimal import Decimal

import pgtrigger
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import ExpressionWrapper, F, Q
from django.utils.translation import gettext_lazy as _

from members.models import BusinessUnit, Member, Merchant, Organization, PartnerKey
from points.models import Hold, Posting

__all__ = [
    "BusinessUnitPaymentSettings",
    "PayCode",
    "PropertyBill",
    "PaymentStatus",
    "PaymentPresence",
    "PAYMENT_MOVES",
    "Payment",
    "PaymentEvent",
]

CNY = {"max_digits": 14, "decimal_places": 2}


def _value(points_field: str) -> ExpressionWrapper:
    """The CNY value of a points field at the payment's frozen point value."""
    return ExpressionWrapper(F(points_field) * F("point_value_cny"), output_field=models.DecimalField(**CNY))


class BusinessUnitPaymentSettings(models.Model):
    """Whether and how a business unit takes points as cash. A BU without settings takes none."""

    business_unit = models.OneToOneField(
        BusinessUnit, on_delete=models.PROTECT, related_name="payment_settings", verbose_name=_("business unit")
    )
    accepts_points = models.BooleanField(_("points pay here"), default=False)
    min_unit = models.PositiveIntegerField(
        _("minimum unit (points)"), default=1, validators=[MinValueValidator(1)],
        help_text=_("Points are used in multiples of this, e.g. 100."),
    )
    max_share_percent = models.PositiveSmallIntegerField(
        _("maximum share of a bill (%)"), default=100, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("At most this share of a bill is paid with points, e.g. 50."),
    )
    cap_points = models.PositiveBigIntegerField(
        _("cap per payment (points)"), null=True, blank=True, help_text=_("Empty: no cap."),
    )
    points_part_earns = models.BooleanField(
        _("the points-paid part earns points"), default=False,
        help_text=_("Off: a bill's purchase earn counts only the part paid in cash."),
    )
    hold_seconds = models.PositiveIntegerField(
        _("authorisation lifetime (seconds)"), null=True, blank=True, validators=[MinValueValidator(30)],
        help_text=_("How long an authorised payment waits for its capture; empty: the ledger's default hold lifetime."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("payment settings of a business unit")
        verbose_name_plural = _("payment settings of business units")
        ordering = ["business_unit__code"]
        constraints = [
            models.CheckConstraint(condition=Q(min_unit__gte=1), name="bu_payment_min_unit_positive"),
            models.CheckConstraint(
                condition=Q(max_share_percent__gte=1) & Q(max_share_percent__lte=100), name="bu_payment_share_percent"
            ),
            models.CheckConstraint(condition=Q(cap_points__isnull=True) | Q(cap_points__gte=1), name="bu_payment_cap_positive"),
        ]

    def __str__(self):
        return str(self.business_unit)


class PayCode(models.Model):
    """A member's one-time payment code. Only a keyed hash (HMAC-SHA256) of the code is stored.
    Every code is valid until its own expiry (a newer code does not cancel it: a till may scan
    the code shown a moment before the app refreshed it) and is used at most once."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="pay_codes", verbose_name=_("member"))
    code_hash = models.CharField(_("code hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("pay code")
        verbose_name_plural = _("pay codes")
        ordering = ["-id"]
        indexes = [models.Index(fields=["member", "-created_at"], name="pay_code_by_member")]

    def __str__(self):
        return f"{self.member} · {self.created_at:%Y-%m-%d %H:%M:%S}"


class PropertyBill(models.Model):
    """A bill of a property-management BU, posted by its property system; paid in part with
    points through a payment that names its bill_no."""

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="property_bills", verbose_name=_("business unit")
    )
    bill_no = models.CharField(_("bill number"), max_length=64)
    unit = models.CharField(_("unit or room"), max_length=64)
    period = models.CharField(_("period"), max_length=32, help_text=_("e.g. 2026-05"))
    amount_cny = models.DecimalField(_("amount (CNY)"), **CNY)
    payer_member = models.ForeignKey(
        Member, on_delete=models.PROTECT, null=True, blank=True, related_name="property_bills", verbose_name=_("payer (member)")
    )
    payer_organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="property_bills",
        verbose_name=_("payer (organization)"),
    )
    request_hash = models.CharField(_("request fingerprint"), max_length=64, editable=False)
    partner_key = models.ForeignKey(
        PartnerKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("posted by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("property bill")
        verbose_name_plural = _("property bills")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["business_unit", "bill_no"], name="property_bill_no_unique_in_bu"),
            models.CheckConstraint(condition=Q(amount_cny__gt=0), name="property_bill_amount_positive"),
            models.CheckConstraint(
                condition=(Q(payer_member__isnull=False) & Q(payer_organization__isnull=True))
                | (Q(payer_member__isnull=True) & Q(payer_organization__isnull=False)),
                name="property_bill_one_payer",
            ),
        ]

    def __str__(self):
        return f"{self.bill_no} · {self.unit} · {self.period}"


class PaymentStatus(models.TextChoices):
    AUTHORIZED = "authorized", _("Authorised")
    CAPTURED = "captured", _("Captured")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")
    VOIDED = "voided", _("Voided")
    EXPIRED = "expired", _("Expired")


# The moves a payment may make, written once; nothing moves back. A further partial refund
# keeps a partially refunded payment where it is, with more refunded.
PAYMENT_MOVES = {
    PaymentStatus.AUTHORIZED: {PaymentStatus.CAPTURED, PaymentStatus.VOIDED, PaymentStatus.EXPIRED},
    PaymentStatus.CAPTURED: {PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED},
    PaymentStatus.PARTIALLY_REFUNDED: {PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED},
}
# A bill number has at most one payment in these states at its business unit; a voided or
# expired payment leaves the bill to be paid again.
BILL_HOLDING_STATUSES = [
    PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED,
]
CAPTURED_STATUSES = [PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED]


class PaymentPresence(models.TextChoices):
    PAY_CODE = "pay_code", _("The member's pay code")
    MEMBER_ID = "member_id", _("Member id (a key allowed to spend without presence)")


class Payment(models.Model):
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="payments", verbose_name=_("business unit")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="payments", verbose_name=_("merchant")
    )
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="payments", verbose_name=_("member"))
    hold = models.OneToOneField(Hold, on_delete=models.PROTECT, related_name="payment", verbose_name=_("hold"))
    bill_no = models.CharField(_("bill number"), max_length=64)
    bill_amount = models.DecimalField(_("bill amount (CNY)"), **CNY)
    property_bill = models.ForeignKey(
        PropertyBill, on_delete=models.PROTECT, null=True, blank=True, related_name="payments",
        verbose_name=_("property bill"),
    )
    status = models.CharField(_("status"), max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.AUTHORIZED)
    presence = models.CharField(_("member present by"), max_length=10, choices=PaymentPresence.choices)
    pay_code = models.OneToOneField(
        PayCode, on_delete=models.PROTECT, null=True, blank=True, related_name="payment", verbose_name=_("pay code")
    )
    # Frozen at authorisation.
    point_value_cny = models.DecimalField(_("value of one point (CNY)"), max_digits=12, decimal_places=6)
    unit = models.PositiveBigIntegerField(_("unit (points)"))
    max_share_percent = models.PositiveSmallIntegerField(_("maximum share of the bill (%)"))
    cap_points = models.PositiveBigIntegerField(_("cap (points)"), null=True, blank=True)
    points_part_earns = models.BooleanField(_("the points-paid part earns points"))
    # Amounts: each `*_cny` is its points times point_value_cny (constraints below).
    points = models.BigIntegerField(_("points authorised"))
    amount_cny = models.DecimalField(_("CNY covered"), **CNY)
    captured_points = models.BigIntegerField(_("points captured"), default=0)
    captured_cny = models.DecimalField(_("CNY captured"), default=Decimal("0"), **CNY)
    refunded_points = models.BigIntegerField(_("points refunded"), default=0)
    refunded_cny = models.DecimalField(_("CNY refunded"), default=Decimal("0"), **CNY)
    capture_posting = models.OneToOneField(
        Posting, on_delete=models.PROTECT, null=True, blank=True, related_name="captured_payment",
        verbose_name=_("capture posting"),
    )
    expires_at = models.DateTimeField(_("authorisation expires at"))
    idempotency_scope = models.CharField(_("idempotency scope"), max_length=64)
    idempotency_key = models.CharField(_("idempotency key"), max_length=128)
    request_hash = models.CharField(_("request fingerprint"), max_length=64)
    partner_key = models.ForeignKey(
        PartnerKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("authorised by key")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_scope", "idempotency_key"], name="payment_idempotency_key_unique"),
            models.UniqueConstraint(
                fields=["business_unit", "bill_no"], condition=Q(status__in=BILL_HOLDING_STATUSES),
                name="payment_one_live_per_bill",
            ),
            models.CheckConstraint(condition=Q(points__gt=0), name="payment_points_positive"),
            models.CheckConstraint(condition=Q(bill_amount__gt=0), name="payment_bill_positive"),
            models.CheckConstraint(condition=Q(point_value_cny__gt=0), name="payment_point_value_positive"),
            models.CheckConstraint(condition=Q(amount_cny__lte=F("bill_amount")), name="payment_within_bill"),
            models.CheckConstraint(condition=Q(amount_cny=_value("points")), name="payment_amount_is_points_value"),
            models.CheckConstraint(condition=Q(captured_cny=_value("captured_points")), name="payment_captured_is_points_value"),
            models.CheckConstraint(condition=Q(refunded_cny=_value("refunded_points")), name="payment_refunded_is_points_value"),
            models.CheckConstraint(
                condition=Q(captured_points__gte=0) & Q(captured_points__lte=F("points")), name="payment_captured_within_points"
            ),
            models.CheckConstraint(
                condition=Q(refunded_points__gte=0) & Q(refunded_points__lte=F("captured_points")),
                name="payment_refunded_within_captured",
            ),
            models.CheckConstraint(
                condition=(Q(status__in=CAPTURED_STATUSES) & Q(captured_points__gt=0) & Q(capture_posting__isnull=False))
                | (~Q(status__in=CAPTURED_STATUSES) & Q(captured_points=0) & Q(capture_posting__isnull=True)),
                name="payment_captured_has_posting",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.VOIDED,
                                         PaymentStatus.EXPIRED]) | Q(refunded_points=0),
                name="payment_refunds_only_when_refunded",
            ),
            models.CheckConstraint(
                condition=~Q(status=PaymentStatus.PARTIALLY_REFUNDED)
                | (Q(refunded_points__gt=0) & Q(refunded_points__lt=F("captured_points"))),
                name="payment_partially_refunded_amounts",
            ),
            models.CheckConstraint(
                condition=~Q(status=PaymentStatus.REFUNDED) | Q(refunded_points=F("captured_points")),
                name="payment_refunded_amounts",
            ),
            models.CheckConstraint(
                condition=Q(presence=PaymentPresence.PAY_CODE, pay_code__isnull=False)
                | Q(presence=PaymentPresence.MEMBER_ID, pay_code__isnull=True),
                name="payment_presence_has_code",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "-created_at"], name="payment_member_history"),
            models.Index(fields=["business_unit", "-created_at"], name="payment_bu_history"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.bill_no} {self.get_status_display()} {self.points}"

    @property
    def refundable_points(self) -> int:
        return self.captured_points - self.refunded_points


class PaymentEvent(models.Model):
    """One move of a payment: from which status to which, the points and CNY it moved, the
    ledger posting it made (the capture's spend, a refund's cancel), who and why. Captures and
    refunds carry the partner's Idempotency-Key (unique per scope): a retry answers the payment."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="events", verbose_name=_("payment"))
    from_status = models.CharField(_("from"), max_length=20, choices=PaymentStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=20, choices=PaymentStatus.choices)
    points = models.BigIntegerField(_("points"), default=0)
    amount_cny = models.DecimalField(_("CNY"), default=Decimal("0"), **CNY)
    posting = models.OneToOneField(
        Posting, on_delete=models.PROTECT, null=True, blank=True, related_name="payment_event", verbose_name=_("posting")
    )
    points_to_expired_lots = models.BigIntegerField(
        _("points given back to lots past their expiry"), default=0,
        help_text=_("A refund gives points back to the lots they came from; these came from lots already past "
                    "their expiry and were credited as a new lot, valid 30 days."),
    )
    idempotency_scope = models.CharField(_("idempotency scope"), max_length=64, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, blank=True)
    request_hash = models.CharField(_("request fingerprint"), max_length=64, blank=True)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    partner_key = models.ForeignKey(
        PartnerKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("by key")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment event")
        verbose_name_plural = _("payment events")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_scope", "idempotency_key"], condition=~Q(idempotency_key=""),
                name="payment_event_idempotency_key_unique",
            ),
        ]
        triggers = [pgtrigger.Protect(name="payment_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self):
        return f"{self.payment_id}: {self.from_status or '-'} -> {self.to_status}"

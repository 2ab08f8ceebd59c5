"""The points ledger.

Design overview
---------------
* A **posting** is one ledger transaction; its **entries** sum to zero. Entries are signed:
  positive means points flow *into* the account. Accounts are not rows: an entry names an
  account by `account` kind plus either a member wallet (wallet, debt) or a business unit
  (issuance, redemption, expiry, adjustment). BU system balances are therefore derived from
  entries and never a hot row.
* A **wallet** is the points account of a member (created at enrolment) or of an organization
  (a tenant company's, opened on its first use): exactly one of the two (a CHECK). It caches
  `balance` (sum of its wallet entries) and `debt` (minus the sum of its debt entries); the
  database refuses a negative value of either. Every posting locks the wallet row first
  (SELECT ... FOR UPDATE). Every invariant holds for both kinds alike.
* A **transfer** moves available points between two wallets (an organization's distribution
  to an employee, a member's gift to another) as two postings of kind `transfer` in one
  transaction, one per wallet, each balanced through the `transfer` account of the lots'
  issuing business units: the sender's lots are consumed, the receiver gets lots with the same
  issuer, merchant, rule, earning time and expiry. The issuer's liability does not move.
* A **lot** is one batch of points credited to a wallet, with its provenance (BU, merchant,
  rule), when it becomes available and when it expires. Debits consume lots (earliest expiry,
  then earliest earning) and record each consumption as a **lot movement** (negative = taken
  from the lot, positive = given back by a reversal). `lot.remaining == lot.amount + sum(moves)`.
* Postings, entries and lot movements are append-only: PostgreSQL triggers refuse UPDATE and
  DELETE, and a deferred constraint trigger refuses a posting whose entries do not sum to zero.
* A **hold** reserves available points of a wallet for a purpose (a mall order being paid, a
  till's bill) until it is captured (a spend posting), voided or expired: exactly once. The
  points stay in their lots, reserved (`lot.held`, summed in `wallet.held`); which lots, and how
  much of each, is recorded as the hold's **allocations**. Every move of a hold is an event row.

Every row of these tables is written by the ledger core (points.ledger) and nowhere else.
"""

from datetime import date

import pgtrigger
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from members.models import BusinessUnit, BusinessUnitKind, Member, Merchant, MerchantCategory, Organization


class Wallet(models.Model):
    member = models.OneToOneField(
        Member, on_delete=models.PROTECT, null=True, blank=True, related_name="wallet", verbose_name=_("member")
    )
    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="wallet",
        verbose_name=_("organization"),
    )
    balance = models.BigIntegerField(_("balance"), default=0)
    debt = models.BigIntegerField(
        _("debt"), default=0, help_text=_("Points owed after a refund of points already spent; repaid first by new earnings.")
    )
    held = models.BigIntegerField(
        _("held"), default=0, db_default=0, help_text=_("Points reserved by holds that are not resolved yet (part of the balance).")
    )
    is_frozen = models.BooleanField(_("frozen"), default=False)
    frozen_reason = models.CharField(_("freeze reason"), max_length=200, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("wallet")
        verbose_name_plural = _("wallets")
        permissions = [
            ("adjust_points", _("Can adjust a member's points manually")),
            ("freeze_wallet", _("Can freeze and unfreeze a member's points account")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_non_negative"),
            models.CheckConstraint(condition=Q(debt__gte=0), name="wallet_debt_non_negative"),
            models.CheckConstraint(condition=Q(held__gte=0) & Q(held__lte=F("balance")), name="wallet_held_within_balance"),
            models.CheckConstraint(
                condition=(Q(member__isnull=False) & Q(organization__isnull=True))
                | (Q(member__isnull=True) & Q(organization__isnull=False)),
                name="wallet_one_holder",
            ),
        ]
        # The dashboard's negative balances: the few wallets in debt, without reading every wallet.
        indexes = [models.Index(fields=["debt"], condition=Q(debt__gt=0), name="wallet_in_debt")]

    def __str__(self):
        return f"{self.member if self.member_id else self.organization} · {self.balance}"


class PostingKind(models.TextChoices):
    EARN = "earn", _("Earn")
    SPEND = "spend", _("Spend")
    REFUND = "refund", _("Refund (reversal of an earn)")
    CANCEL = "cancel", _("Cancel (reversal of a spend)")
    EXPIRE = "expire", _("Expiry")
    ADJUST = "adjust", _("Manual adjustment")
    REPAY = "repay", _("Debt repaid from released held points")
    TRANSFER = "transfer", _("Transfer between wallets")


class EventType(models.TextChoices):
    """What happened, for an earn: the earning rules match on it."""

    PURCHASE = "purchase", _("Purchase")
    BILL = "bill", _("Bill or property-fee payment")
    PARKING = "parking", _("Parking payment")
    CHECK_IN = "check_in", _("Daily check-in")
    EVENT = "event", _("Event or activity participation")
    SURVEY = "survey", _("Survey or vote")
    REVIEW = "review", _("Review or repair evaluation")
    REFERRAL = "referral", _("Referral")
    REGISTRATION = "registration", _("Registration")
    BIRTHDAY = "birthday", _("Birthday")


class Posting(models.Model):
    kind = models.CharField(_("kind"), max_length=10, choices=PostingKind.choices)
    # Indexed by posting_wallet_history (wallet, occurred_at): a second index would only slow inserts.
    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="postings", verbose_name=_("wallet"), db_index=False
    )
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="postings",
        verbose_name=_("business unit"),
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="postings", verbose_name=_("merchant")
    )
    points = models.BigIntegerField(_("points"), help_text=_("Points moved for the member: + credited, - debited."))
    amount_cny = models.DecimalField(_("amount (CNY)"), max_digits=14, decimal_places=2, null=True, blank=True)
    receipt_no = models.CharField(_("receipt number"), max_length=64, blank=True)
    event_type = models.CharField(
        _("event type"), max_length=16, choices=EventType.choices, blank=True, default="", db_default=""
    )
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    explanation = models.JSONField(_("explanation"), default=list, blank=True)
    reverses = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversals", verbose_name=_("reverses"),
        db_index=False,  # a partial index below: most postings reverse nothing
    )
    idempotency_scope = models.CharField(_("idempotency scope"), max_length=64, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, blank=True)
    request_hash = models.CharField(_("request fingerprint"), max_length=64, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"), db_index=False,  # a partial index below: most postings have no operator
    )
    occurred_at = models.DateTimeField(_("occurred at"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("posting")
        verbose_name_plural = _("postings")
        ordering = ["-id"]
        permissions = [("export_ledger", _("Can export postings and entries"))]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_scope", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="posting_idempotency_key_unique_per_scope",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["refund", "cancel"], reverses__isnull=False)
                | (~Q(kind__in=["refund", "cancel"]) & Q(reverses__isnull=True)),
                name="posting_reversal_has_original",
            ),
            models.CheckConstraint(condition=Q(amount_cny__isnull=True) | Q(amount_cny__gte=0), name="posting_amount_non_negative"),
        ]
        indexes = [
            models.Index(fields=["wallet", "-occurred_at"], name="posting_wallet_history"),
            # Partial: the index holds only the few postings that have a value here.
            models.Index(fields=["reverses"], condition=Q(reverses__isnull=False), name="posting_reverses"),
            models.Index(fields=["actor"], condition=Q(actor__isnull=False), name="posting_actor"),
        ]
        triggers = [
            pgtrigger.Protect(name="posting_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self):
        return f"#{self.pk} {self.get_kind_display()} {self.points:+d}"


class Account(models.TextChoices):
    WALLET = "wallet", _("Member wallet")
    DEBT = "debt", _("Member debt")
    ISSUANCE = "issuance", _("BU issuance")
    REDEMPTION = "redemption", _("BU redemption")
    EXPIRY = "expiry", _("BU expiry")
    ADJUSTMENT = "adjustment", _("BU adjustment")
    TRANSFER = "transfer", _("BU points in transfer between wallets")


MEMBER_ACCOUNTS = [Account.WALLET, Account.DEBT]


class Entry(models.Model):
    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="entries", verbose_name=_("posting"))
    account = models.CharField(_("account"), max_length=12, choices=Account.choices)
    # Both indexed by the (account holder, account) indexes below: no single-column ones.
    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, null=True, blank=True, related_name="entries", verbose_name=_("wallet"),
        db_index=False,
    )
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="entries",
        verbose_name=_("business unit"), db_index=False,
    )
    amount = models.BigIntegerField(_("amount"))

    class Meta:
        verbose_name = _("entry")
        verbose_name_plural = _("entries")
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_non_zero"),
            models.CheckConstraint(
                condition=(Q(account__in=MEMBER_ACCOUNTS) & Q(wallet__isnull=False) & Q(business_unit__isnull=True))
                | (~Q(account__in=MEMBER_ACCOUNTS) & Q(wallet__isnull=True) & Q(business_unit__isnull=False)),
                name="entry_names_one_account",
            ),
        ]
        indexes = [
            models.Index(fields=["wallet", "account"], name="entry_wallet_account"),
            models.Index(fields=["business_unit", "account"], name="entry_bu_account"),
        ]
        triggers = [
            pgtrigger.Protect(name="entry_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            # An entry's id and its posting's carry the same month prefix (id // 10^12: 0 before
            # partitioning, the month after it, see points.partitioning): the id bounds let a
            # partitioned ledger read one month's partition instead of probing every one.
            pgtrigger.Trigger(
                name="posting_entries_balance",
                operation=pgtrigger.Insert,
                when=pgtrigger.After,
                timing=pgtrigger.Deferred,
                func="""
                    IF (SELECT COALESCE(SUM(amount), 0) FROM points_entry WHERE posting_id = NEW.posting_id
                        AND id >= NEW.posting_id / 1000000000000 * 1000000000000
                        AND id < (NEW.posting_id / 1000000000000 + 1) * 1000000000000) <> 0 THEN
                        RAISE EXCEPTION 'posting % is unbalanced: its entries do not sum to zero', NEW.posting_id
                            USING ERRCODE = 'check_violation';
                    END IF;
                    RETURN NULL;
                """,
            ),
        ]

    def __str__(self):
        return f"{self.get_account_display()} {self.amount:+d}"


class Lot(models.Model):
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="lots", verbose_name=_("wallet"))
    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="lots", verbose_name=_("credited by"))
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="lots", verbose_name=_("issued by")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="lots", verbose_name=_("merchant")
    )
    rule_code = models.CharField(_("rule"), max_length=64, blank=True)
    expiry_policy = models.ForeignKey(
        "ExpiryPolicy", on_delete=models.PROTECT, null=True, blank=True, related_name="lots",
        verbose_name=_("expiry policy"), db_index=False,  # a partial index below: most lots follow no policy
    )
    amount = models.BigIntegerField(_("amount"))
    remaining = models.BigIntegerField(_("remaining"))
    held = models.BigIntegerField(_("held"), default=0, db_default=0, help_text=_("Of the remaining points, those reserved by holds."))
    earned_at = models.DateTimeField(_("earned at"))
    available_at = models.DateTimeField(_("available at"))
    expires_at = models.DateTimeField(_("expires at"), help_text=_("Last instant at which the points are valid."))

    class Meta:
        verbose_name = _("lot")
        verbose_name_plural = _("lots")
        ordering = ["expires_at", "earned_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="lot_amount_positive"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")), name="lot_remaining_within_amount"
            ),
            models.CheckConstraint(condition=Q(available_at__lte=F("expires_at")), name="lot_available_before_expiry"),
            models.CheckConstraint(condition=Q(held__gte=0) & Q(held__lte=F("remaining")), name="lot_held_within_remaining"),
        ]
        indexes = [
            models.Index(
                fields=["wallet", "expires_at", "earned_at"], condition=Q(remaining__gt=0), name="lot_open_by_wallet"
            ),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="lot_open_by_expiry"),
            models.Index(fields=["expiry_policy"], condition=Q(expiry_policy__isnull=False), name="lot_expiry_policy"),
        ]

    def __str__(self):
        return f"{self.remaining}/{self.amount} → {self.expires_at:%Y-%m-%d}"


class LotMovement(models.Model):
    """Points taken from (negative) or given back to (positive) a lot by a posting."""

    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="lot_movements", verbose_name=_("posting"))
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="movements", verbose_name=_("lot"))
    amount = models.BigIntegerField(_("amount"))

    class Meta:
        verbose_name = _("lot movement")
        verbose_name_plural = _("lot movements")
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="lot_movement_non_zero")]
        triggers = [
            pgtrigger.Protect(name="lot_movement_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]


class HoldStatus(models.TextChoices):
    HELD = "held", _("Held")
    CAPTURED = "captured", _("Captured")
    VOIDED = "voided", _("Voided")
    EXPIRED = "expired", _("Expired")


# The moves a hold may make, written once: from `held` to one of the three ends, never back.
HOLD_MOVES = {HoldStatus.HELD: {HoldStatus.CAPTURED, HoldStatus.VOIDED, HoldStatus.EXPIRED}}


class Hold(models.Model):
    """Points of a wallet reserved for a purpose until captured, voided or expired (exactly one)."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="holds", verbose_name=_("wallet"))
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="holds", verbose_name=_("business unit")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="holds", verbose_name=_("merchant")
    )
    points = models.BigIntegerField(_("points held"))
    captured = models.BigIntegerField(_("points captured"), default=0)
    status = models.CharField(_("status"), max_length=10, choices=HoldStatus.choices, default=HoldStatus.HELD)
    purpose = models.CharField(_("purpose"), max_length=32, help_text=_("What the points are held for, e.g. mall_order, pos_bill."))
    reference = models.CharField(_("reference"), max_length=64, blank=True, help_text=_("The caller's own reference, e.g. a bill number."))
    expires_at = models.DateTimeField(_("expires at"))
    capture_posting = models.OneToOneField(
        Posting, on_delete=models.PROTECT, null=True, blank=True, related_name="captured_hold",
        verbose_name=_("capture posting"),
    )
    idempotency_scope = models.CharField(_("idempotency scope"), max_length=64, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, blank=True)
    request_hash = models.CharField(_("request fingerprint"), max_length=64, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)

    class Meta:
        verbose_name = _("hold")
        verbose_name_plural = _("holds")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_scope", "idempotency_key"], condition=~Q(idempotency_key=""),
                name="hold_idempotency_key_unique_per_scope",
            ),
            models.CheckConstraint(condition=Q(points__gt=0), name="hold_points_positive"),
            models.CheckConstraint(condition=Q(captured__gte=0) & Q(captured__lte=F("points")), name="hold_captured_within_points"),
            models.CheckConstraint(
                condition=(Q(status=HoldStatus.CAPTURED) & Q(captured__gt=0) & Q(capture_posting__isnull=False))
                | (~Q(status=HoldStatus.CAPTURED) & Q(captured=0) & Q(capture_posting__isnull=True)),
                name="hold_captured_has_posting",
            ),
            models.CheckConstraint(
                condition=Q(status=HoldStatus.HELD, resolved_at__isnull=True)
                | (~Q(status=HoldStatus.HELD) & Q(resolved_at__isnull=False)),
                name="hold_resolved_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(status=HoldStatus.HELD), name="hold_open_by_expiry"),
            models.Index(fields=["wallet"], condition=Q(status=HoldStatus.HELD), name="hold_open_by_wallet"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.get_status_display()} {self.points}"

    @property
    def open_points(self) -> int:
        """Points this hold still reserves: all of them while held, none once resolved."""
        return self.points if self.status == HoldStatus.HELD else 0


class HoldAllocation(models.Model):
    """How many points of one lot a hold reserved (while the hold is held)."""

    hold = models.ForeignKey(Hold, on_delete=models.PROTECT, related_name="allocations", verbose_name=_("hold"))
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="hold_allocations", verbose_name=_("lot"))
    points = models.BigIntegerField(_("points"))

    class Meta:
        verbose_name = _("hold allocation")
        verbose_name_plural = _("hold allocations")
        constraints = [models.CheckConstraint(condition=Q(points__gt=0), name="hold_allocation_points_positive")]
        triggers = [pgtrigger.Protect(name="hold_allocation_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]


class HoldEvent(models.Model):
    """One move of a hold: from which status to which, when, by whom and why."""

    hold = models.ForeignKey(Hold, on_delete=models.PROTECT, related_name="events", verbose_name=_("hold"))
    from_status = models.CharField(_("from"), max_length=10, choices=HoldStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=10, choices=HoldStatus.choices)
    points = models.BigIntegerField(_("points"), default=0)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("hold event")
        verbose_name_plural = _("hold events")
        ordering = ["id"]
        triggers = [pgtrigger.Protect(name="hold_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]


class WalletStatusChange(models.Model):
    """Audit trail of freezes and unfreezes: who, when, why."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="status_changes", verbose_name=_("wallet"))
    frozen = models.BooleanField(_("frozen"))
    reason = models.CharField(_("reason"), max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("freeze record")
        verbose_name_plural = _("freeze records")
        ordering = ["-id"]


# --- earning rules and expiry policies -----------------------------------------------------
#
# Operators configure these in admin; points.rules evaluates them on every earn (see its module
# docstring for the semantics) and docs/earning-rules.md gives examples.


class ExpiryKind(models.TextChoices):
    FIXED_MONTHS = "fixed_months", _("Fixed months after earning")
    PERIOD_END = "period_end", _("End of a calendar quarter or year")
    ACTIVITY_EXTENDS = "activity_extends", _("Activity extends all points")


class ExpiryPeriod(models.TextChoices):
    QUARTER = "quarter", _("Calendar quarter")
    YEAR = "year", _("Calendar year")


class ExpiryPolicy(models.Model):
    """How long points stay valid; all ends fall at the end of a day in the group's time zone.

    * fixed months: `months` after the day the points were earned;
    * period end: the end of the calendar quarter or year `periods` periods after the one in
      which they were earned (0 = the end of the current one);
    * activity extends: `months` after the member's latest qualifying activity; every earn
      pushes the expiry of all the member's open lots under this policy forward.

    A policy with `is_default` applies to points that no rule overrides: the one of the business
    unit, else the group-wide one (no business unit), else the business unit's `expiry_months`.
    """

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=20, choices=ExpiryKind.choices)
    months = models.PositiveIntegerField(_("months"), default=12, help_text=_("For fixed months and activity extends."))
    period = models.CharField(_("period"), max_length=10, choices=ExpiryPeriod.choices, blank=True)
    periods = models.PositiveIntegerField(
        _("periods after"), default=0, help_text=_("For period end: 0 = end of the current quarter/year, 1 = the next...")
    )
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("business unit"), help_text=_("Empty: a group-wide policy."),
    )
    is_default = models.BooleanField(
        _("default"), default=False, help_text=_("Applies to points of its business unit (or of the group) that no rule overrides.")
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("expiry policy")
        verbose_name_plural = _("expiry policies")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind=ExpiryKind.PERIOD_END) | ~Q(period=""), name="expiry_policy_period_end_has_period"
            ),
            models.UniqueConstraint(
                fields=["business_unit"], condition=Q(is_default=True, business_unit__isnull=False),
                name="expiry_policy_one_default_per_bu",
            ),
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True, business_unit__isnull=True),
                name="expiry_policy_one_group_default",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.code})"

    def clean(self):
        if self.kind == ExpiryKind.PERIOD_END and not self.period:
            raise ValidationError({"period": _("Give the period (quarter or year) whose end the points reach.")})


class MemberTag(models.Model):
    """A label on a member (e.g. `vip-tenant`, `staff`) that earning rules can require."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tags", verbose_name=_("member"))
    tag = models.SlugField(_("tag"), max_length=32)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("member tag")
        verbose_name_plural = _("member tags")
        constraints = [models.UniqueConstraint(fields=["member", "tag"], name="member_tag_unique")]

    def __str__(self):
        return self.tag


class RuleScope(models.TextChoices):
    ALL = "all", _("All business units")
    BU_KIND = "bu_kind", _("Business units of a kind")
    BUSINESS_UNIT = "business_unit", _("One business unit")
    MERCHANT = "merchant", _("One merchant")
    CATEGORY = "category", _("Merchants of a category")


class RuleEffect(models.TextChoices):
    RATE = "rate", _("Points per CNY")
    FIXED = "fixed", _("Fixed points")
    MULTIPLIER = "multiplier", _("Multiplier of the base points")
    THRESHOLD_BONUS = "threshold_bonus", _("Spend over X, get Y extra")


class Stacking(models.TextChoices):
    STACKS = "stacks", _("Stacks with other rules")
    EXCLUSIVE = "exclusive", _("Exclusive: no lower-priority rule applies")


class NthPeriod(models.TextChoices):
    DAY = "day", _("Day")
    WEEK = "week", _("Week (Monday to Sunday)")
    MONTH = "month", _("Month")


class EarningRule(models.Model):
    """An operator's earning rule: which events it matches (scope, conditions), what it gives
    (effect), how much at most (caps, budget) and how it combines with others (priority, stacking).
    Times (weekdays, hours, months) are read in the group's time zone."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    event_type = models.CharField(_("event type"), max_length=16, choices=EventType.choices, default=EventType.PURCHASE)

    scope = models.CharField(_("scope"), max_length=16, choices=RuleScope.choices, default=RuleScope.ALL)
    bu_kind = models.CharField(_("business unit kind"), max_length=20, choices=BusinessUnitKind.choices, blank=True)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("business unit")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("merchant")
    )
    merchant_category = models.CharField(
        _("merchant category"), max_length=20, choices=MerchantCategory.choices, blank=True
    )

    min_amount_cny = models.DecimalField(_("minimum amount (CNY)"), max_digits=14, decimal_places=2, null=True, blank=True)
    starts_at = models.DateTimeField(_("valid from"), null=True, blank=True)
    ends_at = models.DateTimeField(_("valid until"), null=True, blank=True)
    weekdays = models.JSONField(
        _("weekdays"), default=list, blank=True, help_text=_("Days the rule applies, 0 = Monday ... 6 = Sunday; empty = every day.")
    )
    hour_from = models.PositiveSmallIntegerField(
        _("from hour"), null=True, blank=True, validators=[MaxValueValidator(23)], help_text=_("Inclusive, 0-23.")
    )
    hour_to = models.PositiveSmallIntegerField(
        _("to hour"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(24)],
        help_text=_("Exclusive, 1-24."),
    )
    tier_codes = models.JSONField(
        _("member tiers"), default=list, blank=True, help_text=_("Tier codes the member must hold; empty = any tier.")
    )
    member_tag = models.SlugField(_("member tag"), max_length=32, blank=True)
    first_purchase = models.BooleanField(_("first purchase only"), default=False)
    nth_purchase = models.PositiveIntegerField(
        _("Nth purchase"), null=True, blank=True, validators=[MinValueValidator(1)],
        help_text=_("Applies to the member's Nth purchase within the period, e.g. 2 = the second purchase this week."),
    )
    nth_period = models.CharField(_("Nth purchase period"), max_length=8, choices=NthPeriod.choices, blank=True)
    birthday_month = models.BooleanField(_("member's birthday month only"), default=False)
    streak_days = models.PositiveIntegerField(
        _("streak days"), null=True, blank=True, validators=[MinValueValidator(2)],
        help_text=_("Applies on the first event of a day that completes a run of this many consecutive days (and every multiple)."),
    )
    max_awards_per_member = models.PositiveIntegerField(
        _("awards per member"), null=True, blank=True, validators=[MinValueValidator(1)],
        help_text=_("How many times at most one member gets this rule, e.g. 1 for registration."),
    )

    effect = models.CharField(_("effect"), max_length=16, choices=RuleEffect.choices)
    rate = models.DecimalField(
        _("points per CNY"), max_digits=10, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    points = models.PositiveIntegerField(_("points"), null=True, blank=True, help_text=_("For fixed points and spend-over bonuses."))
    multiplier = models.DecimalField(
        _("multiplier"), max_digits=6, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(1)]
    )
    threshold_cny = models.DecimalField(_("spend over (CNY)"), max_digits=14, decimal_places=2, null=True, blank=True)

    cap_per_member_day = models.PositiveIntegerField(_("cap per member per day"), null=True, blank=True)
    cap_per_member_month = models.PositiveIntegerField(_("cap per member per month"), null=True, blank=True)
    budget_points = models.PositiveBigIntegerField(
        _("campaign budget (points)"), null=True, blank=True, help_text=_("The rule stops once it has given this many points.")
    )

    priority = models.IntegerField(_("priority"), default=0, help_text=_("Higher runs first."))
    stacking = models.CharField(_("stacking"), max_length=10, choices=Stacking.choices, default=Stacking.STACKS)

    expiry_months = models.PositiveIntegerField(_("expiry override (months)"), null=True, blank=True)
    expiry_date = models.DateField(_("expiry override (date)"), null=True, blank=True)
    expiry_policy = models.ForeignKey(
        ExpiryPolicy, on_delete=models.PROTECT, null=True, blank=True, related_name="rules",
        verbose_name=_("expiry override (policy)"),
    )
    pending_days = models.PositiveIntegerField(_("pending days override"), null=True, blank=True)

    # Co-funding: settlement (which points never imports) reads these two fields. They are fixed
    # once the rule exists (a trigger below), so a closed month's co-funding never changes.
    co_funding_merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("co-funding merchant"),
        help_text=_("A merchant paying a share of the cost of the points this rule gives, settled monthly."),
    )
    co_funding_share = models.DecimalField(
        _("co-funding share"), max_digits=5, decimal_places=4, default=0, db_default=0,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_("The merchant's share of the points' cost, from 0 to 1 (0.5 = half). Fixed once the rule is saved."),
    )

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("earning rule")
        verbose_name_plural = _("earning rules")
        ordering = ["-priority", "code"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(scope=RuleScope.ALL))
                | (Q(scope=RuleScope.BU_KIND) & ~Q(bu_kind=""))
                | (Q(scope=RuleScope.BUSINESS_UNIT) & Q(business_unit__isnull=False))
                | (Q(scope=RuleScope.MERCHANT) & Q(merchant__isnull=False))
                | (Q(scope=RuleScope.CATEGORY) & ~Q(merchant_category="")),
                name="earning_rule_scope_complete",
            ),
            models.CheckConstraint(
                condition=(Q(effect=RuleEffect.RATE) & Q(rate__isnull=False))
                | (Q(effect=RuleEffect.FIXED) & Q(points__isnull=False))
                | (Q(effect=RuleEffect.MULTIPLIER) & Q(multiplier__isnull=False))
                | (Q(effect=RuleEffect.THRESHOLD_BONUS) & Q(points__isnull=False) & Q(threshold_cny__isnull=False)),
                name="earning_rule_effect_complete",
            ),
            models.CheckConstraint(
                condition=Q(nth_purchase__isnull=True) | ~Q(nth_period=""), name="earning_rule_nth_has_period"
            ),
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True) | Q(ends_at__isnull=True) | Q(starts_at__lt=F("ends_at")),
                name="earning_rule_window_ordered",
            ),
            models.CheckConstraint(
                condition=Q(hour_from__isnull=True) | Q(hour_to__isnull=True) | Q(hour_from__lt=F("hour_to")),
                name="earning_rule_hours_ordered",
            ),
            models.CheckConstraint(
                condition=(Q(expiry_months__isnull=True) & Q(expiry_date__isnull=True))
                | (Q(expiry_months__isnull=True) & Q(expiry_policy__isnull=True))
                | (Q(expiry_date__isnull=True) & Q(expiry_policy__isnull=True)),
                name="earning_rule_one_expiry_override",
            ),
            models.CheckConstraint(
                condition=(Q(co_funding_merchant__isnull=True) & Q(co_funding_share=0))
                | (Q(co_funding_merchant__isnull=False) & Q(co_funding_share__gt=0) & Q(co_funding_share__lte=1)),
                name="earning_rule_co_funding_complete",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="earning_rule_co_funding_fixed", operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange("co_funding_merchant", "co_funding_share"),
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.code})"

    def clean(self):
        errors = {}
        required_by_scope = {
            RuleScope.BU_KIND: ("bu_kind", self.bu_kind), RuleScope.BUSINESS_UNIT: ("business_unit", self.business_unit_id),
            RuleScope.MERCHANT: ("merchant", self.merchant_id), RuleScope.CATEGORY: ("merchant_category", self.merchant_category),
        }
        if self.scope in required_by_scope and not required_by_scope[self.scope][1]:
            errors[required_by_scope[self.scope][0]] = _("Required by the scope.")
        required_by_effect = {
            RuleEffect.RATE: ["rate"], RuleEffect.FIXED: ["points"], RuleEffect.MULTIPLIER: ["multiplier"],
            RuleEffect.THRESHOLD_BONUS: ["points", "threshold_cny"],
        }
        for field in required_by_effect.get(self.effect, []):
            if getattr(self, field) is None:
                errors[field] = _("Required by the effect.")
        if self.nth_purchase and not self.nth_period:
            errors["nth_period"] = _("Give the period of the Nth purchase.")
        if sum(x is not None for x in (self.expiry_months, self.expiry_date, self.expiry_policy_id)) > 1:
            errors["expiry_months"] = _("Give at most one expiry override: months, a date or a policy.")
        if not isinstance(self.weekdays, list) or any(day not in range(7) for day in self.weekdays):
            errors["weekdays"] = _("A list of weekday numbers, 0 = Monday ... 6 = Sunday.")
        if not isinstance(self.tier_codes, list) or any(not isinstance(code, str) for code in self.tier_codes):
            errors["tier_codes"] = _("A list of tier codes.")
        if (self.co_funding_merchant_id is None) != (not self.co_funding_share):
            errors["co_funding_share"] = _("Give both a co-funding merchant and its share, or neither.")
        if errors:
            raise ValidationError(errors)


class RuleBudget(models.Model):
    """How many points a rule with a campaign budget has given. Kept apart from the rule so an
    operator's edit never overwrites it; the earn service updates it under a row lock."""

    rule = models.OneToOneField(EarningRule, on_delete=models.CASCADE, related_name="budget", verbose_name=_("rule"))
    spent = models.BigIntegerField(_("points given"), default=0)

    class Meta:
        verbose_name = _("rule budget")
        verbose_name_plural = _("rule budgets")
        constraints = [models.CheckConstraint(condition=Q(spent__gte=0), name="rule_budget_spent_non_negative")]

    def __str__(self):
        return f"{self.rule.code}: {self.spent}"


class RuleAward(models.Model):
    """Points one rule gave in one earn posting; the caps and per-member limits count these."""

    rule = models.ForeignKey(EarningRule, on_delete=models.PROTECT, related_name="awards", verbose_name=_("rule"))
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="rule_awards", verbose_name=_("wallet"))
    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="rule_awards", verbose_name=_("posting"))
    points = models.BigIntegerField(_("points"))
    earned_at = models.DateTimeField(_("earned at"))

    class Meta:
        verbose_name = _("rule award")
        verbose_name_plural = _("rule awards")
        constraints = [models.CheckConstraint(condition=Q(points__gt=0), name="rule_award_points_positive")]
        indexes = [models.Index(fields=["wallet", "rule", "earned_at"], name="rule_award_wallet_rule")]
        triggers = [pgtrigger.Protect(name="rule_award_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]


class LotExpiryChange(models.Model):
    """A lot's expiry moved by the activity-extends policy: what it was, what it became, and why."""

    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="expiry_changes", verbose_name=_("lot"))
    posting = models.ForeignKey(
        Posting, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("activity")
    )
    previous_expires_at = models.DateTimeField(_("expired at before"))
    expires_at = models.DateTimeField(_("expires at now"))
    reason = models.CharField(_("reason"), max_length=200)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("lot expiry change")
        verbose_name_plural = _("lot expiry changes")
        ordering = ["-id"]
        triggers = [pgtrigger.Protect(name="lot_expiry_change_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

from points.statements.models import *  # noqa: E402,F401,F403 - the statement snapshot (points.statements)


# --- daily aggregates for the dashboard ------------------------------------------------------
#
# Derived from the ledger by points.aggregates (rebuilt per day, never edited by hand); the
# dashboard (settlement.dashboard) reads them. A day is a calendar day in the group's time zone
# of the postings' `occurred_at`, so a backdated posting counts on the day it is dated.


class LedgerDay(models.Model):
    """One day's postings of one (business unit, merchant, kind)."""

    day = models.DateField(_("day"))
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("business unit"),
        db_index=False,
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("merchant"),
        db_index=False,
    )
    kind = models.CharField(_("kind"), max_length=10, choices=PostingKind.choices)
    postings = models.BigIntegerField(_("postings"))
    members = models.BigIntegerField(_("members"), help_text=_("Distinct members with a posting in this cell."))
    points_in = models.BigIntegerField(_("points credited"), help_text=_("Sum of the postings' positive points."))
    points_out = models.BigIntegerField(_("points debited"), help_text=_("Minus the sum of the postings' negative points."))
    wallet_net = models.BigIntegerField(_("wallet change"), help_text=_("Sum of the wallet entries: the liability's change."))
    debt_net = models.BigIntegerField(_("debt change"), help_text=_("Sum of the debt entries (+ repaid, - incurred)."))
    manual_postings = models.BigIntegerField(_("operator postings"), help_text=_("Postings an operator made."))
    manual_points_in = models.BigIntegerField(
        _("points credited by operators"), help_text=_("Sum of the positive points of postings an operator made.")
    )
    amount_cny = models.DecimalField(_("amount (CNY)"), max_digits=18, decimal_places=2)

    class Meta:
        verbose_name = _("daily ledger figures")
        verbose_name_plural = _("daily ledger figures")
        permissions = [("view_dashboard", _("Can view the operations and finance dashboard"))]
        constraints = [
            models.UniqueConstraint(
                "day", Coalesce("business_unit", 0), Coalesce("merchant", 0), "kind", name="ledger_day_unique_cell"
            ),
        ]


class LotFlowDay(models.Model):
    """One day's points credited to (new lots) or taken from and given back to (movements) the
    lots of one issuing business unit, by the posting's business unit, kind and the lots' rule."""

    day = models.DateField(_("day"))
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("business unit"),
        db_index=False,
    )
    issuer = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="+", verbose_name=_("issuer"),
                               db_index=False)
    kind = models.CharField(_("kind"), max_length=10, choices=PostingKind.choices)
    rule_code = models.CharField(_("rule"), max_length=64, blank=True)
    points = models.BigIntegerField(_("points"), help_text=_("+ credited to the issuer's lots, - taken from them."))

    class Meta:
        verbose_name = _("daily lot flow")
        verbose_name_plural = _("daily lot flows")
        constraints = [
            models.UniqueConstraint(
                "day", Coalesce("business_unit", 0), "issuer", "kind", "rule_code", name="lot_flow_day_unique_cell"
            ),
        ]


class MemberDay(models.Model):
    """That a member had postings of a kind at a (business unit, merchant) on a day: the active
    members of any window and filter are counted from these rows."""

    day = models.DateField(_("day"))
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="+", verbose_name=_("wallet"),
                               db_index=False)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("business unit"),
        db_index=False,
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("merchant"),
        db_index=False,
    )
    kind = models.CharField(_("kind"), max_length=10, choices=PostingKind.choices)
    postings = models.BigIntegerField(_("postings"))

    class Meta:
        verbose_name = _("daily member activity")
        verbose_name_plural = _("daily member activity")
        constraints = [
            models.UniqueConstraint(
                "day", Coalesce("business_unit", 0), Coalesce("merchant", 0), "kind", "wallet",
                name="member_day_unique_cell",
            ),
        ]


class ActivityGap(models.Model):
    """How many members were active on `day` whose previous active day, in the same scope, was
    `previous_day` (empty: never before). The members active in any window first..last are then
    a sum, not a distinct count: those of its days whose previous day falls before `first`
    (points.activity). Active means a posting of DASHBOARD_ACTIVE_MEMBER_KINDS; the scope is the
    whole group (""), a business unit ("bu:<id>"), a kind of business unit ("bu_kind:<kind>")
    or a merchant ("merchant:<id>")."""

    scope = models.CharField(_("scope"), max_length=40, blank=True)
    day = models.DateField(_("day"))
    previous_day = models.DateField(_("previous active day"), null=True, blank=True)
    members = models.BigIntegerField(_("members"))

    class Meta:
        verbose_name = _("active members' gap")
        verbose_name_plural = _("active members' gaps")
        constraints = [
            models.UniqueConstraint(
                "scope", "day", Coalesce("previous_day", Value(date.min)), name="activity_gap_unique_cell"
            ),
        ]


class AggregateWatermark(models.Model):
    """Up to when (booking time) the aggregates have taken postings in: the job's next run
    recomputes the days of postings booked since (less a safety lag). One row, locked by each run."""

    name = models.CharField(_("name"), max_length=32, primary_key=True)
    booked_before = models.DateTimeField(_("booked before"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("aggregate watermark")
        verbose_name_plural = _("aggregate watermarks")

    def __str__(self):
        return f"{self.name}: {self.booked_before}"

from points.imports.models import *  # noqa: E402,F401,F403 - bulk imports of members (points.imports)

"""Risk control: rules, review cases, freezes, blacklists and maker-checker for adjustments.

Design overview
---------------
* A **risk rule** (operators, console, audited by django-simple-history) is a kind with a
  threshold, a window, a scope and an action. Rules run through points' registry
  (points.policies): earn gates and an after-earn hook for the earn side, spend gates for
  redemptions, an adjust gate for manual adjustments; riskcontrol.apps registers them. A rule
  judges from the moment it is switched on (`active_since`): nothing earlier counts.
* A rule that fires either **flags** (a case in the review queue, the earn or spend goes
  through), **holds** (the earn is credited as lots that stay pending until reviewed), **blocks**
  (the request is refused with `409 risk_blocked` and a reference, nothing posted; the attempt
  is recorded as a blocked attempt) or **freezes** the account (the earn held, the account frozen
  for earning, spending or both).
* A **review case** is resolved exactly once: open -> approved (held points released) or
  rejected (the earn reversed). Every move is a conditional write under the wallet lock and an
  event row (`CASE_MOVES`).
* **Freezes** (earning, spending or both, with an optional end) are rows of their own; a
  spending freeze also freezes the wallet in the ledger (points.services.wallet_freeze). A freeze
  is lifted once (conditional UPDATE) with an event row; a beat job lifts those past their end.
* **Blacklist** entries (phone, device, client address, card number) block or hold enrolment
  and earning, until they expire or are removed.
* **Adjustment requests** (maker-checker): manual adjustments above the operator's limit, or to
  their own member account, wait for a second operator's approval (`REQUEST_MOVES`). The
  database refuses a request decided by its own maker.
* Counters that must stay exact under concurrency lock what they count: a member's own postings
  under the wallet lock; receipts by a unique fingerprint row (`RiskReceipt`); devices and client
  addresses by their row (`RiskDevice`), locked while its uses are counted (riskcontrol.counters).

riskcontrol writes none of the ledger's rows: it asks points' services for them.
"""

import secrets

import pgtrigger
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from members.models import BusinessUnit, BusinessUnitKind, Member, Merchant
from points.models import Posting

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_reference(prefix: str) -> str:
    """A short reference an operator can read out on the phone, e.g. RB-7K2Q9XMA."""
    return f"{prefix}-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


def case_reference() -> str:
    return new_reference("RC")


def block_reference() -> str:
    return new_reference("RB")


# --- rules ------------------------------------------------------------------------------------


class RuleKind(models.TextChoices):
    EARN_COUNT = "earn_count", _("Earns per member in a window")
    EARN_POINTS = "earn_points", _("Points earned per member in a window")
    REDEMPTION_COUNT = "redemption_count", _("Redemptions per member in a window")
    EARN_AMOUNT = "earn_amount", _("A single earn above an amount (CNY)")
    REDEMPTION_POINTS = "redemption_points", _("A single redemption above a number of points")
    DUPLICATE_RECEIPT = "duplicate_receipt", _("The same receipt number at one merchant earned twice, by anyone")
    DUPLICATE_AMOUNT = "duplicate_amount", _("The same amount at one merchant in the same minute earned twice, by anyone")
    DEVICE_MEMBERS = "device_members", _("Members earning from one device in a window")
    ADDRESS_MEMBERS = "address_members", _("Members earning from one client address in a window")
    EARN_THEN_REDEEM = "earn_then_redeem", _("Points redeemed within minutes of being earned")
    REFUND_RATIO = "refund_ratio", _("Refunds above a share of what was earned in a window")
    OPERATOR_ADJUSTMENTS = "operator_adjustments", _("Manual adjustments by one operator above a total in a window")
    REFERRAL_COUNT = "referral_count", _("Referrals by one referrer in a window")
    REFERRAL_DEVICE = "referral_device", _("Referees of one referrer enrolling from one device in a window")
    REFERRAL_ADDRESS = "referral_address", _("Referees of one referrer enrolling from one client address in a window")


# Which operation each kind judges.
EARN_KINDS = frozenset({
    RuleKind.EARN_COUNT, RuleKind.EARN_POINTS, RuleKind.EARN_AMOUNT, RuleKind.DUPLICATE_RECEIPT,
    RuleKind.DUPLICATE_AMOUNT, RuleKind.DEVICE_MEMBERS, RuleKind.ADDRESS_MEMBERS, RuleKind.REFUND_RATIO,
})
SPEND_KINDS = frozenset({RuleKind.REDEMPTION_COUNT, RuleKind.REDEMPTION_POINTS, RuleKind.EARN_THEN_REDEEM})
ADJUST_KINDS = frozenset({RuleKind.OPERATOR_ADJUSTMENTS})
ENROL_KINDS = frozenset({RuleKind.REFERRAL_COUNT, RuleKind.REFERRAL_DEVICE, RuleKind.REFERRAL_ADDRESS})
# Kinds whose operation has no points to hold (a redemption, an enrolment).
NOT_HELD_KINDS = SPEND_KINDS | ENROL_KINDS
# Kinds that count over a window (the others judge one request, or a fingerprint for ever).
WINDOWED_KINDS = frozenset({
    RuleKind.EARN_COUNT, RuleKind.EARN_POINTS, RuleKind.REDEMPTION_COUNT, RuleKind.DEVICE_MEMBERS,
    RuleKind.ADDRESS_MEMBERS, RuleKind.EARN_THEN_REDEEM, RuleKind.REFUND_RATIO, RuleKind.OPERATOR_ADJUSTMENTS,
    *ENROL_KINDS,
})
# Kinds whose threshold is a count: a whole number.
COUNT_KINDS = frozenset({
    RuleKind.EARN_COUNT, RuleKind.REDEMPTION_COUNT, RuleKind.DEVICE_MEMBERS, RuleKind.ADDRESS_MEMBERS, *ENROL_KINDS,
})
# Kinds judged by a fingerprint of the earn's receipt or amount (a claimed row, not a count).
FINGERPRINT_KINDS = frozenset({RuleKind.DUPLICATE_RECEIPT, RuleKind.DUPLICATE_AMOUNT})


class RuleScope(models.TextChoices):
    GROUP = "group", _("The whole group")
    BU_KIND = "bu_kind", _("Business units of a kind")
    BUSINESS_UNIT = "business_unit", _("One business unit")
    MERCHANT = "merchant", _("One merchant")


class RuleAction(models.TextChoices):
    FLAG = "flag", _("Allow and flag for review")
    HOLD = "hold", _("Hold the points for review")
    BLOCK = "block", _("Block the request")
    FREEZE = "freeze", _("Freeze the account")


# The worst action wins when several rules fire.
ACTION_SEVERITY = {RuleAction.FLAG: 0, RuleAction.HOLD: 1, RuleAction.FREEZE: 2, RuleAction.BLOCK: 3}


class FreezeMode(models.TextChoices):
    EARNING = "earning", _("Earning")
    SPENDING = "spending", _("Spending")
    BOTH = "both", _("Earning and spending")


class RiskRule(models.Model):
    """One risk rule. What `threshold`, `window_minutes` and `min_points` mean per kind is in
    docs/risk.md; the form and the database refuse a threshold or window that is not positive."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=120)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=24, choices=RuleKind.choices)
    threshold = models.DecimalField(
        _("threshold"), max_digits=14, decimal_places=2,
        help_text=_("A count, points, CNY or a share (0 to 1), depending on the kind; always above zero."),
    )
    window_minutes = models.PositiveIntegerField(
        _("window (minutes)"), null=True, blank=True,
        help_text=_("For the kinds that count: 60 = an hour, 1440 = a day, 10080 = a week."),
    )
    min_points = models.PositiveBigIntegerField(
        _("minimum points"), null=True, blank=True,
        help_text=_("Refund ratio: judge only members who earned at least this many points in the window."),
    )
    scope = models.CharField(_("scope"), max_length=16, choices=RuleScope.choices, default=RuleScope.GROUP)
    bu_kind = models.CharField(_("business unit kind"), max_length=20, choices=BusinessUnitKind.choices, blank=True)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("business unit")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("merchant")
    )
    action = models.CharField(_("action"), max_length=8, choices=RuleAction.choices)
    freeze_mode = models.CharField(_("freeze mode"), max_length=8, choices=FreezeMode.choices, default=FreezeMode.BOTH)
    freeze_days = models.PositiveIntegerField(
        _("freeze days"), null=True, blank=True, help_text=_("How long a freeze lasts; empty: until lifted.")
    )
    is_active = models.BooleanField(_("active"), default=False)
    active_since = models.DateTimeField(
        _("active since"), null=True, blank=True, editable=False,
        help_text=_("When the rule was last switched on: it judges from then on, never earlier events."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("risk rule")
        verbose_name_plural = _("risk rules")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gt=0), name="risk_rule_threshold_positive"),
            models.CheckConstraint(
                condition=Q(window_minutes__isnull=True) | Q(window_minutes__gt=0), name="risk_rule_window_positive"
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=sorted(WINDOWED_KINDS)) | Q(window_minutes__isnull=False),
                name="risk_rule_window_required",
            ),
            models.CheckConstraint(
                condition=~Q(kind=RuleKind.REFUND_RATIO) | Q(threshold__lte=1), name="risk_rule_ratio_at_most_one"
            ),
            models.CheckConstraint(
                condition=Q(min_points__isnull=True) | Q(min_points__gt=0), name="risk_rule_min_points_positive"
            ),
            models.CheckConstraint(
                condition=Q(freeze_days__isnull=True) | Q(freeze_days__gt=0), name="risk_rule_freeze_days_positive"
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=sorted(SPEND_KINDS)) | ~Q(action=RuleAction.HOLD),
                name="risk_rule_redemptions_not_held",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=sorted(ENROL_KINDS)) | ~Q(action=RuleAction.HOLD),
                name="risk_rule_enrolments_not_held",
            ),
            models.CheckConstraint(
                condition=(Q(scope=RuleScope.GROUP) & Q(bu_kind="") & Q(business_unit__isnull=True) & Q(merchant__isnull=True))
                | (Q(scope=RuleScope.BU_KIND) & ~Q(bu_kind="") & Q(business_unit__isnull=True) & Q(merchant__isnull=True))
                | (Q(scope=RuleScope.BUSINESS_UNIT) & Q(bu_kind="") & Q(business_unit__isnull=False) & Q(merchant__isnull=True))
                | (Q(scope=RuleScope.MERCHANT) & Q(bu_kind="") & Q(business_unit__isnull=True) & Q(merchant__isnull=False)),
                name="risk_rule_scope_consistent",
            ),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(active_since__isnull=False), name="risk_rule_active_has_start"
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.code})"

    def clean(self):
        """What the console refuses before the database would: per kind, the threshold, window,
        action and scope that make sense (the CHECK constraints hold the same)."""
        errors = {}
        if self.threshold is not None:
            if self.threshold <= 0:
                errors["threshold"] = _("The threshold must be above zero.")
            elif self.kind in COUNT_KINDS and self.threshold != int(self.threshold):
                errors["threshold"] = _("This kind counts: the threshold is a whole number.")
            elif self.kind == RuleKind.REFUND_RATIO and self.threshold > 1:
                errors["threshold"] = _("A refund ratio is a share between 0 and 1 (0.5 = half).")
        if self.window_minutes is not None and self.window_minutes <= 0:
            errors["window_minutes"] = _("The window must be at least one minute.")
        elif self.kind in WINDOWED_KINDS and not self.window_minutes:
            errors["window_minutes"] = _("This kind counts over a window: give it in minutes.")
        if self.kind in SPEND_KINDS and self.action == RuleAction.HOLD:
            errors["action"] = _("A redemption cannot be held: flag, block or freeze it.")
        elif self.kind in ENROL_KINDS and self.action == RuleAction.HOLD:
            errors["action"] = _("An enrolment has no points to hold: flag, block or freeze the referrer.")
        scope_fields = {
            RuleScope.GROUP: set(), RuleScope.BU_KIND: {"bu_kind"}, RuleScope.BUSINESS_UNIT: {"business_unit"},
            RuleScope.MERCHANT: {"merchant"},
        }.get(self.scope, set())
        given = {
            name for name, value in (("bu_kind", self.bu_kind), ("business_unit", self.business_unit_id),
                                     ("merchant", self.merchant_id)) if value
        }
        for name in scope_fields - given:
            errors[name] = _("Required for this scope.")
        for name in given - scope_fields:
            errors[name] = _("Leave empty for this scope.")
        if errors:
            raise ValidationError(errors)


# --- review cases -----------------------------------------------------------------------------


class CaseStatus(models.TextChoices):
    OPEN = "open", _("Open")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


# The moves a case may make, written once: from open to one of the two ends, never back.
CASE_MOVES = {CaseStatus.OPEN: {CaseStatus.APPROVED, CaseStatus.REJECTED}}


class CaseOrigin(models.TextChoices):
    RULE = "rule", _("A risk rule")
    BLACKLIST = "blacklist", _("A blacklist entry")


class RiskCase(models.Model):
    """A member's earn, redemption or enrolment that a rule or the blacklist flagged or held.

    `posting` is the earn (none for a flagged redemption or enrolment); `held_points` what was
    credited held for review. `evidence` holds what the rules saw (the counts, the device and
    the other members on it, the earlier receipt) and every rule that fired."""

    reference = models.CharField(_("reference"), max_length=16, unique=True, default=case_reference, editable=False)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="risk_cases", verbose_name=_("member"))
    origin = models.CharField(_("origin"), max_length=10, choices=CaseOrigin.choices, default=CaseOrigin.RULE)
    rule = models.ForeignKey(
        RiskRule, on_delete=models.PROTECT, null=True, blank=True, related_name="cases", verbose_name=_("rule")
    )
    operation = models.CharField(_("operation"), max_length=10)
    action = models.CharField(_("action"), max_length=8, choices=RuleAction.choices)
    status = models.CharField(_("status"), max_length=10, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    posting = models.ForeignKey(
        Posting, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("earn")
    )
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("business unit")
    )
    points = models.BigIntegerField(_("points"), default=0)
    held_points = models.BigIntegerField(_("points held"), default=0)
    device_id = models.CharField(_("device"), max_length=128, blank=True)
    client_address = models.CharField(_("client address"), max_length=64, blank=True)
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    created_at = models.DateTimeField(_("opened at"), auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("decided by"),
    )
    decision_reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("review case")
        verbose_name_plural = _("review cases")
        ordering = ["-id"]
        permissions = [("review_riskcase", _("Can approve and reject review cases"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(status=CaseStatus.OPEN, decided_at__isnull=True)
                | (~Q(status=CaseStatus.OPEN) & Q(decided_at__isnull=False)),
                name="risk_case_decided_has_time",
            ),
            models.CheckConstraint(condition=Q(held_points__gte=0), name="risk_case_held_non_negative"),
            models.UniqueConstraint(fields=["posting"], condition=Q(posting__isnull=False), name="risk_case_one_per_earn"),
        ]
        indexes = [
            models.Index(fields=["member"], condition=Q(status=CaseStatus.OPEN), name="risk_case_open_by_member"),
            models.Index(fields=["created_at"], condition=Q(status=CaseStatus.OPEN), name="risk_case_open"),
        ]

    def __str__(self):
        return self.reference


class RiskCaseEvent(models.Model):
    """One step of a case's timeline: opened, approved (points released), rejected (reversed)."""

    case = models.ForeignKey(RiskCase, on_delete=models.PROTECT, related_name="events", verbose_name=_("case"))
    from_status = models.CharField(_("from"), max_length=10, choices=CaseStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=10, choices=CaseStatus.choices)
    note = models.CharField(_("what happened"), max_length=200, blank=True)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("case event")
        verbose_name_plural = _("case events")
        ordering = ["id"]
        triggers = [pgtrigger.Protect(name="risk_case_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]


class BlockedAttempt(models.Model):
    """A request refused by risk control (`409 risk_blocked`): nothing was posted. Written after
    the refused transaction rolled back (riskcontrol.context)."""

    reference = models.CharField(_("reference"), max_length=16, unique=True)
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("member")
    )
    rule = models.ForeignKey(
        RiskRule, on_delete=models.PROTECT, null=True, blank=True, related_name="blocks", verbose_name=_("rule")
    )
    origin = models.CharField(_("origin"), max_length=10)
    operation = models.CharField(_("operation"), max_length=10)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("business unit")
    )
    device_id = models.CharField(_("device"), max_length=128, blank=True)
    client_address = models.CharField(_("client address"), max_length=64, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("blocked attempt")
        verbose_name_plural = _("blocked attempts")
        ordering = ["-id"]
        triggers = [pgtrigger.Protect(name="blocked_attempt_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self):
        return self.reference


# --- counters that must hold under concurrency -------------------------------------------------


class RiskReceipt(models.Model):
    """A receipt (or an amount in a minute) at one merchant, claimed by the earn gate in the
    first earn's transaction: the unique fingerprint makes the second earn of it, by anyone, find
    the first, even when both run at once. The claim is made before the earn is written, so it
    names the member, not the posting (riskcontrol.services finds the first earn for evidence)."""

    fingerprint = models.CharField(_("fingerprint"), max_length=200, unique=True)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+", verbose_name=_("member"))
    created_at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("receipt seen")
        verbose_name_plural = _("receipts seen")


class DeviceKind(models.TextChoices):
    DEVICE = "device", _("Device")
    ADDRESS = "address", _("Client address")


class RiskDevice(models.Model):
    """A device id or client address seen on earns; its row is locked while its members are
    counted. Every upsert of the row moves `version` on, so an earn can tell whether anyone
    changed the row between the start of its statement and its lock (riskcontrol.counters)."""

    kind = models.CharField(_("kind"), max_length=8, choices=DeviceKind.choices)
    value = models.CharField(_("value"), max_length=128)
    version = models.BigIntegerField(_("version"), default=0, editable=False)

    class Meta:
        verbose_name = _("device or address")
        verbose_name_plural = _("devices and addresses")
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="risk_device_unique")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.value}"


class RiskDeviceUse(models.Model):
    # Indexed by the unique (device, member) and by risk_device_use_recent: a third index would
    # only slow the earn's upsert.
    device = models.ForeignKey(RiskDevice, on_delete=models.PROTECT, related_name="uses", verbose_name=_("device"),
                               db_index=False)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+", verbose_name=_("member"))
    first_seen_at = models.DateTimeField(_("first seen"))
    last_seen_at = models.DateTimeField(_("last seen"))

    class Meta:
        verbose_name = _("device use")
        verbose_name_plural = _("device uses")
        constraints = [models.UniqueConstraint(fields=["device", "member"], name="risk_device_use_unique")]
        indexes = [models.Index(fields=["device", "last_seen_at"], name="risk_device_use_recent")]


# --- freezes ----------------------------------------------------------------------------------


class RiskFreeze(models.Model):
    """An account frozen for earning, spending or both, until lifted (by an operator, the review
    of its case, or the beat job once `ends_at` has passed). Lifted once: a conditional UPDATE."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="risk_freezes", verbose_name=_("member"))
    mode = models.CharField(_("mode"), max_length=8, choices=FreezeMode.choices)
    reason = models.CharField(_("reason"), max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("frozen by"),
    )
    rule = models.ForeignKey(
        RiskRule, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("rule")
    )
    case = models.ForeignKey(
        RiskCase, on_delete=models.PROTECT, null=True, blank=True, related_name="freezes", verbose_name=_("case")
    )
    froze_wallet = models.BooleanField(
        _("froze the wallet"), default=False, editable=False,
        help_text=_("This freeze froze the ledger wallet, so lifting the last spending freeze unfreezes it."),
    )
    starts_at = models.DateTimeField(_("from"))
    ends_at = models.DateTimeField(_("until"), null=True, blank=True, help_text=_("Empty: until lifted."))
    lifted_at = models.DateTimeField(_("lifted at"), null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("lifted by"),
    )
    lift_reason = models.CharField(_("lift reason"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("freeze")
        verbose_name_plural = _("freezes")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=F("starts_at")), name="risk_freeze_ends_after_start"
            ),
        ]
        indexes = [models.Index(fields=["member"], condition=Q(lifted_at__isnull=True), name="risk_freeze_active")]

    def __str__(self):
        return f"{self.member} · {self.get_mode_display()}"


class RiskFreezeEvent(models.Model):
    freeze = models.ForeignKey(RiskFreeze, on_delete=models.PROTECT, related_name="events", verbose_name=_("freeze"))
    event = models.CharField(_("event"), max_length=10, choices=[("frozen", _("Frozen")), ("lifted", _("Lifted"))])
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("freeze event")
        verbose_name_plural = _("freeze events")
        ordering = ["id"]
        triggers = [pgtrigger.Protect(name="risk_freeze_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]


# --- blacklist --------------------------------------------------------------------------------


class BlacklistKind(models.TextChoices):
    PHONE = "phone", _("Phone")
    DEVICE = "device", _("Device")
    ADDRESS = "address", _("Client address")
    CARD = "card", _("Card number")


class BlacklistAction(models.TextChoices):
    BLOCK = "block", _("Refuse enrolment and earning")
    HOLD = "hold", _("Hold earnings for review")


class BlacklistEntry(models.Model):
    """A phone, device, client address or card number from which enrolment and earning are
    refused or held, until `expires_at` (empty: until removed)."""

    kind = models.CharField(_("kind"), max_length=8, choices=BlacklistKind.choices)
    value = models.CharField(_("value"), max_length=128)
    action = models.CharField(_("action"), max_length=8, choices=BlacklistAction.choices, default=BlacklistAction.BLOCK)
    reason = models.CharField(_("reason"), max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("added by"),
    )
    created_at = models.DateTimeField(_("added at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True, help_text=_("Empty: until removed."))
    removed_at = models.DateTimeField(_("removed at"), null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("removed by"),
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("blacklist entry")
        verbose_name_plural = _("blacklist")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "value"], condition=Q(removed_at__isnull=True), name="blacklist_one_live_entry"
            ),
            models.CheckConstraint(condition=~Q(value=""), name="blacklist_value_not_empty"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.value}"


# --- maker-checker for manual adjustments -----------------------------------------------------


class AdjustmentThreshold(models.Model):
    """The largest manual adjustment (in points, either sign) an operator of a role posts alone;
    above it, the adjustment becomes a request for a second operator. A row without a role is the
    limit for operators of no listed role. With no row at all, maker-checker is off."""

    group = models.OneToOneField(
        Group, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("role")
    )
    max_points = models.PositiveBigIntegerField(_("largest adjustment posted alone (points)"))

    class Meta:
        verbose_name = _("adjustment limit")
        verbose_name_plural = _("adjustment limits")
        constraints = [
            # One row without a role (NULLs are distinct to a plain unique index).
            models.UniqueConstraint(Coalesce("group", Value(0)), name="adjustment_limit_once_per_role"),
        ]

    def __str__(self):
        return f"{self.group or _('any other role')}: {self.max_points}"


class OperatorMember(models.Model):
    """An operator's own member account: every adjustment to it needs a second operator."""

    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("operator")
    )
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member"))

    class Meta:
        verbose_name = _("operator's own member account")
        verbose_name_plural = _("operators' own member accounts")
        constraints = [models.UniqueConstraint(fields=["operator", "member"], name="operator_member_unique")]


class ReasonCode(models.TextChoices):
    GOODWILL = "goodwill", _("Goodwill")
    SERVICE_RECOVERY = "service_recovery", _("Service recovery")
    CORRECTION = "correction", _("Correction of an error")
    MIGRATION = "migration", _("Migration from another system")
    CAMPAIGN = "campaign", _("Campaign outside the rules")
    FRAUD = "fraud", _("Fraud clawback")


class RequestStatus(models.TextChoices):
    PENDING = "pending", _("Awaiting approval")
    APPROVED = "approved", _("Approved, posting")
    EXECUTED = "executed", _("Posted")
    FAILED = "failed", _("Approved, refused by the ledger")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn by its maker")
    EXPIRED = "expired", _("Expired")


# The moves a request may make, written once, never back.
REQUEST_MOVES = {
    RequestStatus.PENDING: {RequestStatus.APPROVED, RequestStatus.REJECTED, RequestStatus.WITHDRAWN, RequestStatus.EXPIRED},
    RequestStatus.APPROVED: {RequestStatus.EXECUTED, RequestStatus.FAILED},
}
CHECKED_STATUSES = [RequestStatus.APPROVED, RequestStatus.EXECUTED, RequestStatus.FAILED, RequestStatus.REJECTED]


class AdjustmentRequest(models.Model):
    """A manual adjustment awaiting (or past) a second operator's decision."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+", verbose_name=_("member"))
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="+", verbose_name=_("business unit")
    )
    points = models.BigIntegerField(_("points"))
    reason_code = models.CharField(_("reason code"), max_length=20, choices=ReasonCode.choices)
    reason = models.CharField(_("reason"), max_length=200)
    status = models.CharField(_("status"), max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    maker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    checker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_reason = models.CharField(_("decision reason"), max_length=200, blank=True)
    posting = models.OneToOneField(
        Posting, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("adjustment")
    )
    failure = models.CharField(_("refused by the ledger"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("adjustment request")
        verbose_name_plural = _("adjustment requests")
        ordering = ["-id"]
        permissions = [("approve_adjustmentrequest", _("Can approve and reject adjustment requests"))]
        constraints = [
            models.CheckConstraint(condition=~Q(points=0), name="adjustment_request_points_non_zero"),
            models.CheckConstraint(condition=~Q(reason=""), name="adjustment_request_reason_required"),
            # The maker never decides their own request, whatever path wrote the decision.
            models.CheckConstraint(
                condition=~Q(status__in=CHECKED_STATUSES) | (Q(checker__isnull=False) & ~Q(checker=F("maker"))),
                name="adjustment_request_checker_not_maker",
            ),
            models.CheckConstraint(
                condition=~Q(status=RequestStatus.EXECUTED) | Q(posting__isnull=False),
                name="adjustment_request_executed_has_posting",
            ),
            models.UniqueConstraint(
                fields=["member", "points"], condition=Q(status=RequestStatus.PENDING),
                name="adjustment_request_one_pending_per_member_amount",
            ),
        ]
        indexes = [models.Index(fields=["expires_at"], condition=Q(status=RequestStatus.PENDING), name="adjustment_request_due")]

    def __str__(self):
        return f"#{self.pk} {self.member} {self.points:+d}"


class AdjustmentRequestEvent(models.Model):
    request = models.ForeignKey(
        AdjustmentRequest, on_delete=models.PROTECT, related_name="events", verbose_name=_("request")
    )
    from_status = models.CharField(_("from"), max_length=10, choices=RequestStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=10, choices=RequestStatus.choices)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("adjustment request event")
        verbose_name_plural = _("adjustment request events")
        ordering = ["id"]
        triggers = [
            pgtrigger.Protect(name="adjustment_request_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete)
        ]

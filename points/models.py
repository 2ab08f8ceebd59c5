"""The points ledger.

Design overview
---------------
* A **posting** is one ledger transaction; its **entries** sum to zero. Entries are signed:
  positive means points flow *into* the account. Accounts are not rows: an entry names an
  account by `account` kind plus either a member wallet (wallet, debt) or a business unit
  (issuance, redemption, expiry, adjustment). BU system balances are therefore derived from
  entries and never a hot row.
* A **wallet** is the member's points account, created at enrolment. It caches `balance` (sum
  of its wallet entries) and `debt` (minus the sum of its debt entries); the database refuses a
  negative value of either. Every posting locks the wallet row first (SELECT ... FOR UPDATE).
* A **lot** is one batch of points credited to a wallet, with its provenance (BU, merchant,
  rule), when it becomes available and when it expires. Debits consume lots (earliest expiry,
  then earliest earning) and record each consumption as a **lot movement** (negative = taken
  from the lot, positive = given back by a reversal). `lot.remaining == lot.amount + sum(moves)`.
* Postings, entries and lot movements are append-only: PostgreSQL triggers refuse UPDATE and
  DELETE, and a deferred constraint trigger refuses a posting whose entries do not sum to zero.
"""

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models import BusinessUnit, Member, Merchant


class Wallet(models.Model):
    member = models.OneToOneField(Member, on_delete=models.PROTECT, related_name="wallet", verbose_name=_("member"))
    balance = models.BigIntegerField(_("balance"), default=0)
    debt = models.BigIntegerField(
        _("debt"), default=0, help_text=_("Points owed after a refund of points already spent; repaid first by new earnings.")
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
        ]

    def __str__(self):
        return f"{self.member} · {self.balance}"


class PostingKind(models.TextChoices):
    EARN = "earn", _("Earn")
    SPEND = "spend", _("Spend")
    REFUND = "refund", _("Refund (reversal of an earn)")
    CANCEL = "cancel", _("Cancel (reversal of a spend)")
    EXPIRE = "expire", _("Expiry")
    ADJUST = "adjust", _("Manual adjustment")


class Posting(models.Model):
    kind = models.CharField(_("kind"), max_length=10, choices=PostingKind.choices)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="postings", verbose_name=_("wallet"))
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
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    explanation = models.JSONField(_("explanation"), default=list, blank=True)
    reverses = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversals", verbose_name=_("reverses")
    )
    idempotency_scope = models.CharField(_("idempotency scope"), max_length=64, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, blank=True)
    request_hash = models.CharField(_("request fingerprint"), max_length=64, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
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
        indexes = [models.Index(fields=["wallet", "-occurred_at"], name="posting_wallet_history")]
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


MEMBER_ACCOUNTS = [Account.WALLET, Account.DEBT]


class Entry(models.Model):
    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="entries", verbose_name=_("posting"))
    account = models.CharField(_("account"), max_length=12, choices=Account.choices)
    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, null=True, blank=True, related_name="entries", verbose_name=_("wallet")
    )
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="entries",
        verbose_name=_("business unit"),
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
            pgtrigger.Trigger(
                name="posting_entries_balance",
                operation=pgtrigger.Insert,
                when=pgtrigger.After,
                timing=pgtrigger.Deferred,
                func="""
                    IF (SELECT COALESCE(SUM(amount), 0) FROM points_entry WHERE posting_id = NEW.posting_id) <> 0 THEN
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
    amount = models.BigIntegerField(_("amount"))
    remaining = models.BigIntegerField(_("remaining"))
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
        ]
        indexes = [
            models.Index(
                fields=["wallet", "expires_at", "earned_at"], condition=Q(remaining__gt=0), name="lot_open_by_wallet"
            ),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="lot_open_by_expiry"),
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

"""The statement snapshot: what one member's points did in one month, frozen when generated.

A statement is read from the ledger at the period's two boundaries (midnight of the 1st in the
group's time zone) and never changes afterwards: PostgreSQL refuses UPDATE and DELETE, and a
CHECK refuses figures that do not add up. Times are booking times (`Posting.created_at`): a
posting belongs to the month in which the ledger booked it, so a closed month's figures never
change (a backdated earn booked on 2 April shows on April's statement, with its own date).

    closing_balance = opening_balance + earned - redeemed + cancelled - refunded - expired
                      + adjusted + transferred - debt_repaid

`debt_repaid` is opening_debt - closing_debt: credits pay the member's debt first, so part of
what was earned may have gone to the debt rather than the balance (negative when a refund
created debt). This model is imported by points.models (its last line): it belongs to the
points app and its migrations.
"""

import pgtrigger
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models import Member

__all__ = ["Statement"]


class Statement(models.Model):
    # Indexed by the unique (member, period): a second index would only slow the monthly insert.
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="statements", verbose_name=_("member"), db_index=False
    )
    period = models.CharField(_("period"), max_length=7, help_text=_("The month, YYYY-MM, in the group's time zone."))
    period_start = models.DateTimeField(_("period start"))
    period_end = models.DateTimeField(_("period end"), help_text=_("The first instant after the period."))
    opening_balance = models.BigIntegerField(_("opening balance"))
    earned = models.BigIntegerField(_("earned"))
    redeemed = models.BigIntegerField(_("redeemed"))
    cancelled = models.BigIntegerField(_("spends cancelled"), help_text=_("Points given back by cancelled spends."))
    refunded = models.BigIntegerField(_("earns refunded"), help_text=_("Points taken back by refunded purchases."))
    expired = models.BigIntegerField(_("expired"))
    adjusted = models.BigIntegerField(_("adjusted"), help_text=_("Manual adjustments, signed."))
    transferred = models.BigIntegerField(
        _("transferred"), default=0, db_default=0,
        help_text=_("Points received from (+) or transferred to (-) other wallets: an organization's distributions, "
                    "transfers between members."),
    )
    debt_repaid = models.BigIntegerField(
        _("debt repaid"), help_text=_("Opening debt minus closing debt: negative when a refund created debt.")
    )
    closing_balance = models.BigIntegerField(_("closing balance"))
    opening_debt = models.BigIntegerField(_("opening debt"))
    closing_debt = models.BigIntegerField(_("closing debt"))
    earned_by_source = models.JSONField(_("earned by source"), default=dict, help_text=_("Points by event type."))
    earned_by_business_unit = models.JSONField(_("earned by business unit"), default=dict)
    redeemed_by_business_unit = models.JSONField(_("redeemed by business unit"), default=dict)
    redeemed_by_purpose = models.JSONField(
        _("redeemed by purpose"), default=dict, help_text=_("Points by what they paid: a hold's purpose, or spend.")
    )
    redeemed_by_business_unit_and_channel = models.JSONField(
        _("redeemed by business unit and channel"), null=True, blank=True,
        help_text=_("Per business unit, points by what they paid: mall_order, payment or spend."),
    )
    expiring_30_days = models.BigIntegerField(_("expiring within 30 days"))
    expiring_60_days = models.BigIntegerField(_("expiring within 60 days"))
    tier = models.JSONField(_("tier"), null=True, blank=True, help_text=_("Tier and progress to the next one at the period end."))
    postings = models.PositiveIntegerField(_("transactions"), default=0)
    created_at = models.DateTimeField(_("generated at"), auto_now_add=True)

    class Meta:
        verbose_name = _("statement")
        verbose_name_plural = _("statements")
        ordering = ["member", "-period"]
        constraints = [
            models.UniqueConstraint(fields=["member", "period"], name="statement_one_per_member_period"),
            models.CheckConstraint(
                condition=Q(
                    closing_balance=F("opening_balance") + F("earned") - F("redeemed") + F("cancelled") - F("refunded")
                    - F("expired") + F("adjusted") + F("transferred") - F("debt_repaid")
                ),
                name="statement_movements_add_up",
            ),
            models.CheckConstraint(
                condition=Q(debt_repaid=F("opening_debt") - F("closing_debt")), name="statement_debt_repaid_is_debt_change"
            ),
            models.CheckConstraint(
                condition=Q(opening_balance__gte=0, closing_balance__gte=0, opening_debt__gte=0, closing_debt__gte=0),
                name="statement_balances_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(expiring_30_days__gte=0) & Q(expiring_60_days__gte=F("expiring_30_days"))
                & Q(expiring_60_days__lte=F("closing_balance")),
                name="statement_expiring_within_balance",
            ),
            models.CheckConstraint(condition=Q(period_start__lt=F("period_end")), name="statement_period_ordered"),
        ]
        indexes = [models.Index(fields=["period", "member"], name="statement_period_member")]
        triggers = [pgtrigger.Protect(name="statement_immutable", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self):
        return f"{self.member_id} · {self.period}"

"""Membership tiers.

Design overview
---------------
* A **programme** says what qualifies a member for a tier: qualifying points (points earned,
  minus refunds) or qualifying spend in CNY, both counted over a rolling window of months that
  ends now and starts at midnight, in the group's time zone, of the same calendar day that many
  months earlier. The current balance never enters the computation: spending points does not
  cost a member their tier. One programme is active at a time.
* A **level** is one rung of a programme: a rank, a threshold of qualifying value, and the
  benefits it gives (earn multiplier, expiry extension, redemption discount).
* A **member tier** holds the level the member has earned (`level`), when it began, the value
  seen at the last evaluation, the start of a pending downgrade's grace period, and an optional
  manual override set by an operator until a date. The member's effective tier is the override
  while it lasts, the earned level otherwise. When operators replace the active programme, a
  member moves onto the new one at their next evaluation (their next earn or the daily job), to
  the level their value earns there; a manual tier of the old programme ends with the move.
* Every change of a member's tier is a **tier change** row (append-only) with who, why and the
  qualifying value at the time.
"""

import pgtrigger
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models import Member


class QualificationBasis(models.TextChoices):
    POINTS = "points", _("Qualifying points")
    SPEND = "spend", _("Qualifying spend (CNY)")


class TierProgramme(models.Model):
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=120)
    basis = models.CharField(_("qualification basis"), max_length=10, choices=QualificationBasis.choices)
    window_months = models.PositiveSmallIntegerField(
        _("rolling window (months)"), default=12,
        help_text=_("Qualifying value is counted over this many months up to today."),
    )
    grace_days = models.PositiveIntegerField(
        _("downgrade grace (days)"), default=30,
        help_text=_("A member found below their tier at requalification keeps it this many days before moving down."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("tier programme")
        verbose_name_plural = _("tier programmes")
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="tier_one_active_programme"),
            models.CheckConstraint(condition=Q(window_months__gt=0), name="tier_programme_window_positive"),
        ]

    def __str__(self):
        return self.name


class TierLevel(models.Model):
    programme = models.ForeignKey(
        TierProgramme, on_delete=models.PROTECT, related_name="levels", verbose_name=_("programme")
    )
    code = models.SlugField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=120)
    rank = models.PositiveSmallIntegerField(_("rank"), help_text=_("Higher rank, higher tier."))
    threshold = models.DecimalField(
        _("threshold"), max_digits=14, decimal_places=2,
        help_text=_("Qualifying value needed: whole points, or CNY, according to the programme's basis."),
    )
    earn_multiplier = models.DecimalField(_("earn multiplier"), max_digits=5, decimal_places=2, default=1)
    expiry_extension_months = models.PositiveSmallIntegerField(
        _("expiry extension (months)"), default=0,
        help_text=_("Extra months of validity for points earned while in this tier."),
    )
    redemption_discount_percent = models.DecimalField(
        _("redemption discount (%)"), max_digits=5, decimal_places=2, default=0
    )

    class Meta:
        verbose_name = _("tier level")
        verbose_name_plural = _("tier levels")
        ordering = ["programme", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["programme", "rank"], name="tier_level_rank_unique"),
            models.UniqueConstraint(fields=["programme", "code"], name="tier_level_code_unique"),
            models.CheckConstraint(condition=Q(threshold__gte=0), name="tier_level_threshold_non_negative"),
            models.CheckConstraint(condition=Q(earn_multiplier__gt=0), name="tier_level_multiplier_positive"),
            models.CheckConstraint(
                condition=Q(redemption_discount_percent__gte=0) & Q(redemption_discount_percent__lte=100),
                name="tier_level_discount_percent",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if (
            self.programme_id
            and self.programme.basis == QualificationBasis.POINTS
            and self.threshold is not None
            and self.threshold != self.threshold.to_integral_value()
        ):
            raise ValidationError({"threshold": _("A points threshold is a whole number of points.")})


class MemberTier(models.Model):
    member = models.OneToOneField(Member, on_delete=models.PROTECT, related_name="tier", verbose_name=_("member"))
    programme = models.ForeignKey(
        TierProgramme, on_delete=models.PROTECT, related_name="+", verbose_name=_("programme")
    )
    level = models.ForeignKey(
        TierLevel, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("earned level"), help_text=_("The level the member qualified for; empty below every threshold."),
    )
    since = models.DateTimeField(_("since"))
    qualifying_value = models.DecimalField(
        _("qualifying value at last evaluation"), max_digits=14, decimal_places=2, default=0
    )
    evaluated_at = models.DateTimeField(_("last evaluated at"))
    below_since = models.DateTimeField(
        _("below threshold since"), null=True, blank=True,
        help_text=_("First requalification that found the member below their level; the grace period runs from here."),
    )
    override_level = models.ForeignKey(
        TierLevel, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("manual tier"),
    )
    override_reason = models.CharField(_("manual tier reason"), max_length=200, blank=True)
    override_ends_at = models.DateTimeField(_("manual tier ends at"), null=True, blank=True)
    override_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("manual tier set by"),
    )

    class Meta:
        verbose_name = _("member tier")
        verbose_name_plural = _("member tiers")
        permissions = [("set_manual_tier", _("Can set a member's tier by hand"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(override_level__isnull=True) | Q(override_ends_at__isnull=False),
                name="member_tier_override_has_end",
            ),
        ]
        # The dashboard's members by tier: counted by earned level from the index alone, then the
        # few manual tiers in force found through their own.
        indexes = [
            models.Index(fields=["programme", "level"], name="member_tier_by_level"),
            models.Index(fields=["programme", "override_ends_at"], condition=Q(override_level__isnull=False),
                         name="member_tier_overrides"),
        ]

    def __str__(self):
        return f"{self.member} · {self.effective_level(None) or '-'}"

    def override_active(self, at) -> bool:
        """Whether the manual tier applies at `at` (None: ignore the end date, e.g. for display)."""
        return self.override_level_id is not None and (at is None or self.override_ends_at > at)

    def effective_level(self, at) -> TierLevel | None:
        return self.override_level if self.override_active(at) else self.level


class TierChangeKind(models.TextChoices):
    UPGRADE = "upgrade", _("Upgrade")
    DOWNGRADE = "downgrade", _("Downgrade")
    MANUAL = "manual", _("Set by hand")
    OVERRIDE_END = "override_end", _("Manual tier ended")
    PROGRAMME = "programme", _("Moved to a new programme")


class TierChange(models.Model):
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="tier_changes", verbose_name=_("member"))
    from_level = models.ForeignKey(
        TierLevel, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("from")
    )
    to_level = models.ForeignKey(
        TierLevel, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("to")
    )
    kind = models.CharField(_("kind"), max_length=12, choices=TierChangeKind.choices)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    qualifying_value = models.DecimalField(_("qualifying value"), max_digits=14, decimal_places=2)
    at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["member", "-at"], name="tier_change_member_history")]
        triggers = [
            pgtrigger.Protect(name="tier_change_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self):
        return f"{self.member}: {self.from_level or '-'} → {self.to_level or '-'}"

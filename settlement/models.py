"""Settlement between business units and merchants.

* A **clearing rate** is what one point of a business unit is worth between BUs from a date on
  (in the group's time zone); without one, the BU's own point_value_cny applies.
* A **clearing line** is written at posting time (settlement.hooks, an after-post hook) for every
  posting that took points from lots or gave them back: one line per issuing BU, with the points
  and their CNY at the issuer's clearing value frozen at that moment. Append-only.
* A **settlement run** is one month (in the group's time zone) of lines computed from the
  clearing lines, the issuance lots, the mall's write-offs and the points-as-cash payments:
  draft -> closed, forward only. A closed run and its lines are immutable: PostgreSQL triggers
  refuse their UPDATE and DELETE (and new lines for a closed run).

The settlement app never writes ledger rows; these tables are its own.
"""

import pgtrigger
from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from members.models import BusinessUnit, Merchant
from points.models import Posting

CNY = {"max_digits": 14, "decimal_places": 2}
RATE = {"max_digits": 12, "decimal_places": 6}


class ClearingRate(models.Model):
    """A BU's clearing value per point in force from a local date on (the latest one wins)."""

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="clearing_rates", verbose_name=_("business unit")
    )
    value_cny = models.DecimalField(_("value of one point (CNY)"), validators=[MinValueValidator(0)], **RATE)
    effective_from = models.DateField(_("effective from"), help_text=_("First day (group time zone) the rate applies."))
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("clearing rate")
        verbose_name_plural = _("clearing rates")
        ordering = ["business_unit", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["business_unit", "effective_from"], name="clearing_rate_one_per_day"),
            models.CheckConstraint(condition=Q(value_cny__gte=0), name="clearing_rate_non_negative"),
        ]

    def __str__(self):
        return f"{self.business_unit} {self.value_cny} @ {self.effective_from}"


class ClearingKind(models.TextChoices):
    REDEMPTION = "redemption", _("Redemption")
    BREAKAGE = "breakage", _("Breakage (expiry)")
    REVERSAL = "reversal", _("Reversal (cancel of a spend)")
    RECLAIM = "reclaim", _("Reclaim (refund of an earn)")
    ADJUSTMENT = "adjustment", _("Manual adjustment")
    BREAKAGE_REVERSAL = "breakage_reversal", _("Breakage reversal (refund of expired points)")


class ClearingLine(models.Model):
    """What one posting took from (points > 0) or gave back to (points < 0) the lots of one
    issuing BU, valued at the issuer's clearing rate frozen at posting time."""

    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="+", verbose_name=_("posting"))
    kind = models.CharField(_("kind"), max_length=20, choices=ClearingKind.choices)
    issuer = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="+", verbose_name=_("issuer"))
    redeemer = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("redeemer"),
        help_text=_("The posting's business unit; empty for an expiry."),
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("merchant")
    )
    points = models.BigIntegerField(_("points"), help_text=_("Taken from the issuer's lots: + taken, - given back."))
    rate_cny = models.DecimalField(_("clearing value per point (CNY)"), **RATE)
    amount_cny = models.DecimalField(_("amount (CNY)"), **CNY)
    created_at = models.DateTimeField(_("booked at"), db_index=True, help_text=_("The posting's booking time."))

    class Meta:
        verbose_name = _("clearing line")
        verbose_name_plural = _("clearing lines")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["posting", "issuer", "kind"], name="clearing_line_one_per_posting_issuer_kind"),
            models.CheckConstraint(condition=~Q(points=0), name="clearing_line_points_non_zero"),
        ]
        triggers = [pgtrigger.Protect(name="clearing_line_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self):
        return f"#{self.posting_id} {self.kind} {self.points:+d}"


class FlowDay(models.Model):
    """One day's clearing lines of redemptions and their reversals (net) from one issuer's lots
    at one redeeming business unit and merchant: the dashboard's cross-BU flow. The day is the
    lines' booking day in the group's time zone, as the settlement matrix's month is; rebuilt
    from the lines by day (settlement.flow_days)."""

    day = models.DateField(_("day"))
    issuer = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="+", verbose_name=_("issuer"),
                               db_index=False)
    redeemer = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="+", verbose_name=_("redeemer"),
                                 db_index=False)
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("merchant"),
        db_index=False,
    )
    points = models.BigIntegerField(_("points"))
    amount_cny = models.DecimalField(_("amount (CNY)"), max_digits=18, decimal_places=2)

    class Meta:
        verbose_name = _("daily cross-BU flow")
        verbose_name_plural = _("daily cross-BU flows")
        constraints = [
            models.UniqueConstraint(
                "day", "issuer", "redeemer", Coalesce("merchant", 0), name="flow_day_unique_cell"
            ),
        ]


class RunStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    CLOSED = "closed", _("Closed")


class SettlementRun(models.Model):
    """One month's settlement. `period` is the first day of the month (group time zone)."""

    period = models.DateField(_("period"), unique=True, help_text=_("First day of the month."))
    status = models.CharField(_("status"), max_length=10, choices=RunStatus.choices, default=RunStatus.DRAFT)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    computed_at = models.DateTimeField(_("computed at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("closed by"),
    )

    class Meta:
        verbose_name = _("settlement run")
        verbose_name_plural = _("settlement runs")
        ordering = ["-period"]
        permissions = [
            ("close_settlementrun", _("Can close a settlement run")),
            ("export_settlement", _("Can export settlement runs")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="settlement_run_status_known"),
            models.CheckConstraint(
                condition=(Q(status=RunStatus.CLOSED) & Q(closed_at__isnull=False))
                | (Q(status=RunStatus.DRAFT) & Q(closed_at__isnull=True)),
                name="settlement_run_closed_has_time",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="settlement_run_closed_immutable", operation=pgtrigger.Update | pgtrigger.Delete,
                condition=pgtrigger.Q(old__status="closed"),
            ),
        ]

    def __str__(self):
        return f"{self.period:%Y-%m} ({self.get_status_display()})"


class RunEvent(models.Model):
    run = models.ForeignKey(SettlementRun, on_delete=models.PROTECT, related_name="events", verbose_name=_("run"))
    action = models.CharField(_("action"), max_length=12)
    from_status = models.CharField(_("from"), max_length=10, choices=RunStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=10, choices=RunStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("settlement run event")
        verbose_name_plural = _("settlement run events")
        ordering = ["id"]
        triggers = [pgtrigger.Protect(name="settlement_run_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]


class LineKind(models.TextChoices):
    ISSUANCE = "issuance", _("Issuance")
    REDEMPTION = "redemption", _("Redemption of the BU's points")
    RECLAIM = "reclaim", _("Reclaimed by refunds")
    CLEARING = "clearing", _("Inter-BU clearing")
    BREAKAGE = "breakage", _("Breakage")
    ADJUSTMENT = "adjustment", _("Adjustment")
    COUPON = "coupon", _("Merchant coupon reimbursement")
    PAYMENT = "payment", _("Points-as-cash payment to a merchant")
    BREAKAGE_REVERSAL = "breakage_reversal", _("Breakage reversed by refunds of expired points")
    CO_FUNDING = "co_funding", _("Co-funding owed by a merchant")
    CO_FUNDED_BREAKAGE = "co_funded_breakage", _("Breakage of co-funded points")
    LATE = "late", _("Late posting into a closed period")


class SourceKind(models.TextChoices):
    POSTING = "posting", _("Posting")
    WRITE_OFF = "write_off", _("Write-off")
    PAYMENT_EVENT = "payment_event", _("Payment event")


class SettlementLine(models.Model):
    """One line of a run: `payer` owes `payee` (a BU) or `merchant` the amount; for issuance,
    breakage and adjustment lines the BU is `payer` (its liability) and nobody is paid.
    Traceable: how many source rows (postings, write-offs, payment events) and the first and last."""

    run = models.ForeignKey(SettlementRun, on_delete=models.PROTECT, related_name="lines", verbose_name=_("run"))
    kind = models.CharField(_("kind"), max_length=20, choices=LineKind.choices)
    payer = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="+", verbose_name=_("payer"))
    payee = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("payee")
    )
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("merchant")
    )
    points = models.BigIntegerField(_("points"), default=0)
    amount_cny = models.DecimalField(_("amount (CNY)"), **CNY)
    source = models.CharField(_("source"), max_length=16, choices=SourceKind.choices)
    source_count = models.PositiveIntegerField(_("sources"))
    first_source_id = models.BigIntegerField(_("first source"))
    last_source_id = models.BigIntegerField(_("last source"))
    original_period = models.DateField(
        _("original period"), null=True, blank=True,
        help_text=_("For a late line: the closed period the posting is dated in (first day of the month)."),
    )
    original_posting_id = models.BigIntegerField(
        _("original posting"), null=True, blank=True,
        help_text=_("For a late line: the posting it corrects (the reversed posting, or the late posting itself)."),
    )

    class Meta:
        verbose_name = _("settlement line")
        verbose_name_plural = _("settlement lines")
        ordering = ["run", "kind", "payer", "payee", "merchant", "id"]
        indexes = [models.Index(fields=["payer", "run"], name="settlement_line_payer"),
                   models.Index(fields=["payee", "run"], name="settlement_line_payee")]
        triggers = [
            pgtrigger.Trigger(
                name="settlement_line_closed_immutable",
                operation=pgtrigger.Insert | pgtrigger.Update | pgtrigger.Delete,
                when=pgtrigger.Before,
                func="""
                    IF TG_OP <> 'INSERT' AND (SELECT status FROM settlement_settlementrun WHERE id = OLD.run_id) = 'closed'
                       OR TG_OP <> 'DELETE' AND (SELECT status FROM settlement_settlementrun WHERE id = NEW.run_id) = 'closed' THEN
                        RAISE EXCEPTION 'settlement line of a closed run: %', TG_OP USING ERRCODE = 'insufficient_privilege';
                    END IF;
                    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
                    RETURN NEW;
                """,
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount_cny}"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ExportFormat(models.TextChoices):
    XLSX = "xlsx", "XLSX"
    CSV = "csv", "CSV"


class ExportContent(models.TextChoices):
    LINES = "lines", _("The run's lines")
    CLEARING = "clearing", _("The period's clearing lines (one per posting and issuer)")


class ExportJob(models.Model):
    """A finance export written in the background (settlement.tasks.export_write): queued ->
    running -> done or failed, forward only; `rows_done` of `rows_total` is its progress and
    `file` (in the default storage) the download once done."""

    run = models.ForeignKey(SettlementRun, on_delete=models.PROTECT, related_name="exports", verbose_name=_("run"))
    content = models.CharField(_("content"), max_length=8, choices=ExportContent.choices, default=ExportContent.CLEARING)
    format = models.CharField(_("format"), max_length=4, choices=ExportFormat.choices)
    status = models.CharField(_("status"), max_length=8, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    rows_total = models.PositiveIntegerField(_("rows"), default=0)
    rows_done = models.PositiveIntegerField(_("rows written"), default=0)
    file = models.FileField(_("file"), upload_to="settlement/exports/", blank=True)
    error = models.CharField(_("error"), max_length=500, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("settlement export")
        verbose_name_plural = _("settlement exports")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(rows_done__lte=F("rows_total")), name="export_job_progress_within_total"),
            models.CheckConstraint(
                condition=Q(status__in=[ExportStatus.DONE, ExportStatus.FAILED], finished_at__isnull=False)
                | (Q(status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING]) & Q(finished_at__isnull=True)),
                name="export_job_finished_has_time",
            ),
        ]

    def __str__(self):
        return f"{self.run} {self.format} ({self.get_status_display()})"

    @property
    def progress_percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        return self.rows_done * 100 // self.rows_total if self.rows_total else 0

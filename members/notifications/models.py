"""Notification templates and the notification log.

A log row is one message on one channel, created when the message is queued and unique by its
key (e.g. `statement:42:2026-03:email`): a rerun, an overlapping job or a redelivered task
finds the row and sends nothing twice. Its status moves queued -> sending -> delivered, or
sending -> retrying (a failed attempt, retried with backoff) -> ... -> failed (given up);
a message the member did not consent to, or has no address for, is logged as skipped. A row
stores the rendered message, so a retry sends exactly what was first rendered.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from members.models import Member, MemberLanguage

__all__ = [
    "Channel", "NotificationKind", "NotificationLog", "NotificationStatus", "NotificationTemplate", "SkipReason",
]


class NotificationKind(models.TextChoices):
    STATEMENT = "statement", _("Monthly statement")
    EXPIRY_REMINDER = "expiry_reminder", _("Expiry reminder")
    UPGRADE_NUDGE = "upgrade_nudge", _("Near-upgrade nudge")
    WINBACK = "winback", _("Win-back")
    POINTS_CREDITED = "points_credited", _("Points credited")
    TIER_DOWNGRADE = "tier_downgrade", _("Tier downgrade warning")


# Kinds that promote rather than inform: they also need the member's marketing consent.
MARKETING_KINDS = {NotificationKind.UPGRADE_NUDGE, NotificationKind.WINBACK}


class Channel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    SMS = "sms", _("SMS")


class NotificationStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    DELIVERED = "delivered", _("Delivered")
    RETRYING = "retrying", _("Failed, will retry")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


class SkipReason(models.TextChoices):
    NO_CONSENT = "no_consent", _("No consent")
    NO_ADDRESS = "no_address", _("No address")
    INACTIVE = "inactive", _("Member not active")


class NotificationTemplate(models.Model):
    """An operator's version of a message template; without one the file under
    templates/notifications/<kind>/ is used. Django template language; the context is the
    message's (see docs/statements.md)."""

    kind = models.CharField(_("kind"), max_length=20, choices=NotificationKind.choices)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    language = models.CharField(_("language"), max_length=10, choices=MemberLanguage.choices)
    subject = models.CharField(_("subject"), max_length=200, blank=True, help_text=_("E-mail only."))
    body_text = models.TextField(_("text"), help_text=_("The SMS, or the plain-text part of the e-mail."))
    body_html = models.TextField(_("HTML"), blank=True, help_text=_("E-mail only."))
    is_active = models.BooleanField(_("active"), default=True, help_text=_("Inactive: the default template is used."))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("notification template")
        verbose_name_plural = _("notification templates")
        ordering = ["kind", "channel", "language"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "channel", "language"], name="notification_template_unique"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} · {self.get_channel_display()} · {self.language}"


class NotificationLog(models.Model):
    key = models.CharField(_("key"), max_length=160, unique=True)
    run = models.CharField(_("run"), max_length=64, help_text=_("The job run that queued it, e.g. statement:2026-03."))
    kind = models.CharField(_("kind"), max_length=20, choices=NotificationKind.choices)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="notifications", verbose_name=_("member"), db_index=False
    )
    recipient = models.CharField(_("recipient"), max_length=254, blank=True)
    language = models.CharField(_("language"), max_length=10)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body_text = models.TextField(_("text"), blank=True)
    body_html = models.TextField(_("HTML"), blank=True)
    context = models.JSONField(_("context"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=NotificationStatus.choices)
    skip_reason = models.CharField(_("skipped because"), max_length=12, choices=SkipReason.choices, blank=True)
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    not_before = models.DateTimeField(_("not before"), help_text=_("SMS in quiet hours wait for the morning."))
    dispatched_at = models.DateTimeField(_("handed to a worker at"), null=True, blank=True)
    created_at = models.DateTimeField(_("queued at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notification log")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status=NotificationStatus.SKIPPED, skip_reason__in=SkipReason.values)
                | (~Q(status=NotificationStatus.SKIPPED) & Q(skip_reason="")),
                name="notification_skip_has_reason",
            ),
            models.CheckConstraint(
                condition=Q(status=NotificationStatus.DELIVERED, sent_at__isnull=False)
                | (~Q(status=NotificationStatus.DELIVERED) & Q(sent_at__isnull=True)),
                name="notification_delivered_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "kind", "-id"], name="notification_member_kind"),
            models.Index(fields=["run", "status"], name="notification_run_status"),
            models.Index(fields=["not_before"], condition=Q(status="queued"), name="notification_queued_due"),
        ]

    def __str__(self):
        return self.key

"""A bulk import of members and opening balances: the file, its mode (dry run or real), where
it has got to, and its report. Imported by points.models (its last lines): it belongs to the
points app and its migrations.

`next_row` (the file row to go on from) is the import's cursor: every chunk of the file is written, with the cursor moved
past it, in one transaction, so a stopped import resumes exactly where it stopped.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

__all__ = ["ImportStatus", "MemberImport"]


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class MemberImport(models.Model):
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/", blank=True)
    source_path = models.CharField(
        _("server path"), max_length=500, blank=True, help_text=_("A file on the server (the import_members command).")
    )
    file_name = models.CharField(_("file name"), max_length=255)
    digest = models.CharField(_("SHA-256 of the file"), max_length=64)
    dry_run = models.BooleanField(_("dry run"), default=True, help_text=_("Check every row and write nothing."))
    status = models.CharField(_("status"), max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    total_rows = models.PositiveIntegerField(_("rows in the file"), default=0)
    rows_done = models.PositiveIntegerField(_("rows processed"), default=0)
    next_row = models.PositiveIntegerField(
        _("next file row"), default=2, help_text=_("Where the import resumes: the file row after the last chunk written.")
    )
    created = models.PositiveIntegerField(_("members created"), default=0)
    updated = models.PositiveIntegerField(_("members updated"), default=0)
    skipped = models.PositiveIntegerField(_("members unchanged"), default=0)
    error_count = models.PositiveIntegerField(_("rows refused"), default=0)
    openings_posted = models.PositiveIntegerField(_("opening balances posted"), default=0)
    openings_replayed = models.PositiveIntegerField(_("opening balances already posted"), default=0)
    opening_points = models.BigIntegerField(_("opening points posted"), default=0)
    errors = models.JSONField(
        _("refused rows"), default=list, blank=True,
        help_text=_("The first refused rows: file row number (the header is row 1) and each reason."),
    )
    failure = models.TextField(_("failure"), blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("member import")
        verbose_name_plural = _("member imports")
        ordering = ["-id"]
        permissions = [("import_members", _("Can import members and opening balances"))]
        constraints = [
            models.CheckConstraint(condition=Q(rows_done__lte=F("total_rows")), name="member_import_cursor_within_file"),
        ]

    def __str__(self):
        return f"{self.file_name} ({self.get_status_display()})"

    @property
    def percent(self) -> int:
        return 100 if not self.total_rows else min(100, self.rows_done * 100 // self.total_rows)

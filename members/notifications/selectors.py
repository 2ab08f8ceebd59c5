"""Reads of notifications: the rows due for sending and the run report."""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Max, Min, Q

from members.notifications.models import NotificationLog, NotificationStatus


def logs_due(*, now: datetime, dispatched_before: datetime, after_id: int, limit: int,
             retrying_before: datetime | None = None) -> list[int]:
    """Ids of the rows to hand to the send task, after `after_id`, in id order: queued rows
    whose time has come (quiet-hours SMS in the morning, rows whose first send was lost) and
    that were not handed over since `dispatched_before`; with `retrying_before`, also rows
    retrying whose last attempt is older than that (their retry was lost)."""
    due = Q(status=NotificationStatus.QUEUED, not_before__lte=now) & (
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=dispatched_before)
    )
    if retrying_before is not None:
        due |= Q(status=NotificationStatus.RETRYING, updated_at__lt=retrying_before)
    return list(
        NotificationLog.objects.filter(due, pk__gt=after_id).order_by("id").values_list("id", flat=True)[:limit]
    )


@dataclass
class RunReport:
    run: str
    first_queued_at: datetime
    last_updated_at: datetime
    # {kind: {channel: {status or "skipped:<reason>": count}}}
    counts: dict = field(default_factory=dict)

    def total(self, status: str) -> int:
        return sum(
            count for by_channel in self.counts.values() for by_status in by_channel.values()
            for key, count in by_status.items() if key == status or key.startswith(f"{status}:")
        )

    @property
    def sent(self) -> int:
        return self.total(NotificationStatus.DELIVERED)

    @property
    def skipped_for_consent(self) -> int:
        return self.total("skipped:no_consent")

    @property
    def skipped(self) -> int:
        return self.total(NotificationStatus.SKIPPED)

    @property
    def failed(self) -> int:
        return self.total(NotificationStatus.FAILED) + self.total(NotificationStatus.RETRYING)

    @property
    def waiting(self) -> int:
        return self.total(NotificationStatus.QUEUED) + self.total(NotificationStatus.SENDING)


def run_reports(*, runs: list[str] | None = None, limit: int = 50) -> list[RunReport]:
    """What each job run queued, by kind, channel and status (skipped by reason): sent,
    skipped for consent, failed. The latest `limit` runs, or the ones named."""
    logs = NotificationLog.objects.order_by()
    if runs is not None:
        logs = logs.filter(run__in=runs)
    else:
        latest = list(
            logs.values("run").annotate(last=Max("id")).order_by("-last").values_list("run", flat=True)[:limit]
        )
        logs = logs.filter(run__in=latest)
    rows = logs.values("run", "kind", "channel", "status", "skip_reason").annotate(
        count=Count("id"), first=Min("created_at"), last=Max("updated_at")
    )
    reports: dict[str, RunReport] = {}
    for row in rows:
        report = reports.setdefault(row["run"], RunReport(run=row["run"], first_queued_at=row["first"],
                                                          last_updated_at=row["last"]))
        report.first_queued_at = min(report.first_queued_at, row["first"])
        report.last_updated_at = max(report.last_updated_at, row["last"])
        status = row["status"] + (f":{row['skip_reason']}" if row["skip_reason"] else "")
        by_status = report.counts.setdefault(row["kind"], {}).setdefault(row["channel"], {})
        by_status[status] = by_status.get(status, 0) + row["count"]
    return sorted(reports.values(), key=lambda report: report.last_updated_at, reverse=True)


def member_latest_context(*, member_id: int, kind: str) -> dict | None:
    """The context of the member's latest message of this kind (the console's preview uses it)."""
    log = NotificationLog.objects.filter(member_id=member_id, kind=kind).order_by("-id").only("context").first()
    return log.context if log is not None else None

"""Reminders read from the ledger and sent through members.notifications: expiry reminders,
near-upgrade nudges and win-back. Each job works in batches (a cursor on wallet or member ids)
and keys every message deterministically, so a rerun or an overlapping run sends nothing twice.

* Expiry reminder, `expiry:<member>:<expiry day>:<offset>`: for each offset in
  NOTIFICATIONS_EXPIRY_REMINDER_DAYS (e.g. 30 and 7), the members whose points expire at the end
  of the day `offset` days from the run day, with the free points (not spent, not held) that
  expire then. Points spent since are not remaining any more: no reminder when none are left.
* Near-upgrade nudge, `upgrade:<member>:<next tier>:<month>`: members who earned on the day
  before the run whose distance to the next tier (the tier progress provider of
  points.policies) is at most NOTIFICATIONS_UPGRADE_NUDGE_DISTANCE; once a month per tier.
* Win-back, `winback:<member>:<month>`: members with points and no earn or spend for
  NOTIFICATIONS_WINBACK_DAYS; at most once a month.
Nudges and win-back are marketing: they also need the member's marketing consent.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Sum
from django.utils import translation

from members.models import Member, MemberStatus
from members.notifications.models import NotificationKind
from members.notifications.services import (
    MEMBER_FIELDS_SQL, QUEUE_MEMBER_COLUMNS, Message, app_link, member_fields, notifications_queue,
    notifications_queue_select, notifications_send,
)
from points.models import Lot, Posting, PostingKind, Wallet
from points.policies import member_tier_progress
from points.statements.messages import tier_line, tier_snapshot
from points.timeutils import end_of_local_day, start_of_local_day


@dataclass(frozen=True)
class ReminderBatch:
    messages: int
    queued: int
    cursor: int | None


def _queue(messages: list[Message]) -> int:
    with transaction.atomic(durable=True):
        log_ids = notifications_queue(messages=messages)
        notifications_send(log_ids=log_ids)
    return len(log_ids)


def _members(member_ids) -> dict[int, Member]:
    return Member.objects.in_bulk(list(member_ids))


# An expiry reminder's context (what the portable path builds in Python) for each due member.
EXPIRY_MESSAGES = """
SELECT m.id AS member_id, 'expiry:' || m.id || %(key_suffix)s AS key, {member_columns},
    jsonb_build_object({member_fields}, 'points', due.points, 'days', %(days)s::int,
                       'expires_on', %(expires_on)s::text, 'expires_at', %(expires_at)s::text,
                       'link', %(link)s::text) AS context
FROM members_member m
JOIN unnest(%(members)s::bigint[], %(points)s::bigint[]) AS due(member_id, points) ON due.member_id = m.id
WHERE m.id = ANY(%(members)s::bigint[])
"""


def expiry_reminders_batch(
    *, run_day: date, offset: int, after_wallet_id: int = 0, batch_size: int | None = None
) -> ReminderBatch:
    """Queue the expiry reminders `offset` days ahead of `run_day` for the next batch of members' wallets.

    The due wallets are read in one aggregate over the open lots of that day (the partial index
    of open lots by expiry); on PostgreSQL their messages' contexts are then built in the
    database and the messages of members who get them on no channel logged there
    (notifications_queue_select), elsewhere in Python."""
    batch_size = batch_size or settings.STATEMENTS_BATCH_SIZE
    expiry_day = run_day + timedelta(days=offset)
    due = list(
        Lot.objects.filter(remaining__gt=0)  # lets the partial index of open lots by expiry serve the day
        .filter(
            wallet_id__gt=after_wallet_id, wallet__member__isnull=False, remaining__gt=F("held"),
            expires_at__gte=start_of_local_day(expiry_day), expires_at__lt=start_of_local_day(expiry_day + timedelta(days=1)),
        )
        .order_by("wallet_id").values_list("wallet_id", "wallet__member_id")
        .annotate(points=Sum(F("remaining") - F("held")))[:batch_size]
    )
    run, key_suffix = f"expiry:{run_day.isoformat()}", f":{expiry_day.isoformat()}:{offset}"
    context = {"days": offset, "expires_on": expiry_day.isoformat(),
               "expires_at": end_of_local_day(expiry_day).isoformat(), "link": app_link("points")}
    queued = 0
    if due and connection.vendor == "postgresql":
        with transaction.atomic(durable=True):
            log_ids = notifications_queue_select(
                kind=NotificationKind.EXPIRY_REMINDER, run=run,
                source=EXPIRY_MESSAGES.format(member_columns=QUEUE_MEMBER_COLUMNS, member_fields=MEMBER_FIELDS_SQL),
                params={**context, "key_suffix": key_suffix,
                        "members": [member_id for _wallet, member_id, _points in due],
                        "points": [points for _wallet, _member_id, points in due]},
            )
            notifications_send(log_ids=log_ids)
        queued = len(log_ids)
    elif due:
        members = _members(member_id for _wallet, member_id, _points in due)
        queued = _queue([
            Message(member=members[member_id], kind=NotificationKind.EXPIRY_REMINDER, run=run,
                    key=f"expiry:{member_id}{key_suffix}",
                    context={**member_fields(members[member_id]), "points": points, **context})
            for _wallet, member_id, points in due
        ])
    cursor = due[-1][0] if len(due) == batch_size else None
    return ReminderBatch(messages=len(due), queued=queued, cursor=cursor)


def upgrade_nudges_batch(*, run_day: date, after_member_id: int = 0, batch_size: int | None = None, now=None) -> ReminderBatch:
    """Queue the near-upgrade nudges for the next batch of members who earned on the day before
    `run_day`, as of `now` (the end of that day by default)."""
    batch_size = batch_size or settings.STATEMENTS_BATCH_SIZE
    day = run_day - timedelta(days=1)
    at = now or end_of_local_day(day)
    member_ids = list(
        Posting.objects.filter(
            kind=PostingKind.EARN, created_at__gte=start_of_local_day(day), created_at__lt=start_of_local_day(run_day),
            wallet__member_id__gt=after_member_id, wallet__member__status=MemberStatus.ACTIVE,
        )
        .order_by("wallet__member_id").values_list("wallet__member_id", flat=True).distinct()[:batch_size]
    )
    distance = Decimal(settings.NOTIFICATIONS_UPGRADE_NUDGE_DISTANCE)
    members = _members(member_ids)
    messages = []
    for member_id in member_ids:
        progress = member_tier_progress(member_id, at)
        if progress is None or progress.next_code is None or progress.remaining is None:
            continue
        if not 0 < progress.remaining <= distance:
            continue
        member, tier = members[member_id], tier_snapshot(progress)
        with translation.override(member.language):
            line = tier_line(tier)
        messages.append(Message(
            member=member, kind=NotificationKind.UPGRADE_NUDGE, run=f"upgrade:{run_day.isoformat()}",
            key=f"upgrade:{member_id}:{progress.next_code}:{run_day:%Y-%m}",
            context={**member_fields(member), "tier": tier, "tier_line": line, "remaining": tier["remaining"],
                     "next_tier": progress.next_name, "link": app_link("tier")},
        ))
    queued = _queue(messages) if messages else 0
    cursor = member_ids[-1] if len(member_ids) == batch_size else None
    return ReminderBatch(messages=len(messages), queued=queued, cursor=cursor)


def winback_batch(*, run_day: date, after_wallet_id: int = 0, batch_size: int | None = None) -> ReminderBatch:
    """Queue the win-back messages for the next batch of dormant wallets: points left, an
    active member, and no earn or spend that occurred in the NOTIFICATIONS_WINBACK_DAYS days
    before `run_day`."""
    batch_size = batch_size or settings.STATEMENTS_BATCH_SIZE
    days = settings.NOTIFICATIONS_WINBACK_DAYS
    since = start_of_local_day(run_day - timedelta(days=days))
    recent = Posting.objects.filter(wallet_id=OuterRef("pk"), kind__in=[PostingKind.EARN, PostingKind.SPEND],
                                    occurred_at__gte=since)
    wallets = list(
        Wallet.objects.filter(pk__gt=after_wallet_id, balance__gt=0, member__status=MemberStatus.ACTIVE,
                              member__enrolled_at__lt=since)
        .filter(~Exists(recent)).order_by("pk").values_list("pk", "member_id", "balance")[:batch_size]
    )
    members = _members(member_id for _wallet_id, member_id, _balance in wallets)
    messages = [
        Message(
            member=members[member_id], kind=NotificationKind.WINBACK, run=f"winback:{run_day:%Y-%m}",
            key=f"winback:{member_id}:{run_day:%Y-%m}",
            context={**member_fields(members[member_id]), "balance": balance, "days": days,
                     "link": app_link("")},
        )
        for _wallet_id, member_id, balance in wallets
    ]
    queued = _queue(messages) if messages else 0
    cursor = wallets[-1][0] if len(wallets) == batch_size else None
    return ReminderBatch(messages=len(messages), queued=queued, cursor=cursor)

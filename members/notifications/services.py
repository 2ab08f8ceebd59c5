"""Writes of notifications: queue (with consent, addresses and quiet hours), deliver, retry.

Queueing a message writes one log row per channel, keyed `<message key>:<channel>` and inserted
with ON CONFLICT DO NOTHING: the key is deterministic (e.g. `statement:42:2026-03`), so queueing
the same message again, from a rerun or from two jobs at once, writes nothing and sends nothing.
Consent is checked then: e-mail needs `consent_email` and an address, SMS `consent_sms`;
nudges and win-back (MARKETING_KINDS) also need `consent_marketing`; a member who is not active
gets nothing. What is not sent is still logged, as skipped with the reason (the run report
counts them).

Delivering claims the row first (queued or retrying -> sending, one conditional UPDATE), so of
two workers given the same row one sends and the other does nothing; then sends and records
delivered, or records the error as retrying (the task retries with backoff, then gives up:
failed). A crash between the claim and the record leaves the row `sending` and it is not sent
again by itself: a member getting a message twice is worse than an operator retrying one.

Quiet hours (settings.NOTIFICATIONS_SMS_QUIET_HOURS, "21:00-08:00" in the group's time zone):
an SMS due then waits (`not_before`) for the end of the quiet hours; the sweep task sends it.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.template import TemplateSyntaxError
from django.utils import timezone

from members.models import Member, MemberStatus
from members.notifications.channels import channel_send
from members.notifications.models import (
    MARKETING_KINDS,
    Channel,
    NotificationLog,
    NotificationStatus,
    NotificationTemplate,
    SkipReason,
)
from members.notifications.rendering import message_render

logger = logging.getLogger(__name__)

SENDABLE = (NotificationStatus.QUEUED, NotificationStatus.RETRYING)


@dataclass(frozen=True)
class Message:
    """One message to a member: what (`kind`, and the `context` its templates are rendered
    with), which job run queued it (`run`, for the report) and its deterministic `key`."""

    member: Member
    kind: str
    key: str
    run: str
    context: dict


def member_fields(member: Member) -> dict:
    """What every message's context says of the member: how to address them, their card."""
    return {"name": member.name or member.phone[-4:], "card_no_tail": member.card_no[-4:]}


# member_fields in SQL, over members_member AS m: its pairs of a jsonb_build_object.
MEMBER_FIELDS_SQL = "'name', CASE WHEN m.name <> '' THEN m.name ELSE right(m.phone, 4) END, 'card_no_tail', right(m.card_no, 4)"


def app_link(path: str) -> str:
    """A link into the member app (settings.NOTIFICATIONS_LINK_BASE_URL)."""
    return f"{settings.NOTIFICATIONS_LINK_BASE_URL.rstrip('/')}/{path}"


class NotificationFailed(Exception):
    """A send failed; the row is `retrying` with the error. `attempts` counts this one."""

    def __init__(self, error: str, *, attempts: int):
        super().__init__(error)
        self.attempts = attempts


# --- templates -----------------------------------------------------------------------------


def notification_template_save(*, template: NotificationTemplate) -> NotificationTemplate:
    """Save an operator's template (the console checked that it compiles); the next message of
    its kind, channel and language uses it. Messages already queued keep what they rendered."""
    template.full_clean()
    template.save()
    return template


# --- quiet hours ---------------------------------------------------------------------------


def quiet_hours() -> tuple[time, time] | None:
    """settings.NOTIFICATIONS_SMS_QUIET_HOURS ("21:00-08:00") as (start, end); None when empty."""
    value = (settings.NOTIFICATIONS_SMS_QUIET_HOURS or "").strip()
    if not value:
        return None
    start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    return start, end


def sms_allowed_from(now: datetime) -> datetime:
    """`now` outside quiet hours, else the end of the quiet hours (the next morning, group time)."""
    window = quiet_hours()
    if window is None:
        return now
    start, end = window
    local = timezone.localtime(now, timezone.get_default_timezone())
    clock = local.time()
    quiet = (start <= clock or clock < end) if start > end else (start <= clock < end)
    if not quiet:
        return now
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=local.tzinfo)


# --- queue ---------------------------------------------------------------------------------


def _skip_reason(member: Member, kind: str, channel: str) -> str:
    if member.status != MemberStatus.ACTIVE:
        return SkipReason.INACTIVE
    consent = member.consent_email if channel == Channel.EMAIL else member.consent_sms
    if not consent or (kind in MARKETING_KINDS and not member.consent_marketing):
        return SkipReason.NO_CONSENT
    if channel == Channel.EMAIL and not member.email:
        return SkipReason.NO_ADDRESS
    return ""


def _row(message: Message, channel: str, now: datetime) -> NotificationLog:
    member = message.member
    row = NotificationLog(
        key=f"{message.key}:{channel}", run=message.run, kind=message.kind, channel=channel, member=member,
        language=member.language, context=message.context, not_before=now,
        status=NotificationStatus.QUEUED,
    )
    reason = _skip_reason(member, message.kind, channel)
    if reason:
        row.status, row.skip_reason = NotificationStatus.SKIPPED, reason
        return row
    row.recipient = member.email if channel == Channel.EMAIL else member.phone
    if channel == Channel.SMS:
        row.not_before = sms_allowed_from(now)
    try:
        rendered = message_render(kind=message.kind, channel=channel, language=member.language, context=message.context)
    except TemplateSyntaxError as exc:
        # A broken template must not stop the job: the row shows it, an operator's retry re-renders.
        row.status, row.error = NotificationStatus.FAILED, f"template: {exc}"
        return row
    row.subject, row.body_text, row.body_html = rendered.subject, rendered.text, rendered.html
    return row


def notifications_queue(*, messages: list[Message], now: datetime | None = None) -> list[int]:
    """Log rows for each message on each channel (skipped ones included), unless the keys exist.

    Returns the ids of this batch's rows that are queued, due now and not handed to a worker
    lately (new ones, or ones an earlier run left), for `notifications_send`."""
    now = now or timezone.now()
    keys = [f"{message.key}:{channel}" for message in messages for channel in Channel.values]
    existing = set(NotificationLog.objects.filter(key__in=keys).values_list("key", flat=True))
    rows = [
        _row(message, channel, now)
        for message in messages for channel in Channel.values if f"{message.key}:{channel}" not in existing
    ]
    NotificationLog.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    handed_recently = now - timedelta(seconds=settings.NOTIFICATIONS_REDISPATCH_SECONDS)
    return list(
        NotificationLog.objects.filter(key__in=keys, status=NotificationStatus.QUEUED, not_before__lte=now)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=handed_recently))
        .order_by("id").values_list("id", flat=True)
    )


# What notifications_queue_select reads of each member: a source selects these from members_member AS m.
QUEUE_MEMBER_COLUMNS = "m.language, m.status, m.consent_email, m.consent_sms, m.consent_marketing, m.email"
# The skip reason of a channel (see _skip_reason) in SQL, over those columns (m) and channel ch.channel.
SKIP_REASON_SQL = """CASE
    WHEN m.status <> %(q_active)s THEN %(q_inactive)s
    WHEN NOT CASE WHEN ch.channel = %(q_email)s THEN m.consent_email ELSE m.consent_sms END
        OR (%(q_marketing)s AND NOT m.consent_marketing) THEN %(q_no_consent)s
    WHEN ch.channel = %(q_email)s AND COALESCE(m.email, '') = '' THEN %(q_no_address)s
    ELSE '' END"""

# For the transaction: no JIT (per-row subqueries price the statement above its threshold, and
# compiling costs more than running) and a plan made for each call's own arrays.
QUEUE_SETTINGS = "SELECT set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)"

QUEUE_SELECT = """
WITH src AS MATERIALIZED ({source}),
rows AS MATERIALIZED (
    SELECT m.member_id, m.key, m.context, m.language, ch.channel, {reason} AS reason
    FROM src AS m CROSS JOIN unnest(%(q_channels)s::text[]) AS ch(channel)
),
quiet AS (SELECT member_id FROM rows GROUP BY member_id HAVING bool_and(reason <> '')),
logged AS (
    INSERT INTO members_notificationlog (
        key, run, kind, channel, member_id, recipient, language, subject, body_text, body_html, context, status,
        skip_reason, error, attempts, not_before, created_at, updated_at
    )
    SELECT key || ':' || channel, %(q_run)s, %(q_kind)s, channel, member_id, '', language, '', '', '', context,
        %(q_skipped)s, reason, '', 0, %(q_now)s, %(q_now)s, %(q_now)s
    FROM rows WHERE member_id IN (SELECT member_id FROM quiet)
    ON CONFLICT (key) DO NOTHING
)
SELECT member_id, key, context FROM src WHERE member_id NOT IN (SELECT member_id FROM quiet) ORDER BY member_id
"""


def notifications_queue_select(
    *, kind: str, run: str, source: str, params: dict, now: datetime | None = None
) -> list[int]:
    """notifications_queue for the messages a SELECT names, set-based (PostgreSQL): `source`
    selects member_id, key, context (jsonb) and QUEUE_MEMBER_COLUMNS of each message's member,
    with `params` (names not starting with q_).

    The messages of members who get them on no channel (no consent, no address, not active)
    are logged as skipped by one INSERT ... SELECT, their contexts never leaving the database;
    the others go through notifications_queue (rendered in Python). Returns what it returns."""
    now = now or timezone.now()
    sql = QUEUE_SELECT.format(source=source, reason=SKIP_REASON_SQL)
    params = {
        **params, "q_channels": list(Channel.values), "q_run": run, "q_kind": kind, "q_now": now,
        "q_skipped": NotificationStatus.SKIPPED, "q_active": MemberStatus.ACTIVE, "q_inactive": SkipReason.INACTIVE,
        "q_email": Channel.EMAIL, "q_marketing": kind in MARKETING_KINDS, "q_no_consent": SkipReason.NO_CONSENT,
        "q_no_address": SkipReason.NO_ADDRESS,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(QUEUE_SETTINGS)
        cursor.execute(sql, params)
        sendable = cursor.fetchall()
    if not sendable:
        return []
    members = Member.objects.in_bulk([member_id for member_id, _key, _context in sendable])
    messages = [
        Message(member=members[member_id], kind=kind, key=key, run=run, context=json.loads(context))  # jsonb: text
        for member_id, key, context in sendable
    ]
    return notifications_queue(messages=messages, now=now)


def enqueue_send(log_id: int) -> None:
    """Hand one row to the send task (tests replace this to send in-process)."""
    from members.notifications.tasks import notification_send

    notification_send.delay(log_id)


def notifications_send(*, log_ids: list[int]) -> None:
    """Enqueue the sends once the current transaction commits (at once outside one); the rows
    are marked handed over, so the sweep leaves them alone for a while."""
    if log_ids:
        notifications_mark_dispatched(log_ids=log_ids, now=timezone.now())
        transaction.on_commit(lambda: [enqueue_send(log_id) for log_id in log_ids])


def notifications_mark_dispatched(*, log_ids: list[int], now: datetime) -> None:
    NotificationLog.objects.filter(pk__in=log_ids).update(dispatched_at=now)


# --- deliver -------------------------------------------------------------------------------


def notification_deliver(*, log_id: int, now: datetime | None = None) -> str | None:
    """Send one queued (or retrying) row that is due. Returns its new status: delivered;
    queued when an SMS meets quiet hours (it waits for the morning); None when there was
    nothing to send (unknown, already claimed or sent, skipped, not due yet). Raises
    NotificationFailed after recording the error when the channel fails."""
    now = now or timezone.now()
    log = NotificationLog.objects.filter(pk=log_id, status__in=SENDABLE).first()
    if log is None:
        return None
    if log.channel == Channel.SMS:
        allowed = sms_allowed_from(now)
        if allowed > now:
            NotificationLog.objects.filter(pk=log_id, status__in=SENDABLE).update(
                status=NotificationStatus.QUEUED, not_before=max(allowed, log.not_before), updated_at=now
            )
            return NotificationStatus.QUEUED
    if log.not_before > now:
        return None
    claimed = NotificationLog.objects.filter(pk=log_id, status__in=SENDABLE, not_before__lte=now).update(
        status=NotificationStatus.SENDING, attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return None
    try:
        channel_send(log)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        NotificationLog.objects.filter(pk=log_id).update(status=NotificationStatus.RETRYING, error=error,
                                                          updated_at=timezone.now())
        logger.warning("notification %s (%s) failed: %s", log.key, log_id, error)
        raise NotificationFailed(error, attempts=log.attempts + 1) from exc
    NotificationLog.objects.filter(pk=log_id).update(
        status=NotificationStatus.DELIVERED, sent_at=timezone.now(), error="", updated_at=timezone.now()
    )
    return NotificationStatus.DELIVERED


def notification_give_up(*, log_id: int) -> bool:
    """A row whose retries are spent: retrying -> failed (the error stays)."""
    return bool(NotificationLog.objects.filter(pk=log_id, status=NotificationStatus.RETRYING).update(
        status=NotificationStatus.FAILED, updated_at=timezone.now()
    ))


def notifications_retry(*, log_ids: list[int], now: datetime | None = None) -> list[int]:
    """An operator's retry of failed rows: re-render those a broken template left empty, queue
    them again (SMS respecting quiet hours) and enqueue the sends. Returns the ids queued."""
    now = now or timezone.now()
    queued = []
    with transaction.atomic():
        for log in NotificationLog.objects.select_for_update().select_related("member").filter(
            pk__in=log_ids, status=NotificationStatus.FAILED
        ):
            if not log.body_text:
                try:
                    rendered = message_render(kind=log.kind, channel=log.channel, language=log.language, context=log.context)
                except TemplateSyntaxError as exc:
                    log.error = f"template: {exc}"
                    log.save(update_fields=["error", "updated_at"])
                    continue
                log.subject, log.body_text, log.body_html = rendered.subject, rendered.text, rendered.html
            log.status, log.error = NotificationStatus.QUEUED, ""
            log.not_before = sms_allowed_from(now) if log.channel == Channel.SMS else now
            log.save(update_fields=["subject", "body_text", "body_html", "status", "error", "not_before", "updated_at"])
            queued.append(log.pk)
        notifications_send(log_ids=queued)
    return queued

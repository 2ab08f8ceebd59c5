"""Writes for statements: generating a period's statements in batches of members, and queueing
the messages that announce them.

A batch (`statements_generate_batch`) takes the next members by id, computes the figures of
those without a statement yet, inserts the due ones with INSERT ... ON CONFLICT DO NOTHING under
the unique (member, period) constraint, then, in a second short transaction, queues one message
per statement under the deterministic key `statement:<member>:<period>` (members.notifications:
one log row per channel, unique by key) and enqueues the sends on commit. On PostgreSQL both
steps are set-based (points.statements.sql: the figures and the snapshots in one INSERT ...
SELECT, the messages' contexts built in the database); elsewhere (the SQLite demo) the figures
are computed in Python (points.statements.selectors) and the rows written through the ORM.
Every step is idempotent: a rerun, a retried batch or two runs at once write no second
statement and send no second message. A statement is committed before its message is queued,
so a failed send never loses it; a crash between the two leaves the statement and a rerun
queues its message.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from members.notifications.models import NotificationKind
from members.notifications.services import (
    Message, app_link, notifications_queue, notifications_queue_select, notifications_send,
)
from points.policies import members_tier_progress
from points.statements.messages import statement_context, tier_snapshot, unit_names
from points.statements.models import Statement
from points.statements.periods import Period
from points.statements.selectors import statement_batch, statement_figures
from points.statements.sql import statement_messages_select, statements_insert

logger = logging.getLogger(__name__)


class PeriodNotOver(ValueError):
    """A statement is of a month that has ended."""


@dataclass(frozen=True)
class BatchResult:
    members: int
    created: int
    queued: int
    cursor: int | None


STATEMENT_KEY_PREFIX = "statement:"


def statement_message_key(*, member_id: int, period: Period) -> str:
    return f"{STATEMENT_KEY_PREFIX}{member_id}:{period.name}"


def statement_run(period: Period) -> str:
    return f"statement:{period.name}"


def statements_generate_batch(
    *, period: Period, after_member_id: int = 0, through_member_id: int | None = None, batch_size: int | None = None,
) -> BatchResult:
    """Generate the statements of `period` for the next `batch_size` members after
    `after_member_id` (STATEMENTS_BATCH_SIZE by default) and queue their messages.

    Returns the members looked at, the statements created, the messages handed to the send
    task, and the cursor for the next batch (None when no member is left)."""
    if period.end > timezone.now():
        raise PeriodNotOver(f"the period {period} has not ended yet")
    batch_size = batch_size or settings.STATEMENTS_BATCH_SIZE
    batch = statement_batch(period=period, after_member_id=after_member_id, through_member_id=through_member_id,
                            limit=batch_size)
    member_ids = [member_id for member_id, _wallet_id, _stated in batch]
    cursor = member_ids[-1] if len(member_ids) == batch_size else None
    if not member_ids:
        return BatchResult(members=0, created=0, queued=0, cursor=None)
    if connection.vendor == "postgresql":
        pending = [(member_id, wallet_id) for member_id, wallet_id, stated in batch if not stated]
        created = _generate_set_based(period=period, wallets=pending)
    else:
        created = _generate_portable(period=period, member_ids=member_ids)
    queued = statements_announce(period=period, member_ids=member_ids)
    return BatchResult(members=len(member_ids), created=created, queued=queued, cursor=cursor)


def _generate_set_based(*, period: Period, wallets: list[tuple[int, int]]) -> int:
    """PostgreSQL: the figures and the snapshots of these (member id, wallet id) in one INSERT ...
    SELECT (points.statements.sql); the tiers come from the registered provider."""
    if not wallets:
        return 0
    progress = members_tier_progress([member_id for member_id, _wallet_id in wallets], period.end)
    tiers = {member_id: tier_snapshot(info) for member_id, info in progress.items()}
    with transaction.atomic(durable=True):
        return statements_insert(period=period, wallet_ids=[wallet_id for _member_id, wallet_id in wallets],
                                 tiers=tiers, now=timezone.now())


def _generate_portable(*, period: Period, member_ids: list[int]) -> int:
    """Any database: the figures computed in Python, the due statements inserted by the ORM."""
    existing = set(Statement.objects.filter(period=period.name, member_id__in=member_ids).values_list("member_id", flat=True))
    figures = statement_figures(member_ids=[member_id for member_id in member_ids if member_id not in existing], period=period)
    due = [one for one in figures.values() if one.is_due]
    tiers = members_tier_progress([one.member_id for one in due], period.end)
    rows = [
        Statement(
            member_id=one.member_id, period=period.name, period_start=period.start, period_end=period.end,
            tier=tier_snapshot(tiers[one.member_id]), **one.model_fields(),
        )
        for one in due
    ]
    with transaction.atomic(durable=True):
        Statement.objects.bulk_create(rows, ignore_conflicts=True)
    return Statement.objects.filter(period=period.name, member_id__in=member_ids).count() - len(existing)


def statements_announce(*, period: Period, member_ids: list[int]) -> int:
    """Queue the message of each of these members' statements of `period` (those already
    queued are left alone) and enqueue the sends on commit. Returns the sends enqueued.

    On PostgreSQL the contexts are built in the database and the messages of members who get
    them on no channel are logged there (notifications_queue_select); elsewhere every context
    is built in Python (messages.statement_context)."""
    if connection.vendor == "postgresql":
        with transaction.atomic(durable=True):
            source, params = statement_messages_select(period=period, member_ids=member_ids,
                                                       key_prefix=STATEMENT_KEY_PREFIX, link_base=app_link("statements/"))
            log_ids = notifications_queue_select(kind=NotificationKind.STATEMENT, run=statement_run(period),
                                                 source=source, params=params)
            notifications_send(log_ids=log_ids)
        return len(log_ids)
    with transaction.atomic(durable=True):
        statements = list(
            Statement.objects.filter(period=period.name, member_id__in=member_ids).select_related("member").order_by("member_id")
        )
        codes = {code for statement in statements for code in
                 (*statement.earned_by_business_unit, *statement.redeemed_by_business_unit)}
        units = unit_names(codes)
        messages = [
            Message(
                member=statement.member, kind=NotificationKind.STATEMENT, run=statement_run(period),
                key=statement_message_key(member_id=statement.member_id, period=period),
                context=statement_context(statement, units=units),
            )
            for statement in statements
        ]
        log_ids = notifications_queue(messages=messages)
        notifications_send(log_ids=log_ids)
    return len(log_ids)

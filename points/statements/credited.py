""""Points credited" messages: optional per business unit (`BusinessUnit.notify_points_credited`).

An earn at such a unit registers, inside its transaction, an on-commit callback that hands the
posting's id to a celery task (`notify_points_credited`): nothing of the message is read,
rendered or written inside the money transaction, and an earn rolled back sends nothing. The
task queues one message keyed `credited:<posting id>`, so a redelivered task, a retry or two
workers send it once. Consent as for statements (a service message, not marketing).
"""

from django.db import transaction
from django.utils import translation

from members.models import BusinessUnit
from members.notifications.models import NotificationKind
from members.notifications.services import Message, app_link, member_fields, notifications_queue, notifications_send
from points.models import Posting, PostingKind
from points.timeutils import local_date


def credited_message_key(posting_id: int) -> str:
    return f"credited:{posting_id}"


def enqueue_points_credited(posting_id: int) -> None:
    """Hand one earn posting to the task (tests replace this to run it in-process)."""
    from points.statements.tasks import notify_points_credited

    notify_points_credited.delay(posting_id)


def points_credited_on_commit(*, posting: Posting, business_unit: BusinessUnit) -> None:
    """Called by the earn, inside its transaction: when the unit tells its members of points
    credited, send the message once the earn commits. Reads nothing (no query on the hot path)."""
    if business_unit.notify_points_credited and posting.points > 0:
        posting_id = posting.pk
        transaction.on_commit(lambda: enqueue_points_credited(posting_id), robust=True)


def points_credited_queue(*, posting_id: int) -> int:
    """Queue the message of one earn posting (once per posting, by its key) and enqueue its
    sends on commit. Returns the sends enqueued (0 for a posting already announced)."""
    posting = (
        Posting.objects.select_related("wallet__member", "business_unit")
        .filter(pk=posting_id, kind=PostingKind.EARN).first()
    )
    if posting is None:
        return 0
    member = posting.wallet.member
    with translation.override(member.language):
        context = {
            **member_fields(member), "points": posting.points, "business_unit": posting.business_unit.name,
            "occurred_on": local_date(posting.occurred_at).isoformat(), "link": app_link("points"),
        }
    message = Message(
        member=member, kind=NotificationKind.POINTS_CREDITED, key=credited_message_key(posting.pk),
        run=f"credited:{local_date(posting.created_at).isoformat()}", context=context,
    )
    with transaction.atomic(durable=True):
        log_ids = notifications_queue(messages=[message])
        notifications_send(log_ids=log_ids)
    return len(log_ids)

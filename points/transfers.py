"""Transfers between wallets: an organization's distribution of its points to an employee, and
a member's transfer to another member (when the group offers it).

A transfer is the ledger's `transfer_rows`: two postings of kind `transfer` written in one
durable transaction under the locks of both wallets (taken in wallet id order, so two opposite
transfers never deadlock): the sender's posting (under the caller's idempotency key) consumes
its available lots, earliest expiry first; the receiver's (under the system key
`transfer-in:<sender's posting>`) carries each piece as a lot with its issuer, merchant, rule,
expiry, earning and availability times, after repaying the receiver's debt. Only available
points move (not pending, not expired, not held); a frozen sender is refused, a frozen receiver
still receives (as with earns). Spend gates judge members' spends, not transfers.

A member's transfers out of one day of the group's calendar add up to at most
POINTS_MEMBER_TRANSFER_DAILY_LIMIT, counted under the sender's wallet lock, so concurrent
transfers never pass it. A refused transfer writes nothing; a retry under the same key is
judged afresh.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Member, MemberStatus, Organization
from points.earning import validate_points
from points.exceptions import (
    AccountFrozen,
    InsufficientPoints,
    InvalidRecipient,
    MemberInactive,
    NotAnEmployee,
    NotFound,
    TransferLimitExceeded,
    TransfersDisabled,
)
from points.ledger import (
    SYSTEM_SCOPE,
    Idempotency,
    PostingResult,
    free_points,
    organization_wallet_open,
    posting_replay,
    posting_row,
    request_fingerprint,
    run_idempotent,
    transfer_rows,
    wallets_lock,
    write_posting,
)
from points.ledger.holds import spendable_lots_releasing_expired_holds
from points.models import Posting, PostingKind, Wallet
from points.organizations import organization_of_admin
from points.timeutils import local_date, start_of_local_day


@dataclass(frozen=True)
class TransferResult:
    sent: Posting
    received: Posting
    source: Wallet
    target: Wallet
    replayed: bool = False


def received_key(sent: Posting) -> Idempotency:
    """The system key of the receiver's posting: names the sender's posting it pairs with."""
    return Idempotency(scope=SYSTEM_SCOPE, key=f"transfer-in:{sent.pk}")


def _replayed(sent: Posting) -> TransferResult:
    received = Posting.objects.select_related("wallet").get(
        idempotency_scope=SYSTEM_SCOPE, idempotency_key=received_key(sent).key
    )
    return TransferResult(sent=sent, received=received, source=sent.wallet, target=received.wallet, replayed=True)


def transfer_locked(
    *, source: Wallet, target: Wallet, points: int, idempotency: Idempotency | None, fingerprint: str,
    reason: str, actor=None,
) -> TransferResult:
    """The transfer itself, for two wallets the caller has locked, whose key it has looked up."""
    if source.is_frozen:
        raise AccountFrozen()
    now = timezone.now()
    lots = spendable_lots_releasing_expired_holds(wallet=source, now=now, points=points)
    available = free_points(lots)
    if available < points:
        raise InsufficientPoints(available=available, requested=points)
    sent = posting_row(wallet=source, kind=PostingKind.TRANSFER, points=-points, idempotency=idempotency,
                       fingerprint=fingerprint, occurred_at=now, reason=reason, actor=actor)
    received = posting_row(wallet=target, kind=PostingKind.TRANSFER, points=points, idempotency=None,
                           fingerprint="", occurred_at=now, reason=reason, actor=actor)
    sent_rows, received_rows = transfer_rows(
        sent=sent, received=received, source=source, target=target, lots=lots, points=points
    )
    write_posting(sent_rows)
    key = received_key(sent)
    received.idempotency_scope, received.idempotency_key = key.scope, key.key
    received.request_hash = request_fingerprint("transfer-in", sent=sent.pk)
    write_posting(received_rows)
    return TransferResult(sent=sent, received=received, source=source, target=target)


def _transfer(
    *, source_id: int, target_id: int, points: int, idempotency: Idempotency | None, fingerprint: str, reason: str,
    actor=None, check=None,
) -> TransferResult:
    """Lock both wallets in id order, answer a replay, run `check(source)` (a limit), transfer."""

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            wallets = {wallet.pk: wallet for wallet in wallets_lock(wallet_ids=[source_id, target_id])}
            if replay := posting_replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=replay.wallet, replayed=True)
            if check is not None:
                check(wallets[source_id], points)
            result = transfer_locked(source=wallets[source_id], target=wallets[target_id], points=points,
                                     idempotency=idempotency, fingerprint=fingerprint, reason=reason, actor=actor)
            return PostingResult(posting=result.sent, wallet=result.source)

    posted = run_idempotent(idempotency, fingerprint, write)
    if posted.replayed:
        return _replayed(posted.posting)
    sent = posted.posting
    received = Posting.objects.select_related("wallet").get(
        idempotency_scope=SYSTEM_SCOPE, idempotency_key=received_key(sent).key
    )
    return TransferResult(sent=sent, received=received, source=posted.wallet, target=received.wallet)


def _active_member_wallet_id(member_id: int) -> int:
    wallet = Wallet.objects.filter(member_id=member_id).values_list("id", "member__status").first()
    if wallet is None:
        raise NotFound(f"member {member_id} not found")
    if wallet[1] != MemberStatus.ACTIVE:
        raise MemberInactive()
    return wallet[0]


# --- an organization's distributions


def organization_distribute(
    *, admin: Member, member_id: int, points: int, reason: str = "", idempotency: Idempotency | None = None,
) -> TransferResult:
    """An administrator of an organization distributes `points` of its wallet to an employee
    (an active member of the same organization)."""
    validate_points(points)
    organization = organization_of_admin(member=admin)
    employee = Member.objects.filter(pk=member_id).values("organization_id").first()
    if employee is None:
        raise NotFound(f"member {member_id} not found")
    if employee["organization_id"] != organization.pk:
        raise NotAnEmployee()
    target_id = _active_member_wallet_id(member_id)
    source = organization_wallet_open(organization)
    reason = reason or _("distribution of %(organization)s") % {"organization": organization.name}
    fingerprint = request_fingerprint("distribute", organization=organization.pk, member=member_id, points=points,
                                      reason=reason)
    return _transfer(source_id=source.pk, target_id=target_id, points=points, idempotency=idempotency,
                     fingerprint=fingerprint, reason=reason[:200], actor=None)


# --- members' transfers


def member_transferred_today(*, wallet: Wallet, now=None) -> int:
    """Points the wallet transferred out since the start of today (the group's calendar)."""
    start = start_of_local_day(local_date(now or timezone.now()))
    sent = Posting.objects.filter(wallet=wallet, kind=PostingKind.TRANSFER, points__lt=0, occurred_at__gte=start)
    return -(sent.aggregate(total=Sum("points"))["total"] or 0)


def _within_daily_limit(source: Wallet, points: int) -> None:
    limit = settings.POINTS_MEMBER_TRANSFER_DAILY_LIMIT
    used = member_transferred_today(wallet=source)
    if used + points > limit:
        raise TransferLimitExceeded(limit=limit, used=used, requested=points)


def member_transfer(
    *, sender: Member, recipient_phone: str, points: int, reason: str = "", idempotency: Idempotency | None = None,
) -> TransferResult:
    """A member transfers `points` to another member, named by phone, within the daily limit;
    only when the group offers transfers (POINTS_MEMBER_TRANSFERS_ENABLED)."""
    if not settings.POINTS_MEMBER_TRANSFERS_ENABLED:
        raise TransfersDisabled()
    validate_points(points)
    recipient_id = Member.objects.filter(phone=recipient_phone).values_list("id", flat=True).first()
    if recipient_id is None:
        raise InvalidRecipient(_("No member has this phone number."), field="recipient_phone")
    if recipient_id == sender.pk:
        raise InvalidRecipient(_("A member cannot transfer to themself."), field="recipient_phone")
    if sender.status != MemberStatus.ACTIVE:
        raise MemberInactive()
    target_id = _active_member_wallet_id(recipient_id)
    source_id = _active_member_wallet_id(sender.pk)
    reason = reason or _("transfer between members")
    fingerprint = request_fingerprint("transfer", sender=sender.pk, recipient=recipient_id, points=points,
                                      reason=reason)
    return _transfer(source_id=source_id, target_id=target_id, points=points, idempotency=idempotency,
                     fingerprint=fingerprint, reason=reason[:200], check=_within_daily_limit)

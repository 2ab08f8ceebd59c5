"""Every write on the points ledger besides earning (points.earning) and the expiry job
(points.expiry): spend, reverse (refund an earn, cancel a spend), adjust, freeze and unfreeze,
and release an earn's lots held for review.

Each runs in one durable transaction on the pattern of points.ledger: lock the wallet, replay an
earlier request under the same idempotency key, check, build the rows, hand them to the writer.

Refund policy (reversing an earn): the points come first out of the lot the earn created; what
of that lot has expired is reclaimed from the issuer's breakage (its expiry account), not from
the member; then out of the member's other free lots (earliest expiry first, pending ones
included); whatever the member still lacks becomes debt on the wallet. New earnings, positive adjustments and
cancelled spends repay the debt before anything reaches the wallet: a spend cancelled after
the purchase that earned its points was refunded must not hand those points back to spend
again. A balance never goes below zero. Points reserved by a hold are the hold's: a refund
does not take them (they repay the debt when the hold releases them).
"""

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from members.models import BusinessUnit, Merchant
from points.earning import validate_points
from points.exceptions import (
    AccountFrozen,
    InsufficientPoints,
    InvalidPoints,
    NotFound,
    NotReversible,
    ReasonRequired,
    ReversalExceedsOriginal,
)
from points.ledger import (
    Idempotency,
    LotPart,
    PostingResult,
    PostingRows,
    credit_rows,
    debit_rows,
    free_points,
    give_back_rows,
    lots_extend_for_activity,
    open_lots,
    posting_replay,
    posting_row,
    refund_rows,
    request_fingerprint,
    reversed_points,
    run_idempotent,
    wallet_lock,
    wallets_lock,
    write_posting,
    write_wallet_frozen,
)
from points.ledger.holds import spendable_lots_releasing_expired_holds
from points.ledger.writer import write_lots_available
from points.models import Account, Posting, PostingKind, Wallet
from points.policies import AdjustContext, SpendContext, run_adjust_gates, run_spend_gates
from points.rules.engine import LotTerms
from points.timeutils import expiry_after_months

logger = logging.getLogger(__name__)

def points_spend(
    *,
    member_id: int,
    points: int,
    business_unit: BusinessUnit,
    merchant: Merchant | None = None,
    reason: str = "",
    idempotency: Idempotency | None = None,
    actor=None,
) -> PostingResult:
    """Debit available points (not pending, not expired, not held), earliest-expiring lots first.

    The spend gates run first; a spend is a qualifying activity for activity-extended expiry."""
    validate_points(points)
    fingerprint = spend_fingerprint(member_id=member_id, points=points, business_unit=business_unit,
                                    merchant=merchant, reason=reason)

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            wallet = wallet_lock(member_id=member_id)
            if replay := posting_replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=wallet, replayed=True)
            posting = spend_locked(
                wallet=wallet, points=points, business_unit=business_unit, merchant=merchant, reason=reason,
                idempotency=idempotency, fingerprint=fingerprint, actor=actor,
            )
            return PostingResult(posting=posting, wallet=wallet)

    return run_idempotent(idempotency, fingerprint, write)


def spend_fingerprint(*, member_id: int, points: int, business_unit: BusinessUnit, merchant: Merchant | None,
                      reason: str) -> str:
    return request_fingerprint(
        "spend", member=member_id, points=points, bu=business_unit.pk, merchant=merchant.pk if merchant else None,
        reason=reason,
    )


def spend_locked(
    *, wallet: Wallet, points: int, business_unit: BusinessUnit, merchant: Merchant | None = None, reason: str = "",
    idempotency: Idempotency | None = None, fingerprint: str = "", actor=None,
) -> Posting:
    """The spend itself, inside the caller's transaction, for a wallet the caller has locked
    (points.ledger.wallet_lock) and whose key it has looked up: for operations above points that
    spend as one step of their own transaction (a mall order). Raises AccountFrozen,
    InsufficientPoints or a spend gate's refusal; the caller's transaction then writes nothing."""
    validate_points(points)
    if wallet.is_frozen:
        raise AccountFrozen()
    now = timezone.now()
    run_spend_gates(SpendContext(
        operation="spend", member=wallet.member, business_unit=business_unit, merchant=merchant, points=points, at=now,
    ))
    lots = spendable_lots_releasing_expired_holds(wallet=wallet, now=now, points=points)
    available = free_points(lots)
    if available < points:
        raise InsufficientPoints(available=available, requested=points)
    posting = posting_row(
        wallet=wallet, kind=PostingKind.SPEND, points=-points, idempotency=idempotency, fingerprint=fingerprint,
        occurred_at=now, business_unit=business_unit, merchant=merchant, reason=reason, actor=actor,
    )
    movements, touched, entries = debit_rows(
        posting=posting, wallet=wallet, lots=lots, points=points, business_unit=business_unit,
        target_account=Account.REDEMPTION,
    )
    write_posting(PostingRows(posting=posting, wallet=wallet, lots=[], movements=movements, entries=entries,
                              changed_lots=touched))
    lots_extend_for_activity(wallet=wallet, at=now, posting=posting)
    return posting


def _reversible_points(original: Posting) -> int:
    return abs(original.points) - reversed_points(original)


def posting_reverse(
    *,
    posting_id: int,
    points: int | None = None,
    reason: str = "",
    business_unit: BusinessUnit | None = None,
    idempotency: Idempotency | None = None,
    actor=None,
) -> PostingResult:
    """Reverse an earn (a refund) or a spend (a cancel), in full or in part.

    `business_unit`, when given, is the caller's scope: a posting of another BU is not found.
    A refund follows the debt policy of this module; a cancel repays the wallet's debt first,
    then gives the rest back to exactly the lots the spend consumed, the latest-expiring first;
    points whose lot has since expired come back as a new lot (points.ledger.give_back_rows).
    """
    if points is not None:
        validate_points(points)
    original = Posting.objects.filter(pk=posting_id).first()
    if original is None or (business_unit is not None and original.business_unit_id != business_unit.pk):
        raise NotFound(f"transaction {posting_id} not found")
    if original.kind not in (PostingKind.EARN, PostingKind.SPEND):
        raise NotReversible()
    fingerprint = request_fingerprint("reverse", posting=posting_id, points=points, reason=reason)

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            wallet = wallets_lock(wallet_ids=[original.wallet_id])[0]
            if replay := posting_replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=wallet, replayed=True)
            posting = reverse_locked(
                original=original, wallet=wallet, points=points, reason=reason, idempotency=idempotency,
                fingerprint=fingerprint, actor=actor,
            )
            return PostingResult(posting=posting, wallet=wallet)

    return run_idempotent(idempotency, fingerprint, write)


def reverse_locked(
    *, original: Posting, wallet: Wallet, points: int | None = None, reason: str = "",
    idempotency: Idempotency | None = None, fingerprint: str = "", actor=None,
) -> Posting:
    """The reversal itself (see posting_reverse), inside the caller's transaction, for the
    original's wallet, which the caller has locked: for operations above points that reverse as
    one step of their own transaction (a cancelled mall order)."""
    reversible = _reversible_points(original)
    amount = reversible if points is None else points
    if amount <= 0 or amount > reversible:
        raise ReversalExceedsOriginal(reversible=reversible)
    is_refund = original.kind == PostingKind.EARN
    posting = posting_row(
        wallet=wallet, kind=PostingKind.REFUND if is_refund else PostingKind.CANCEL,
        points=-amount if is_refund else amount, idempotency=idempotency, fingerprint=fingerprint,
        business_unit=original.business_unit, merchant=original.merchant, reverses=original, reason=reason,
        actor=actor,
    )
    if is_refund:
        rows = refund_rows(original=original, posting=posting, wallet=wallet, amount=amount)
    else:
        rows = give_back_rows(
            posting=posting, wallet=wallet, taken_by=[original, *original.reversals.all()], amount=amount,
            account=Account.REDEMPTION, business_unit=original.business_unit,
        )
    return write_posting(rows)


def points_adjust(
    *,
    member_id: int,
    points: int,
    business_unit: BusinessUnit,
    reason: str,
    actor,
    idempotency: Idempotency | None = None,
) -> PostingResult:
    """An operator's manual correction: positive credits a new lot (repaying debt first),
    negative takes from any of the member's free lots and is refused if they hold too little.

    The adjust gates of points.policies run first, before the transaction (they may refuse, e.g.
    to ask for a second operator's approval)."""
    if not reason or not reason.strip():
        raise ReasonRequired()
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise InvalidPoints("points must be a non-zero whole number")
    run_adjust_gates(AdjustContext(
        member_id=member_id, points=points, business_unit=business_unit, reason=reason, actor=actor,
        idempotency=idempotency,
    ))
    fingerprint = request_fingerprint("adjust", member=member_id, points=points, bu=business_unit.pk, reason=reason)

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            wallet = wallet_lock(member_id=member_id)
            if replay := posting_replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=wallet, replayed=True)
            posting = posting_row(
                wallet=wallet, kind=PostingKind.ADJUST, points=points, idempotency=idempotency,
                fingerprint=fingerprint, business_unit=business_unit, reason=reason, actor=actor,
            )
            if points > 0:
                now = timezone.now()
                terms = LotTerms(available_at=now, expires_at=expiry_after_months(now, business_unit.expiry_months),
                                 policy=None)
                lots, entries = credit_rows(
                    posting=posting, wallet=wallet, parts=[LotPart(points=points, rule_code="", terms=terms)],
                    business_unit=business_unit, merchant=None, source_account=Account.ADJUSTMENT, earned_at=now,
                )
                rows = PostingRows(posting=posting, wallet=wallet, lots=lots, movements=[], entries=entries,
                                   changed_lots=[])
            else:
                lots = open_lots(wallet, spendable_only=False)
                if free_points(lots) < -points:
                    raise InsufficientPoints(available=free_points(lots), requested=-points)
                movements, touched, entries = debit_rows(
                    posting=posting, wallet=wallet, lots=lots, points=-points, business_unit=business_unit,
                    target_account=Account.ADJUSTMENT,
                )
                rows = PostingRows(posting=posting, wallet=wallet, lots=[], movements=movements, entries=entries,
                                   changed_lots=touched)
            write_posting(rows)
            return PostingResult(posting=posting, wallet=wallet)

    return run_idempotent(idempotency, fingerprint, write)


def lots_release(*, posting_id: int, at: datetime, actor=None) -> list[tuple[int, datetime, datetime]]:
    """Make the lots an earn credited available at `at` (capped at their expiry): points held
    for review, released. Locks the earn's wallet; returns (lot id, available before, available
    now) of every lot moved (none when already available by then), for the caller's record."""
    original = Posting.objects.filter(pk=posting_id, kind=PostingKind.EARN).first()
    if original is None:
        raise NotFound(f"earn {posting_id} not found")
    with transaction.atomic(durable=True):
        wallet = wallets_lock(wallet_ids=[original.wallet_id])[0]
        changes = lots_available_locked(wallet=wallet, posting_id=posting_id, at=at)
    logger.info("lots of earn %s available at %s (by %s): %s", posting_id, at.isoformat(), actor, changes)
    return changes


def lots_available_locked(*, wallet: Wallet, posting_id: int, at: datetime) -> list[tuple[int, datetime, datetime]]:
    """Set when the lots credited by `posting_id`, an earn of `wallet`, become available: `at`,
    capped at each lot's expiry. Later holds them (pending a review), earlier releases them. For
    operations above points that do this as one step of their own transaction; the caller holds
    the wallet's lock (points.ledger.wallet_lock)."""
    if not Posting.objects.filter(pk=posting_id, wallet=wallet, kind=PostingKind.EARN).exists():
        raise NotFound(f"earn {posting_id} not found")
    return write_lots_available(posting_id=posting_id, at=at)


def wallet_freeze_locked(*, wallet: Wallet, reason: str, actor=None) -> bool:
    """wallet_freeze inside the caller's transaction, for a wallet the caller has locked (a rule
    that freezes the account while an earn is written); whether it was not frozen already."""
    if not reason or not reason.strip():
        raise ReasonRequired()
    if wallet.is_frozen:
        return False
    write_wallet_frozen(wallet, frozen=True, reason=reason, actor=actor)
    return True


def wallet_unfreeze_locked(*, wallet: Wallet, reason: str, actor=None) -> bool:
    """wallet_unfreeze inside the caller's transaction, for a wallet the caller has locked (the
    last freeze of a review lifted); whether it was frozen."""
    if not reason or not reason.strip():
        raise ReasonRequired()
    if not wallet.is_frozen:
        return False
    write_wallet_frozen(wallet, frozen=False, reason=reason, actor=actor)
    return True


def wallet_freeze(*, member_id: int, reason: str, actor=None) -> Wallet:
    """Freeze the wallet: spending, holds and captures are refused; earning, refunds and cancels still post."""
    return _wallet_set_frozen(member_id=member_id, frozen=True, reason=reason, actor=actor)


def wallet_unfreeze(*, member_id: int, reason: str, actor=None) -> Wallet:
    return _wallet_set_frozen(member_id=member_id, frozen=False, reason=reason, actor=actor)


def _wallet_set_frozen(*, member_id: int, frozen: bool, reason: str, actor) -> Wallet:
    if not reason or not reason.strip():
        raise ReasonRequired()
    with transaction.atomic(durable=True):
        wallet = wallet_lock(member_id=member_id)
        if wallet.is_frozen != frozen:
            write_wallet_frozen(wallet, frozen=frozen, reason=reason, actor=actor)
    return wallet

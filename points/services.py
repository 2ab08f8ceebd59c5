"""Every write on the points ledger: earn, spend, reverse, expire, adjust, freeze and unfreeze.

Each money-moving service runs in one durable transaction, locks the member's wallet row
first (SELECT ... FOR UPDATE), then checks its idempotency key, then writes the posting, its
entries and its lot changes and updates the cached wallet with `update_fields`.

Idempotency: a write carries a key unique per scope (a partner key, the operators, the system).
The same key with the same request returns the original posting (`replayed=True`) and posts
nothing; the same key with a different request raises IdempotencyConflict. Two racing requests
with one key for one member serialise on the wallet lock; for different members the unique
constraint decides and the loser reads the winner. A request refused for a business reason
(insufficient points, frozen account) stores nothing, so a retry under the same key is judged
afresh: it succeeds once the member has the points.

Refund policy (reversing an earn): the points come first out of the lot the earn created,
then out of the member's other lots (earliest expiry first, pending ones included); whatever
the member no longer has becomes debt on the wallet. New earnings and positive adjustments
repay the debt before anything reaches the wallet. A balance never goes below zero.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from members.models import BusinessUnit, Member, MemberStatus, Merchant
from points.exceptions import (
    AccountFrozen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidOccurredAt,
    InvalidPoints,
    MemberInactive,
    NotFound,
    NotReversible,
    ReasonRequired,
    ReversalExceedsOriginal,
)
from points.models import Account, Entry, Lot, LotMovement, Posting, PostingKind, Wallet, WalletStatusChange
from points.timeutils import expiry_after_months

IDEMPOTENCY_CONSTRAINT = "posting_idempotency_key_unique_per_scope"
CLOCK_SKEW = timedelta(minutes=5)
OPERATOR_SCOPE = "operator"
SYSTEM_SCOPE = "system"


@dataclass(frozen=True)
class Idempotency:
    """Where a key is unique (a partner key, the operators, the system) and the key itself."""

    scope: str
    key: str


@dataclass(frozen=True)
class PostingResult:
    posting: Posting
    wallet: Wallet
    replayed: bool = False


# --- helpers -------------------------------------------------------------------------------


def wallet_open(member: Member) -> Wallet:
    """Enrolment hook: every member has a wallet row from the start, so it can be locked."""
    return Wallet.objects.get_or_create(member=member)[0]


def wallet_lock(*, member_id: int) -> Wallet:
    """Lock the member's wallet row for the rest of the transaction."""
    try:
        return Wallet.objects.select_for_update(of=("self",)).select_related("member").get(member_id=member_id)
    except Wallet.DoesNotExist as exc:
        raise NotFound(f"member {member_id} not found") from exc


def wallets_lock(*, wallet_ids: list[int]) -> list[Wallet]:
    """Lock several wallets in primary-key order, so that two callers never deadlock."""
    return list(Wallet.objects.select_for_update().filter(id__in=wallet_ids).order_by("id"))


def request_fingerprint(operation: str, **fields) -> str:
    canonical = json.dumps({"operation": operation, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(idempotency: Idempotency | None, fingerprint: str) -> Posting | None:
    if idempotency is None or not idempotency.key:
        return None
    posting = Posting.objects.filter(idempotency_scope=idempotency.scope, idempotency_key=idempotency.key).first()
    if posting is not None and posting.request_hash != fingerprint:
        raise IdempotencyConflict()
    return posting


def _idempotent(idempotency: Idempotency | None, fingerprint: str, write) -> PostingResult:
    """Run `write`; if a concurrent request won the race on the same key, answer with its posting."""
    try:
        return write()
    except IntegrityError as exc:
        if idempotency is None or IDEMPOTENCY_CONSTRAINT not in str(exc):
            raise
        winner = _replay(idempotency, fingerprint)
        if winner is None:
            raise
        return PostingResult(posting=winner, wallet=winner.wallet, replayed=True)


def _new_posting(*, wallet, kind, points, idempotency, fingerprint, occurred_at=None, **fields) -> Posting:
    return Posting.objects.create(
        wallet=wallet,
        kind=kind,
        points=points,
        idempotency_scope=idempotency.scope if idempotency else "",
        idempotency_key=idempotency.key if idempotency else "",
        request_hash=fingerprint,
        occurred_at=occurred_at or timezone.now(),
        **fields,
    )


def _validate_points(points) -> int:
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise InvalidPoints()
    return points


def _open_lots(wallet: Wallet, *, now: datetime | None = None, spendable_only: bool):
    """The wallet's lots with points left, in consumption order (earliest expiry, then earning)."""
    lots = Lot.objects.filter(wallet=wallet, remaining__gt=0)
    if spendable_only:
        lots = lots.filter(available_at__lte=now, expires_at__gte=now)
    return list(lots.order_by("expires_at", "earned_at", "id"))


def _consume(posting: Posting, lots: list[Lot], points: int) -> int:
    """Take up to `points` from `lots` in order; record each movement; return what was taken."""
    taken = 0
    movements = []
    touched = []
    for lot in lots:
        if taken == points:
            break
        take = min(lot.remaining, points - taken)
        lot.remaining -= take
        taken += take
        touched.append(lot)
        movements.append(LotMovement(posting=posting, lot=lot, amount=-take))
    LotMovement.objects.bulk_create(movements)
    Lot.objects.bulk_update(touched, ["remaining"])
    return taken


def _credit(
    *, posting: Posting, wallet: Wallet, points: int, business_unit: BusinessUnit, merchant: Merchant | None,
    source_account: str, earned_at: datetime, available_at: datetime, expires_at: datetime, rule_code: str = "",
) -> None:
    """Credit points: repay the wallet's debt first, put the rest in a new lot."""
    repaid = min(points, wallet.debt)
    to_wallet = points - repaid
    entries = [Entry(posting=posting, account=source_account, business_unit=business_unit, amount=-points)]
    if repaid:
        entries.append(Entry(posting=posting, account=Account.DEBT, wallet=wallet, amount=repaid))
    if to_wallet:
        entries.append(Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=to_wallet))
        Lot.objects.create(
            wallet=wallet, posting=posting, business_unit=business_unit, merchant=merchant, rule_code=rule_code,
            amount=to_wallet, remaining=to_wallet, earned_at=earned_at, available_at=available_at,
            expires_at=expires_at,
        )
    Entry.objects.bulk_create(entries)
    wallet.debt -= repaid
    wallet.balance += to_wallet
    wallet.save(update_fields=["debt", "balance", "updated_at"])


def _debit(*, posting: Posting, wallet: Wallet, lots: list[Lot], points: int, business_unit, target_account) -> None:
    """Debit points the caller has checked are there, consuming `lots` in order."""
    taken = _consume(posting, lots, points)
    assert taken == points, "caller must check the points are available"
    Entry.objects.bulk_create([
        Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=-points),
        Entry(posting=posting, account=target_account, business_unit=business_unit, amount=points),
    ])
    wallet.balance -= points
    wallet.save(update_fields=["balance", "updated_at"])


# --- earn ----------------------------------------------------------------------------------


def purchase_points(*, amount_cny: Decimal, rate: Decimal) -> int:
    """Points for a purchase: amount x rate, rounded down, in Decimal arithmetic (never float)."""
    return int((amount_cny * rate).to_integral_value(rounding=ROUND_DOWN))


def points_earn(
    *,
    member_id: int,
    business_unit: BusinessUnit,
    merchant: Merchant | None = None,
    amount_cny: Decimal | None = None,
    points: int | None = None,
    receipt_no: str = "",
    reason: str = "",
    occurred_at: datetime | None = None,
    idempotency: Idempotency | None = None,
    actor=None,
    max_backdate: timedelta | None = timedelta(days=30),
) -> PostingResult:
    """Credit points for a purchase (amount_cny x the BU's base rate, rounded down) or a fixed event.

    Exactly one of amount_cny and points is given. The new lot expires at the end of the day
    `business_unit.expiry_months` after `occurred_at`, and is pending for `pending_days`.
    A purchase worth zero points still records a posting (with no entries), so retries replay it.
    """
    if (amount_cny is None) == (points is None):
        raise InvalidPoints("give either amount_cny or points")
    if points is not None:
        _validate_points(points)
    if amount_cny is not None and amount_cny < 0:
        raise InvalidPoints("amount_cny must not be negative")
    fingerprint = request_fingerprint(
        "earn", member=member_id, bu=business_unit.pk, merchant=merchant.pk if merchant else None,
        amount_cny=str(amount_cny) if amount_cny is not None else None, points=points, receipt_no=receipt_no,
        occurred_at=occurred_at.isoformat() if occurred_at else None, reason=reason,
    )
    now = timezone.now()
    occurred_at = occurred_at or now
    if occurred_at > now + CLOCK_SKEW or (max_backdate is not None and occurred_at < now - max_backdate):
        raise InvalidOccurredAt()

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            wallet = wallet_lock(member_id=member_id)
            if replay := _replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=wallet, replayed=True)
            if wallet.member.status != MemberStatus.ACTIVE:
                raise MemberInactive()
            earned = points if points is not None else purchase_points(amount_cny=amount_cny, rate=business_unit.earn_rate)
            explanation = (
                [{"rule": "base_rate", "rate": str(business_unit.earn_rate), "points": earned}]
                if amount_cny is not None else [{"rule": "fixed", "points": earned}]
            )
            posting = _new_posting(
                wallet=wallet, kind=PostingKind.EARN, points=earned, idempotency=idempotency,
                fingerprint=fingerprint, occurred_at=occurred_at, business_unit=business_unit, merchant=merchant,
                amount_cny=amount_cny, receipt_no=receipt_no, reason=reason, explanation=explanation, actor=actor,
            )
            if earned:
                _credit(
                    posting=posting, wallet=wallet, points=earned, business_unit=business_unit, merchant=merchant,
                    source_account=Account.ISSUANCE, earned_at=occurred_at,
                    available_at=occurred_at + timedelta(days=business_unit.pending_days),
                    expires_at=expiry_after_months(occurred_at, business_unit.expiry_months),
                )
            return PostingResult(posting=posting, wallet=wallet)

    return _idempotent(idempotency, fingerprint, write)


# --- spend ---------------------------------------------------------------------------------


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
    """Debit available points (not pending, not expired), earliest-expiring lots first."""
    _validate_points(points)
    fingerprint = request_fingerprint(
        "spend", member=member_id, points=points, bu=business_unit.pk, merchant=merchant.pk if merchant else None,
        reason=reason,
    )

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            wallet = wallet_lock(member_id=member_id)
            if replay := _replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=wallet, replayed=True)
            if wallet.is_frozen:
                raise AccountFrozen()
            now = timezone.now()
            lots = _open_lots(wallet, now=now, spendable_only=True)
            available = sum(lot.remaining for lot in lots)
            if available < points:
                raise InsufficientPoints(available=available, requested=points)
            posting = _new_posting(
                wallet=wallet, kind=PostingKind.SPEND, points=-points, idempotency=idempotency,
                fingerprint=fingerprint, business_unit=business_unit, merchant=merchant, reason=reason, actor=actor,
            )
            _debit(posting=posting, wallet=wallet, lots=lots, points=points, business_unit=business_unit,
                   target_account=Account.REDEMPTION)
            return PostingResult(posting=posting, wallet=wallet)

    return _idempotent(idempotency, fingerprint, write)


# --- reverse -------------------------------------------------------------------------------


def _reversible_points(original: Posting) -> int:
    already = original.reversals.aggregate(total=Sum("points"))["total"] or 0
    return abs(original.points) - abs(already)


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
    A refund follows the debt policy of this module; a cancel gives the points back to exactly
    the lots the spend consumed, the latest-expiring first. Points given back to a lot that has
    since passed its expiry are expired again by the next expiry run.
    """
    if points is not None:
        _validate_points(points)
    original = Posting.objects.filter(pk=posting_id).first()
    if original is None or (business_unit is not None and original.business_unit_id != business_unit.pk):
        raise NotFound(f"transaction {posting_id} not found")
    if original.kind not in (PostingKind.EARN, PostingKind.SPEND):
        raise NotReversible()
    fingerprint = request_fingerprint("reverse", posting=posting_id, points=points, reason=reason)

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            wallet = wallets_lock(wallet_ids=[original.wallet_id])[0]
            if replay := _replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=wallet, replayed=True)
            reversible = _reversible_points(original)
            amount = reversible if points is None else points
            if amount <= 0 or amount > reversible:
                raise ReversalExceedsOriginal(reversible=reversible)
            if original.kind == PostingKind.EARN:
                posting = _refund(original, wallet, amount, reason, idempotency, fingerprint, actor)
            else:
                posting = _cancel(original, wallet, amount, reason, idempotency, fingerprint, actor)
            return PostingResult(posting=posting, wallet=wallet)

    return _idempotent(idempotency, fingerprint, write)


def _refund(original, wallet, amount, reason, idempotency, fingerprint, actor) -> Posting:
    posting = _new_posting(
        wallet=wallet, kind=PostingKind.REFUND, points=-amount, idempotency=idempotency, fingerprint=fingerprint,
        business_unit=original.business_unit, merchant=original.merchant, reverses=original, reason=reason,
        actor=actor,
    )
    lots = _open_lots(wallet, spendable_only=False)
    own_lots_first = sorted(lots, key=lambda lot: lot.posting_id != original.pk)
    taken = _consume(posting, own_lots_first, amount)
    owed = amount - taken
    entries = [Entry(posting=posting, account=Account.ISSUANCE, business_unit=original.business_unit, amount=amount)]
    if taken:
        entries.append(Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=-taken))
    if owed:
        entries.append(Entry(posting=posting, account=Account.DEBT, wallet=wallet, amount=-owed))
    Entry.objects.bulk_create(entries)
    wallet.balance -= taken
    wallet.debt += owed
    wallet.save(update_fields=["balance", "debt", "updated_at"])
    return posting


def _cancel(original, wallet, amount, reason, idempotency, fingerprint, actor) -> Posting:
    posting = _new_posting(
        wallet=wallet, kind=PostingKind.CANCEL, points=amount, idempotency=idempotency, fingerprint=fingerprint,
        business_unit=original.business_unit, merchant=original.merchant, reverses=original, reason=reason,
        actor=actor,
    )
    net_taken = {}
    for movement in LotMovement.objects.filter(posting__in=[original, *original.reversals.all()]):
        net_taken[movement.lot_id] = net_taken.get(movement.lot_id, 0) - movement.amount
    lots = Lot.objects.filter(id__in=[lot_id for lot_id, taken in net_taken.items() if taken > 0])
    movements, touched, left = [], [], amount
    for lot in lots.order_by("-expires_at", "-earned_at", "-id"):
        if not left:
            break
        give = min(net_taken[lot.id], left)
        lot.remaining += give
        left -= give
        touched.append(lot)
        movements.append(LotMovement(posting=posting, lot=lot, amount=give))
    LotMovement.objects.bulk_create(movements)
    Lot.objects.bulk_update(touched, ["remaining"])
    Entry.objects.bulk_create([
        Entry(posting=posting, account=Account.REDEMPTION, business_unit=original.business_unit, amount=-amount),
        Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=amount),
    ])
    wallet.balance += amount
    wallet.save(update_fields=["balance", "updated_at"])
    return posting


# --- adjust, freeze, unfreeze --------------------------------------------------------------


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
    negative takes from any of the member's lots and is refused if they hold too little."""
    if not reason or not reason.strip():
        raise ReasonRequired()
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise InvalidPoints("points must be a non-zero whole number")
    fingerprint = request_fingerprint("adjust", member=member_id, points=points, bu=business_unit.pk, reason=reason)

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            wallet = wallet_lock(member_id=member_id)
            if replay := _replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=wallet, replayed=True)
            posting = _new_posting(
                wallet=wallet, kind=PostingKind.ADJUST, points=points, idempotency=idempotency,
                fingerprint=fingerprint, business_unit=business_unit, reason=reason, actor=actor,
            )
            if points > 0:
                now = timezone.now()
                _credit(
                    posting=posting, wallet=wallet, points=points, business_unit=business_unit, merchant=None,
                    source_account=Account.ADJUSTMENT, earned_at=now, available_at=now,
                    expires_at=expiry_after_months(now, business_unit.expiry_months),
                )
            else:
                lots = _open_lots(wallet, spendable_only=False)
                held = sum(lot.remaining for lot in lots)
                if held < -points:
                    raise InsufficientPoints(available=held, requested=-points)
                _debit(posting=posting, wallet=wallet, lots=lots, points=-points, business_unit=business_unit,
                       target_account=Account.ADJUSTMENT)
            return PostingResult(posting=posting, wallet=wallet)

    return _idempotent(idempotency, fingerprint, write)


def wallet_freeze(*, member_id: int, reason: str, actor=None) -> Wallet:
    """Freeze the wallet: spending is refused; earning, refunds and cancels still post."""
    return _wallet_set_frozen(member_id=member_id, frozen=True, reason=reason, actor=actor)


def wallet_unfreeze(*, member_id: int, reason: str, actor=None) -> Wallet:
    return _wallet_set_frozen(member_id=member_id, frozen=False, reason=reason, actor=actor)


def _wallet_set_frozen(*, member_id: int, frozen: bool, reason: str, actor) -> Wallet:
    if not reason or not reason.strip():
        raise ReasonRequired()
    with transaction.atomic(durable=True):
        wallet = wallet_lock(member_id=member_id)
        if wallet.is_frozen != frozen:
            wallet.is_frozen = frozen
            wallet.frozen_reason = reason if frozen else ""
            wallet.save(update_fields=["is_frozen", "frozen_reason", "updated_at"])
            WalletStatusChange.objects.create(wallet=wallet, frozen=frozen, reason=reason, actor=actor)
    return wallet


# --- expire --------------------------------------------------------------------------------


def wallet_expire_due_lots(*, wallet_id: int, now: datetime) -> Posting | None:
    """Expire every lot of one wallet whose validity ended before `now`, in one posting.

    Returns the posting written, or None when this call wrote nothing: nothing was due, or a
    run with the same `now` (a retry, or an overlapping run) already wrote it, so that a batch
    counts only its own postings. The wallet lock and the re-read of `remaining` under it make a
    rerun, or a run overlapping another, expire nothing twice; the key `expire:<wallet>:<now>`
    makes a retried run replay.
    """
    idempotency = Idempotency(scope=SYSTEM_SCOPE, key=f"expire:{wallet_id}:{now.isoformat()}")
    fingerprint = request_fingerprint("expire", wallet=wallet_id, now=now.isoformat())
    with transaction.atomic(durable=True):
        wallet = wallets_lock(wallet_ids=[wallet_id])[0]
        if _replay(idempotency, fingerprint):
            return None
        lots = list(Lot.objects.filter(wallet=wallet, remaining__gt=0, expires_at__lt=now).order_by("id"))
        if not lots:
            return None
        total = sum(lot.remaining for lot in lots)
        posting = _new_posting(
            wallet=wallet, kind=PostingKind.EXPIRE, points=-total, idempotency=idempotency, fingerprint=fingerprint,
            occurred_at=now, reason="expiry",
        )
        per_bu: dict[int, int] = {}
        for lot in lots:
            per_bu[lot.business_unit_id] = per_bu.get(lot.business_unit_id, 0) + lot.remaining
        _consume(posting, lots, total)
        Entry.objects.bulk_create(
            [Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=-total)]
            + [Entry(posting=posting, account=Account.EXPIRY, business_unit_id=bu, amount=amount)
               for bu, amount in sorted(per_bu.items())]
        )
        wallet.balance -= total
        wallet.save(update_fields=["balance", "updated_at"])
        return posting


def expiry_run_batch(*, now: datetime, after_wallet_id: int = 0, batch_size: int | None = None) -> tuple[int, int | None]:
    """Expire due lots for the next batch of wallets after `after_wallet_id`.

    Returns (postings written, cursor for the next batch or None when no wallet is left).
    Each wallet is its own short transaction, so a crash loses at most the wallet in hand.
    """
    batch_size = batch_size or settings.POINTS_EXPIRY_BATCH_SIZE
    wallet_ids = list(
        Lot.objects.filter(remaining__gt=0, expires_at__lt=now, wallet_id__gt=after_wallet_id)
        .order_by("wallet_id").values_list("wallet_id", flat=True).distinct()[:batch_size]
    )
    written = sum(1 for wallet_id in wallet_ids if wallet_expire_due_lots(wallet_id=wallet_id, now=now))
    cursor = wallet_ids[-1] if len(wallet_ids) == batch_size else None
    return written, cursor

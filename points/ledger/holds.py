"""Holds: available points of a wallet reserved for a purpose until captured, voided or expired.

A hold is resolved exactly once. Every move locks the wallet first and re-reads the hold under
the lock, then writes the new status with a conditional UPDATE (`WHERE status = 'held'`):
capture, void and the expiry sweep racing on one hold serialise on the wallet lock and exactly
one of them finds it held. The moves are HOLD_MOVES (points.models); each appends a HoldEvent.

* `hold_place` reserves free, available points of the wallet's lots in consumption order
  (earliest expiry first) and records which (allocations). A hold lives `expires_in` (default
  POINTS_HOLD_DEFAULT_SECONDS, at most POINTS_HOLD_MAX_SECONDS), **shortened to the life of the
  lots it reserves**: a hold never outlives its points, so a live hold's points never expire
  under it. Points of a hold that ended unresolved are expired by the first expiry run after the
  sweep released them.
* `hold_capture` spends all or part of the hold (a spend posting at the hold's business unit
  that consumes the reserved lots); a partial capture releases the rest. More than held:
  `capture_exceeds_hold`; past its expiry: `hold_expired`; resolved already: `hold_resolved`.
* `hold_void` releases it; voiding a voided or expired hold answers it again (idempotent: its
  points are released either way); voiding a hold past its expiry resolves it as expired.
* `holds_release_expired` is the sweep (celery beat, every minute): it releases, in batches of
  wallets, every hold past its expiry. Reads never count a hold past its expiry as held.

Released points are free again; if the wallet owes debt (a refund took what was not held),
they repay it first (a `repay` posting), as every credit does.

Idempotency: a hold is placed under the caller's key (unique per scope): the same key and
request answer the same hold, a different request IdempotencyConflict. A capture carries a key
of its own for its posting; a retried capture replays that posting.

Reserved purposes: a purpose an app above points registered as its own
(points.policies.register_reserved_hold_purpose, e.g. mall's `payment`) is refused by
`hold_place`, `hold_capture` and `hold_void` (`hold_reserved`): those holds move only with the
app's own rows, through the `_locked` variants below (and the sweep releases them when they
expire, as any other).

In the caller's transaction: `hold_place`, `hold_capture` and `hold_void` each open their own
durable transaction. An operation above points whose own row moves with the hold (a payment:
authorised, captured, voided) makes the move one transaction with the `_locked` variants:
it locks the wallet (`wallet_lock` / `wallets_lock`, or `hold_lock` for an existing hold),
then its own rows, then calls `hold_place_locked`, `hold_capture_locked` or `hold_void_locked`,
which do exactly what the durable functions do under that lock and write nothing if the
caller's transaction rolls back. The caller looks up its own idempotency keys.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from members.models import BusinessUnit, Merchant
from points.exceptions import (
    AccountFrozen,
    CaptureExceedsHold,
    HoldExpired,
    HoldReserved,
    HoldResolved,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidHold,
    NotFound,
)
from points.ledger.activity import lots_extend_for_activity
from points.ledger.builder import PostingRows, consume_rows, debt_split, free_points, open_lots, posting_row
from points.ledger.idempotency import SYSTEM_SCOPE, Idempotency, posting_replay, request_fingerprint
from points.ledger.locks import wallet_lock, wallets_lock
from points.ledger.writer import write_hold_rows, write_posting
from points.models import (
    HOLD_MOVES,
    Account,
    Entry,
    Hold,
    HoldAllocation,
    HoldEvent,
    HoldStatus,
    Lot,
    LotMovement,
    Posting,
    PostingKind,
    Wallet,
)
from points.policies import SpendContext, hold_purpose_reserved, run_spend_gates

HOLD_IDEMPOTENCY_CONSTRAINT = "hold_idempotency_key_unique_per_scope"


@dataclass(frozen=True)
class HoldResult:
    hold: Hold
    wallet: Wallet
    replayed: bool = False


def _checked_points(points) -> int:
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise InvalidHold("points must be a positive whole number", field="points")
    return points


def _checked_lifetime(expires_in: timedelta | None) -> timedelta:
    if expires_in is None:
        return timedelta(seconds=settings.POINTS_HOLD_DEFAULT_SECONDS)
    if not timedelta(seconds=1) <= expires_in <= timedelta(seconds=settings.POINTS_HOLD_MAX_SECONDS):
        raise InvalidHold(
            f"expires_in must be between 1 and {settings.POINTS_HOLD_MAX_SECONDS} seconds", field="expires_in"
        )
    return expires_in


def hold_place(
    *, member_id: int, points: int, business_unit: BusinessUnit, merchant: Merchant | None = None, purpose: str,
    reference: str = "", expires_in: timedelta | None = None, idempotency: Idempotency | None = None, actor=None,
) -> HoldResult:
    """Reserve `points` available points of the member's wallet for `purpose` (see the module
    docstring); a reserved purpose is hold_reserved."""
    _checked_points(points)
    lifetime = _checked_lifetime(expires_in)
    if not purpose:
        raise InvalidHold("purpose is required", field="purpose")
    _refuse_reserved(purpose)
    fingerprint = request_fingerprint(
        "hold", member=member_id, points=points, bu=business_unit.pk, merchant=merchant.pk if merchant else None,
        purpose=purpose, reference=reference, expires_in=lifetime.total_seconds(),
    )

    def place() -> HoldResult:
        with transaction.atomic(durable=True):
            wallet = wallet_lock(member_id=member_id)
            if replay := _hold_replay(idempotency, fingerprint):
                return HoldResult(hold=replay, wallet=wallet, replayed=True)
            hold = hold_place_locked(
                wallet=wallet, points=points, business_unit=business_unit, merchant=merchant, purpose=purpose,
                reference=reference, expires_in=lifetime, idempotency=idempotency, fingerprint=fingerprint,
                actor=actor,
            )
            return HoldResult(hold=hold, wallet=wallet)

    try:
        return place()
    except IntegrityError as exc:
        if idempotency is None or HOLD_IDEMPOTENCY_CONSTRAINT not in str(exc):
            raise
        winner = _hold_replay(idempotency, fingerprint)
        if winner is None:
            raise
        return HoldResult(hold=winner, wallet=winner.wallet, replayed=True)


def _hold_replay(idempotency: Idempotency | None, fingerprint: str) -> Hold | None:
    if idempotency is None or not idempotency.key:
        return None
    hold = Hold.objects.filter(idempotency_scope=idempotency.scope, idempotency_key=idempotency.key).first()
    if hold is not None and hold.request_hash != fingerprint:
        raise IdempotencyConflict()
    return hold


def hold_place_locked(
    *, wallet: Wallet, points: int, business_unit: BusinessUnit, merchant: Merchant | None = None, purpose: str,
    reference: str = "", expires_in: timedelta | None = None, idempotency: Idempotency | None = None,
    fingerprint: str = "", actor=None,
) -> Hold:
    """The placing itself (see hold_place), inside the caller's transaction, for a wallet the
    caller has locked (wallet_lock) and whose key, if any, it has looked up. Raises
    AccountFrozen, InsufficientPoints or a spend gate's refusal; the caller's transaction then
    writes nothing. A hold under `idempotency` whose key is taken fails at the unique
    constraint (HOLD_IDEMPOTENCY_CONSTRAINT)."""
    _checked_points(points)
    lifetime = _checked_lifetime(expires_in)
    if not purpose:
        raise InvalidHold("purpose is required", field="purpose")
    now = timezone.now()
    if wallet.is_frozen:
        raise AccountFrozen()
    run_spend_gates(SpendContext(
        operation="hold", member=wallet.member, business_unit=business_unit, merchant=merchant, points=points, at=now,
    ))
    lots = spendable_lots_releasing_expired_holds(wallet=wallet, now=now, points=points)
    available = free_points(lots)
    if available < points:
        raise InsufficientPoints(available=available, requested=points)
    allocations, reserved, left = [], [], points
    for lot in lots:
        if not left:
            break
        take = min(lot.remaining - lot.held, left)
        lot.held += take
        left -= take
        reserved.append(lot)
        allocations.append(HoldAllocation(lot=lot, points=take))
    hold = Hold.objects.create(
        wallet=wallet, business_unit=business_unit, merchant=merchant, points=points, purpose=purpose,
        reference=reference, expires_at=min([now + lifetime, *(lot.expires_at for lot in reserved)]),
        idempotency_scope=idempotency.scope if idempotency else "",
        idempotency_key=idempotency.key if idempotency else "", request_hash=fingerprint, actor=actor,
    )
    for allocation in allocations:
        allocation.hold = hold
    HoldAllocation.objects.bulk_create(allocations)
    HoldEvent.objects.create(hold=hold, from_status="", to_status=HoldStatus.HELD, points=points, actor=actor)
    wallet.held += points
    write_hold_rows(lots=reserved, wallets=[wallet])
    return hold


def spendable_lots_releasing_expired_holds(*, wallet: Wallet, now: datetime, points: int) -> list[Lot]:
    """The wallet's spendable lots (free points only); when they are short of `points` and some
    of the wallet's points are held, the holds past their expiry are released first (the sweep
    may not have come yet) and the lots read again. The caller holds the wallet lock."""
    lots = open_lots(wallet, now=now, spendable_only=True)
    if free_points(lots) < points and wallet.held and _release_expired_locked(wallet=wallet, now=now):
        lots = open_lots(wallet, now=now, spendable_only=True)
    return lots


def hold_lock(*, hold_id: int, business_unit: BusinessUnit | None = None) -> tuple[Hold, Wallet]:
    """Lock the hold's wallet, then read the hold (its status is final under that lock), inside
    the caller's transaction. `business_unit`, when given, is the caller's scope: a hold of
    another BU is not found."""
    wallet_id = Hold.objects.filter(pk=hold_id).values_list("wallet_id", flat=True).first()
    if wallet_id is None:
        raise NotFound(f"hold {hold_id} not found")
    wallet = wallets_lock(wallet_ids=[wallet_id])[0]
    hold = Hold.objects.select_related("business_unit", "merchant").get(pk=hold_id)
    if business_unit is not None and hold.business_unit_id != business_unit.pk:
        raise NotFound(f"hold {hold_id} not found")
    hold.wallet = wallet  # the locked row: the answer reads it without another query
    return hold, wallet


def _refuse_reserved(purpose: str, hold: Hold | None = None) -> None:
    if hold_purpose_reserved(purpose):
        raise HoldReserved(hold=hold.pk if hold else None, purpose=purpose)


def _move(hold: Hold, to_status: str, *, now: datetime, actor, reason: str, **fields) -> None:
    """The hold's one move out of `held`: a conditional write, and its event row."""
    assert to_status in HOLD_MOVES[hold.status]
    moved = Hold.objects.filter(pk=hold.pk, status=HoldStatus.HELD).update(status=to_status, resolved_at=now, **fields)
    assert moved == 1, "the caller holds the wallet lock and saw the hold held"
    HoldEvent.objects.create(
        hold=hold, from_status=hold.status, to_status=to_status, points=fields.get("captured", hold.points),
        reason=reason[:200], actor=actor,
    )
    hold.status, hold.resolved_at = to_status, now
    for name, value in fields.items():
        setattr(hold, name, value)


def _refuse_unless_held(hold: Hold, now: datetime) -> None:
    if hold.status == HoldStatus.EXPIRED or (hold.status == HoldStatus.HELD and hold.expires_at <= now):
        raise HoldExpired(hold=hold.pk)
    if hold.status != HoldStatus.HELD:
        raise HoldResolved(hold=hold.pk, status=hold.status)


def hold_capture(
    *, hold_id: int, points: int | None = None, business_unit: BusinessUnit | None = None,
    idempotency: Idempotency | None = None, reason: str = "", actor=None,
) -> tuple[HoldResult, Posting]:
    """Spend all of the hold, or `points` of it (releasing the rest). `business_unit`, when
    given, is the caller's scope: a hold of another BU is not found; a hold of a reserved purpose
    is hold_reserved. Returns the hold and the spend posting (replayed when the same capture is
    retried under its key)."""
    if points is not None:
        _checked_points(points)
    fingerprint = request_fingerprint("hold_capture", hold=hold_id, points=points, reason=reason)
    with transaction.atomic(durable=True):
        hold, wallet = hold_lock(hold_id=hold_id, business_unit=business_unit)
        _refuse_reserved(hold.purpose, hold)
        if replay := posting_replay(idempotency, fingerprint):
            return HoldResult(hold=hold, wallet=wallet, replayed=True), replay
        posting = hold_capture_locked(
            hold=hold, wallet=wallet, points=points, idempotency=idempotency, fingerprint=fingerprint, reason=reason,
            actor=actor,
        )
        return HoldResult(hold=hold, wallet=wallet), posting


def hold_capture_locked(
    *, hold: Hold, wallet: Wallet, points: int | None = None, idempotency: Idempotency | None = None,
    fingerprint: str = "", reason: str = "", actor=None,
) -> Posting:
    """The capture itself (see hold_capture), inside the caller's transaction, for a hold read
    under its wallet's lock (hold_lock). Raises HoldExpired, HoldResolved, CaptureExceedsHold,
    AccountFrozen or a spend gate's refusal; the caller's transaction then writes nothing. The
    spend posting carries `idempotency`, by default the system key `hold-capture:<hold id>`."""
    if points is not None:
        _checked_points(points)
    now = timezone.now()
    _refuse_unless_held(hold, now)
    amount = hold.points if points is None else points
    if amount > hold.points:
        raise CaptureExceedsHold(held=hold.points, requested=amount)
    if wallet.is_frozen:
        raise AccountFrozen()
    run_spend_gates(SpendContext(
        operation="capture", member=wallet.member, business_unit=hold.business_unit, merchant=hold.merchant,
        points=amount, at=now,
    ))
    posting = posting_row(
        wallet=wallet, kind=PostingKind.SPEND, points=-amount,
        idempotency=idempotency or Idempotency(scope=SYSTEM_SCOPE, key=f"hold-capture:{hold.pk}"),
        fingerprint=fingerprint, occurred_at=now, business_unit=hold.business_unit, merchant=hold.merchant,
        reason=reason or f"{hold.purpose} {hold.reference}".strip(), actor=actor,
    )
    lots, movements, taken = [], [], 0
    for allocation, lot in _allocated_lots(hold):
        lot.held -= allocation.points
        take = min(allocation.points, amount - taken)
        if take:
            lot.remaining -= take
            taken += take
            movements.append(LotMovement(posting=posting, lot=lot, amount=-take))
        lots.append(lot)
    wallet.held -= hold.points
    wallet.balance -= amount
    entries = [
        Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=-amount),
        Entry(posting=posting, account=Account.REDEMPTION, business_unit=hold.business_unit, amount=amount),
    ]
    write_posting(PostingRows(
        posting=posting, wallet=wallet, lots=[], movements=movements, entries=entries, changed_lots=lots,
    ))
    _move(hold, HoldStatus.CAPTURED, now=now, actor=actor, reason=reason, captured=amount, capture_posting=posting)
    lots_extend_for_activity(wallet=wallet, at=now, posting=posting)
    _repay_debt_locked(wallet=wallet, now=now)
    return posting


def _allocated_lots(hold: Hold) -> list[tuple[HoldAllocation, Lot]]:
    """The hold's allocations with their lots read fresh (under the caller's wallet lock), in the
    order they were reserved (consumption order)."""
    allocations = list(hold.allocations.order_by("id"))
    lots = Lot.objects.in_bulk([allocation.lot_id for allocation in allocations])
    return [(allocation, lots[allocation.lot_id]) for allocation in allocations]


def _release_locked(*, hold: Hold, wallet: Wallet, to_status: str, now: datetime, actor=None, reason: str = "") -> None:
    """Release every point of a held hold and move it to `to_status`; the caller holds the lock."""
    lots = []
    for allocation, lot in _allocated_lots(hold):
        lot.held -= allocation.points
        lots.append(lot)
    wallet.held -= hold.points
    write_hold_rows(lots=lots, wallets=[wallet])
    _move(hold, to_status, now=now, actor=actor, reason=reason)


def hold_void(*, hold_id: int, business_unit: BusinessUnit | None = None, reason: str = "", actor=None) -> HoldResult:
    """Release the hold (see the module docstring for a voided or expired one); a hold of a
    reserved purpose is hold_reserved."""
    with transaction.atomic(durable=True):
        hold, wallet = hold_lock(hold_id=hold_id, business_unit=business_unit)
        _refuse_reserved(hold.purpose, hold)
        if hold.status in (HoldStatus.VOIDED, HoldStatus.EXPIRED):
            return HoldResult(hold=hold, wallet=wallet, replayed=True)
        hold_void_locked(hold=hold, wallet=wallet, reason=reason, actor=actor)
        return HoldResult(hold=hold, wallet=wallet)


def hold_void_locked(*, hold: Hold, wallet: Wallet, reason: str = "", actor=None) -> str:
    """Release a held hold, inside the caller's transaction, for a hold read under its wallet's
    lock (hold_lock): it moves to voided, or to expired when it is past its expiry. Returns the
    status it moved to; HoldResolved when it is not held."""
    if hold.status != HoldStatus.HELD:
        raise HoldResolved(hold=hold.pk, status=hold.status)
    now = timezone.now()
    to_status = HoldStatus.EXPIRED if hold.expires_at <= now else HoldStatus.VOIDED
    _release_locked(hold=hold, wallet=wallet, to_status=to_status, now=now, actor=actor, reason=reason)
    _repay_debt_locked(wallet=wallet, now=now)
    return to_status


def _release_expired_locked(*, wallet: Wallet, now: datetime) -> int:
    """Release the wallet's holds past their expiry; the caller holds the wallet lock."""
    expired = list(Hold.objects.filter(wallet=wallet, status=HoldStatus.HELD, expires_at__lte=now).order_by("id"))
    for hold in expired:
        _release_locked(hold=hold, wallet=wallet, to_status=HoldStatus.EXPIRED, now=now, reason="expired")
    if expired:
        _repay_debt_locked(wallet=wallet, now=now)
    return len(expired)


def holds_release_expired(*, now: datetime | None = None, batch_size: int | None = None) -> tuple[int, bool]:
    """The sweep: release the holds past their expiry of the next batch of wallets, in one
    transaction, wallets locked in id order. Returns (holds released, whether any are left)."""
    now = now or timezone.now()
    batch_size = batch_size or settings.POINTS_EXPIRY_BATCH_SIZE
    due = Hold.objects.filter(status=HoldStatus.HELD, expires_at__lte=now)
    wallet_ids = list(due.order_by("wallet_id").values_list("wallet_id", flat=True).distinct()[:batch_size])
    released = 0
    with transaction.atomic(durable=True):
        for wallet in wallets_lock(wallet_ids=wallet_ids):
            released += _release_expired_locked(wallet=wallet, now=now)
    return released, len(wallet_ids) == batch_size


def _repay_debt_locked(*, wallet: Wallet, now: datetime) -> Posting | None:
    """Repay the wallet's debt out of its free points (earliest expiry first), as every credit
    would: released held points must not sit beside a debt. The caller holds the wallet lock."""
    if not wallet.debt:
        return None
    lots = open_lots(wallet, spendable_only=False)
    repaid, _rest = debt_split(wallet, free_points(lots))
    if not repaid:
        return None
    posting = posting_row(
        wallet=wallet, kind=PostingKind.REPAY, points=0, idempotency=None, fingerprint="", occurred_at=now,
        reason="debt repaid from released points",
    )
    movements, touched, _taken = consume_rows(posting, lots, repaid)
    wallet.balance -= repaid
    wallet.debt -= repaid
    entries = [
        Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=-repaid),
        Entry(posting=posting, account=Account.DEBT, wallet=wallet, amount=repaid),
    ]
    return write_posting(PostingRows(
        posting=posting, wallet=wallet, lots=[], movements=movements, entries=entries, changed_lots=touched,
    ))

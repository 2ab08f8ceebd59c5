"""The posting builder: the unsaved rows of a posting (the posting, its entries, the lots it
credits, the lot movements of what it debits or gives back) with the wallet's balance and debt
moved in memory. Every operation builds its rows here and hands them to points.ledger.writer.

The debt rule lives here once (`debt_split`): a credit repays the wallet's debt before anything
reaches the wallet, out of its earliest-expiring parts. Debits take a lot's free points only
(`remaining - held`): points a hold has reserved are spent by that hold's capture alone.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Sum
from django.utils import timezone

from members.models import BusinessUnit, Merchant
from points.models import Account, Entry, Lot, LotMovement, Posting, PostingKind, Wallet
from points.rules.engine import LotTerms
from points.timeutils import end_of_local_day, local_date


@dataclass(frozen=True)
class LotPart:
    """Points of one credit that share their terms (one lot), and the rule giving most of them."""

    points: int
    rule_code: str
    terms: LotTerms


@dataclass
class PostingRows:
    """A posting and everything it writes, unsaved: handed whole to the writer."""

    posting: Posting
    wallet: Wallet
    lots: list[Lot]
    movements: list[LotMovement]
    entries: list[Entry]
    changed_lots: list[Lot]


def posting_row(*, wallet, kind, points, idempotency, fingerprint, occurred_at=None, **fields) -> Posting:
    """A posting (unsaved) with its idempotency key and request fingerprint."""
    return Posting(
        wallet=wallet,
        kind=kind,
        points=points,
        idempotency_scope=idempotency.scope if idempotency else "",
        idempotency_key=idempotency.key if idempotency else "",
        request_hash=fingerprint,
        occurred_at=occurred_at or timezone.now(),
        **fields,
    )


def open_lots(wallet: Wallet, *, now: datetime | None = None, spendable_only: bool) -> list[Lot]:
    """The wallet's lots with free points (not reserved by a hold), in consumption order
    (earliest expiry, then earliest earning); with `spendable_only`, only those available and
    not expired at `now`. The caller holds the wallet lock."""
    lots = Lot.objects.filter(wallet=wallet, remaining__gt=F("held"))
    if spendable_only:
        lots = lots.filter(available_at__lte=now, expires_at__gte=now)
    return list(lots.order_by("expires_at", "earned_at", "id"))


def free_points(lots: list[Lot]) -> int:
    return sum(lot.remaining - lot.held for lot in lots)


def debt_split(wallet: Wallet, points: int) -> tuple[int, int]:
    """(repaid, to the wallet): what of a credit of `points` repays the wallet's debt first."""
    repaid = min(points, wallet.debt)
    return repaid, points - repaid


def _member_credit_entries(posting: Posting, wallet: Wallet, points: int) -> list[Entry]:
    """The member's side of a credit, debt first; the wallet's debt and balance moved."""
    repaid, to_wallet = debt_split(wallet, points)
    entries = []
    if repaid:
        entries.append(Entry(posting=posting, account=Account.DEBT, wallet=wallet, amount=repaid))
    if to_wallet:
        entries.append(Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=to_wallet))
    wallet.debt -= repaid
    wallet.balance += to_wallet
    return entries


def credit_rows(
    *, posting: Posting, wallet: Wallet, parts: list[LotPart], business_unit: BusinessUnit, merchant: Merchant | None,
    source_account: str, earned_at: datetime,
) -> tuple[list[Lot], list[Entry]]:
    """The lots and entries of a credit (unsaved): the debt repaid first, out of the
    earliest-expiring parts, the rest in one new lot per part."""
    points = sum(part.points for part in parts)
    repaid, _to_wallet = debt_split(wallet, points)
    entries = [Entry(posting=posting, account=source_account, business_unit=business_unit, amount=-points)]
    entries += _member_credit_entries(posting, wallet, points)
    lots, to_repay = [], repaid
    for part in sorted(parts, key=lambda part: part.terms.expires_at):
        kept = part.points - min(part.points, to_repay)
        to_repay -= part.points - kept
        if kept:
            lots.append(Lot(
                wallet=wallet, posting=posting, business_unit=business_unit, merchant=merchant,
                rule_code=part.rule_code, amount=kept, remaining=kept, earned_at=earned_at,
                available_at=part.terms.available_at, expires_at=part.terms.expires_at,
                expiry_policy_id=part.terms.policy.id if part.terms.policy else None,
            ))
    return lots, entries


def consume_rows(posting: Posting, lots: list[Lot], points: int) -> tuple[list[LotMovement], list[Lot], int]:
    """Take up to `points` of free points from `lots` in order, in memory: (movements, lots
    touched, taken)."""
    movements, touched, taken = [], [], 0
    for lot in lots:
        if taken == points:
            break
        take = min(lot.remaining - lot.held, points - taken)
        if take <= 0:
            continue
        lot.remaining -= take
        taken += take
        touched.append(lot)
        movements.append(LotMovement(posting=posting, lot=lot, amount=-take))
    return movements, touched, taken


def debit_rows(
    *, posting: Posting, wallet: Wallet, lots: list[Lot], points: int, business_unit, target_account,
) -> tuple[list[LotMovement], list[Lot], list[Entry]]:
    """The movements, touched lots and entries of a debit the caller has checked is covered
    (unsaved), the lots' remaining points and the wallet's balance moved in memory."""
    movements, touched, taken = consume_rows(posting, lots, points)
    assert taken == points, "caller must check the points are available"
    wallet.balance -= points
    entries = [
        Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=-points),
        Entry(posting=posting, account=target_account, business_unit=business_unit, amount=points),
    ]
    return movements, touched, entries


def refund_rows(*, original: Posting, posting: Posting, wallet: Wallet, amount: int) -> PostingRows:
    """A refund of `amount` of an earn: out of the lot the earn created first; then, for what of
    that lot has expired, back from the issuer's expiry account (the breakage it released is
    reclaimed: the member is not charged for points they no longer had); then the member's other
    free points (earliest expiry first, pending ones included); what is still missing becomes
    debt. The posting's points are what the member's side moved (wallet and debt), so a refund
    reclaimed from breakage alone moves 0 points: the amount refunded is its issuance entry."""
    lots = open_lots(wallet, spendable_only=False)
    own_lots = [lot for lot in lots if lot.posting_id == original.pk]
    other_lots = [lot for lot in lots if lot.posting_id != original.pk]
    movements, touched, taken = consume_rows(posting, own_lots, amount)
    reclaimed = min(amount - taken, breakage_reclaimable(original)) if taken < amount else 0
    more_movements, more_touched, more_taken = consume_rows(posting, other_lots, amount - taken - reclaimed)
    movements, touched, taken = movements + more_movements, touched + more_touched, taken + more_taken
    owed = amount - taken - reclaimed
    issuer = original.business_unit
    entries = [Entry(posting=posting, account=Account.ISSUANCE, business_unit=issuer, amount=amount)]
    if reclaimed:
        entries.append(Entry(posting=posting, account=Account.EXPIRY, business_unit=issuer, amount=-reclaimed))
    if taken:
        entries.append(Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=-taken))
    if owed:
        entries.append(Entry(posting=posting, account=Account.DEBT, wallet=wallet, amount=-owed))
    wallet.balance -= taken
    wallet.debt += owed
    posting.points = -(taken + owed)
    return PostingRows(posting=posting, wallet=wallet, lots=[], movements=movements, entries=entries, changed_lots=touched)


def breakage_reclaimable(original: Posting) -> int:
    """Points of the lots an earn created that expired (their breakage), less what refunds of the
    earn have already reclaimed from the expiry account. Two aggregate queries, run only when a
    refund reaches past the earn's remaining points."""
    expired = LotMovement.objects.filter(lot__posting=original, posting__kind=PostingKind.EXPIRE).aggregate(
        total=Sum("amount"))["total"] or 0
    reclaimed = Entry.objects.filter(posting__reverses=original, posting__kind=PostingKind.REFUND,
                                     account=Account.EXPIRY).aggregate(total=Sum("amount"))["total"] or 0
    return -expired + reclaimed


def reversed_points(original: Posting) -> int:
    """How much of `original` its reversals have reversed so far: a refund's issuance entry (the
    amount refunded, breakage reclaimed included), a cancel's points."""
    if original.kind == PostingKind.EARN:
        total = Entry.objects.filter(posting__reverses=original, account=Account.ISSUANCE).aggregate(
            total=Sum("amount"))["total"]
    else:
        total = original.reversals.aggregate(total=Sum("points"))["total"]
    return abs(total or 0)


def give_back_rows(*, posting: Posting, wallet: Wallet, taken_by: list[Posting], amount: int, account: str,
                   business_unit: BusinessUnit) -> PostingRows:
    """Give `amount` points back (the reversal of a debit: a cancel, a refund of a payment) to
    exactly the lots the postings `taken_by` consumed net, the latest-expiring first, after
    repaying the wallet's debt. `account` (of `business_unit`) is the other side.

    Points whose lot has expired by now are not given back to it (the next expiry run would
    take them again): they come back as a new lot of the same issuer, merchant, rule and earning
    time, available now and valid `POINTS_REGRANT_DAYS` days (to the end of that day)."""
    net_taken: dict[int, int] = {}
    for movement in LotMovement.objects.filter(posting__in=taken_by):
        net_taken[movement.lot_id] = net_taken.get(movement.lot_id, 0) - movement.amount
    lots = Lot.objects.filter(id__in=[lot_id for lot_id, taken in net_taken.items() if taken > 0])
    _repaid, left = debt_split(wallet, amount)
    entries = [Entry(posting=posting, account=account, business_unit=business_unit, amount=-amount)]
    entries += _member_credit_entries(posting, wallet, amount)
    movements, touched, regranted = [], [], []
    now = timezone.now()
    for lot in lots.order_by("-expires_at", "-earned_at", "-id"):
        if not left:
            break
        give = min(net_taken[lot.id], left)
        left -= give
        if lot.expires_at < now:
            regranted.append(Lot(
                wallet=wallet, posting=posting, business_unit_id=lot.business_unit_id,
                merchant_id=lot.merchant_id, rule_code=lot.rule_code, amount=give, remaining=give,
                earned_at=lot.earned_at, available_at=now, expires_at=regrant_expiry(now),
            ))
            continue
        lot.remaining += give
        touched.append(lot)
        movements.append(LotMovement(posting=posting, lot=lot, amount=give))
    return PostingRows(posting=posting, wallet=wallet, lots=regranted, movements=movements, entries=entries,
                       changed_lots=touched)


def regrant_expiry(now: datetime) -> datetime:
    """Until when points given back after their lot expired stay valid."""
    return end_of_local_day(local_date(now) + timedelta(days=settings.POINTS_REGRANT_DAYS))


def transfer_rows(*, sent: Posting, received: Posting, source: Wallet, target: Wallet, lots: list[Lot],
                  points: int) -> tuple[PostingRows, PostingRows]:
    """The two postings of a transfer of `points` free points (the caller checked they are
    covered) from `source` to `target`, unsaved: `sent` consumes the source's `lots` in order,
    `received` gives the target one lot per piece taken, with the piece's issuer, merchant, rule,
    expiry policy, earning, availability and expiry times, after repaying the target's debt out
    of the earliest-expiring pieces. Each posting balances through the `transfer` account of the
    pieces' issuers, so the two together leave every issuer's liability where it was."""
    movements, touched, taken = consume_rows(sent, lots, points)
    assert taken == points, "caller must check the points are available"
    source.balance -= points
    by_issuer: dict[int, int] = {}
    for movement in movements:
        by_issuer[movement.lot.business_unit_id] = by_issuer.get(movement.lot.business_unit_id, 0) - movement.amount
    sent_entries = [Entry(posting=sent, account=Account.WALLET, wallet=source, amount=-points)]
    sent_entries += [Entry(posting=sent, account=Account.TRANSFER, business_unit_id=issuer, amount=amount)
                     for issuer, amount in sorted(by_issuer.items())]
    repaid, _to_wallet = debt_split(target, points)
    received_entries = [Entry(posting=received, account=Account.TRANSFER, business_unit_id=issuer, amount=-amount)
                        for issuer, amount in sorted(by_issuer.items())]
    received_entries += _member_credit_entries(received, target, points)
    carried, to_repay = [], repaid
    for movement in sorted(movements, key=lambda movement: (movement.lot.expires_at, movement.lot.earned_at)):
        lot, piece = movement.lot, -movement.amount
        kept = piece - min(piece, to_repay)
        to_repay -= piece - kept
        if kept:
            carried.append(Lot(
                wallet=target, posting=received, business_unit_id=lot.business_unit_id, merchant_id=lot.merchant_id,
                rule_code=lot.rule_code, expiry_policy_id=lot.expiry_policy_id, amount=kept, remaining=kept,
                earned_at=lot.earned_at, available_at=lot.available_at, expires_at=lot.expires_at,
            ))
    return (
        PostingRows(posting=sent, wallet=source, lots=[], movements=movements, entries=sent_entries, changed_lots=touched),
        PostingRows(posting=received, wallet=target, lots=carried, movements=[], entries=received_entries,
                    changed_lots=[]),
    )

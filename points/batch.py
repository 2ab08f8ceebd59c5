"""Bulk earn: up to a thousand purchases in one call, each an earn of its own.

Every item is all-or-nothing with its own idempotency key, and gives the outcome points_earn
would give for it, were the items earned one after another in order: one bad item never holds
back or undoes another. The caller gets one outcome per item, in order. Retrying a whole batch
is safe: the items that were written replay (same posting, nothing posted again) and the
others are tried afresh.

When purchases of different members do not depend on each other (points.rules.RuleConfig.
purchases_independent: no purchase rule reads history or a shared budget, no referral, no
activity-extends expiry), the items are earned together, set-wise, in one transaction: wallets
locked in one statement, tiers read and updated for all members at once, postings, lots,
entries and awards inserted in bulk. An item of a member who comes back in the batch (or a key
that comes back) goes in a later round, after the earlier ones are written, so it sees them as
it would one at a time. Otherwise, or when a concurrent request takes one of the
keys first (the batch then rolls back whole), each item runs through points_earn in its own
transaction.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import DomainError
from members.models import BusinessUnit, MemberStatus, Merchant
from members.selectors import merchant_for_partner
from points.exceptions import IdempotencyConflict, MemberInactive, NotFound
from points.earning import (
    MAX_BACKDATE,
    checked_occurred_at,
    earn_fingerprint,
    earn_validate,
    gated_earn_plan,
    points_earn,
    rule_award_rows,
)
from points.ledger import Idempotency, PostingRows, credit_rows, posting_row, wallets_lock, write_postings
from points.models import Account, EventType, Posting, PostingKind, RuleAward
from points.policies import EarnDone, member_tiers, run_after_earn_hooks_many
from points.rules.selectors import rule_config
from points.statements.credited import points_credited_on_commit


@dataclass(frozen=True)
class EarnBatchItem:
    idempotency_key: str
    member_id: int
    amount_cny: Decimal
    receipt_no: str
    merchant_code: str = ""
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RejectedItem:
    """An item the caller found malformed before any write; it is reported with its error."""

    idempotency_key: str | None
    error: dict


@dataclass(frozen=True)
class EarnBatchOutcome:
    idempotency_key: str | None
    status: str
    posting: Posting | None = None
    error: dict | None = None


# An item that earns nothing (no rule gives it a point) writes nothing: NO_POINTS, no posting.
CREATED, REPLAYED, NO_POINTS, ERROR = "created", "replayed", "no_points", "error"


@dataclass
class _Pending:
    """An item with its merchant resolved, on its way to an outcome."""

    index: int
    item: EarnBatchItem
    merchant: Merchant | None
    fingerprint: str = ""


def points_earn_batch(
    *,
    items: list[EarnBatchItem | RejectedItem],
    business_unit: BusinessUnit,
    key_merchant: Merchant | None,
    scope: str,
) -> list[EarnBatchOutcome]:
    """Earn for every item of a partner's batch; one outcome per item, in the items' order.

    `business_unit` and `key_merchant` are the partner key's scope (merchant codes resolve
    within it, as for a single earn); `scope` is its idempotency scope, shared with single earns,
    so an item retried through the single endpoint replays too.
    """
    outcomes: list[EarnBatchOutcome | None] = [None] * len(items)
    pending = []
    merchants: dict[str, Merchant | None | DomainError] = {}
    for index, item in enumerate(items):
        if isinstance(item, RejectedItem):
            outcomes[index] = EarnBatchOutcome(idempotency_key=item.idempotency_key, status=ERROR, error=item.error)
            continue
        if item.merchant_code not in merchants:
            try:
                merchants[item.merchant_code] = merchant_for_partner(
                    business_unit=business_unit, key_merchant=key_merchant, code=item.merchant_code
                )
            except DomainError as exc:
                merchants[item.merchant_code] = exc
        merchant = merchants[item.merchant_code]
        if isinstance(merchant, DomainError):
            error = merchant.as_dict()
            outcomes[index] = EarnBatchOutcome(idempotency_key=item.idempotency_key, status=ERROR, error=error)
            continue
        pending.append(_Pending(index=index, item=item, merchant=merchant))
    together = None
    if pending and rule_config().purchases_independent:
        try:
            together = _earn_together(pending, business_unit=business_unit, scope=scope)
        except IntegrityError:
            together = None
    for entry in pending:
        outcomes[entry.index] = (
            together[entry.index] if together is not None
            else _earn_one(entry, business_unit=business_unit, scope=scope)
        )
    return outcomes


def _earn_one(entry: _Pending, *, business_unit: BusinessUnit, scope: str) -> EarnBatchOutcome:
    item = entry.item
    try:
        result = points_earn(
            member_id=item.member_id,
            business_unit=business_unit,
            merchant=entry.merchant,
            amount_cny=item.amount_cny,
            receipt_no=item.receipt_no,
            occurred_at=item.occurred_at,
            idempotency=Idempotency(scope=scope, key=item.idempotency_key),
        )
    except DomainError as exc:
        return EarnBatchOutcome(idempotency_key=item.idempotency_key, status=ERROR, error=exc.as_dict())
    if result.posting is None:
        return EarnBatchOutcome(idempotency_key=item.idempotency_key, status=NO_POINTS)
    return EarnBatchOutcome(
        idempotency_key=item.idempotency_key, status=REPLAYED if result.replayed else CREATED, posting=result.posting,
    )


def _rounds(pending: list[_Pending]) -> list[list[_Pending]]:
    """The items in rounds of distinct members and distinct keys: an item goes in the round after
    the last earlier item of its member or with its key, so each sees those before it. Items
    of different members and keys do not affect each other and may share a round."""
    rounds: list[list[_Pending]] = []
    after_member: dict[int, int] = {}
    after_key: dict[str, int] = {}
    for entry in pending:
        item = entry.item
        number = max(after_member.get(item.member_id, 0), after_key.get(item.idempotency_key, 0))
        if number == len(rounds):
            rounds.append([])
        rounds[number].append(entry)
        after_member[item.member_id] = after_key[item.idempotency_key] = number + 1
    return rounds


def _error(entry: _Pending, exc: DomainError) -> EarnBatchOutcome:
    return EarnBatchOutcome(idempotency_key=entry.item.idempotency_key, status=ERROR, error=exc.as_dict())


def _earn_together(pending: list[_Pending], *, business_unit: BusinessUnit, scope: str) -> dict[int, EarnBatchOutcome]:
    """The set-wise bulk earn (see the module docstring), all items in one transaction."""
    outcomes: dict[int, EarnBatchOutcome] = {}
    now = timezone.now()
    with transaction.atomic(durable=True):
        wallets = {
            wallet.member_id: wallet
            for wallet in wallets_lock(member_ids=list({entry.item.member_id for entry in pending}))
        }
        written = {
            posting.idempotency_key: posting
            # Not blank: the partial unique index on (scope, key) serves lists of any length.
            for posting in Posting.objects.filter(
                idempotency_scope=scope, idempotency_key__in=[entry.item.idempotency_key for entry in pending]
            ).exclude(idempotency_key="")
        }
        for round_ in _rounds(pending):
            admitted = []
            for entry in round_:
                try:
                    replay = _admit(entry, wallets=wallets, written=written, business_unit=business_unit)
                except DomainError as exc:
                    outcomes[entry.index] = _error(entry, exc)
                    continue
                if replay is not None:
                    outcomes[entry.index] = EarnBatchOutcome(
                        idempotency_key=entry.item.idempotency_key, status=REPLAYED, posting=replay
                    )
                else:
                    admitted.append(entry)
            for entry, posting in _post_round(admitted, wallets=wallets, business_unit=business_unit, scope=scope,
                                              now=now, outcomes=outcomes):
                written[posting.idempotency_key] = posting
                outcomes[entry.index] = EarnBatchOutcome(
                    idempotency_key=entry.item.idempotency_key, status=CREATED, posting=posting
                )
    return outcomes


def _admit(entry: _Pending, *, wallets: dict, written: dict, business_unit: BusinessUnit) -> Posting | None:
    """points_earn's checks before pricing, in its order; the posting to replay, if any."""
    item = entry.item
    earn_validate(amount_cny=item.amount_cny, points=None, event_type=None)
    entry.fingerprint = earn_fingerprint(
        member_id=item.member_id, business_unit=business_unit, merchant=entry.merchant, amount_cny=item.amount_cny,
        points=None, receipt_no=item.receipt_no, occurred_at=item.occurred_at, reason="", event_type=EventType.PURCHASE,
    )
    wallet = wallets.get(item.member_id)
    if wallet is None:
        raise NotFound(f"member {item.member_id} not found")
    replay = written.get(item.idempotency_key)
    if replay is not None:
        if replay.request_hash != entry.fingerprint:
            raise IdempotencyConflict()
        return replay
    checked_occurred_at(item.occurred_at, MAX_BACKDATE)
    if wallet.member.status != MemberStatus.ACTIVE:
        raise MemberInactive()
    return None


def _post_round(admitted, *, wallets, business_unit, scope, now, outcomes) -> list[tuple[_Pending, Posting]]:
    """Price the admitted items of one round and write them in bulk; the postings written."""
    at = {entry.index: entry.item.occurred_at or now for entry in admitted}
    tiers = member_tiers([(wallets[entry.item.member_id].member, at[entry.index]) for entry in admitted])
    priced = []
    for entry, tier in zip(admitted, tiers, strict=True):
        item, wallet = entry.item, wallets[entry.item.member_id]
        try:
            plan = gated_earn_plan(
                wallet=wallet, business_unit=business_unit, merchant=entry.merchant, event_type=EventType.PURCHASE,
                amount_cny=item.amount_cny, points=None, occurred_at=at[entry.index], tier=tier,
                receipt_no=item.receipt_no,
            )
        except DomainError as exc:
            outcomes[entry.index] = _error(entry, exc)
            continue
        if not plan.points:
            outcomes[entry.index] = EarnBatchOutcome(idempotency_key=item.idempotency_key, status=NO_POINTS)
            continue
        posting = posting_row(
            wallet=wallet, kind=PostingKind.EARN, points=plan.points,
            idempotency=Idempotency(scope=scope, key=item.idempotency_key), fingerprint=entry.fingerprint,
            occurred_at=at[entry.index], business_unit=business_unit, merchant=entry.merchant,
            amount_cny=item.amount_cny, receipt_no=item.receipt_no, reason="", explanation=plan.explanation,
            event_type=EventType.PURCHASE,
        )
        priced.append((entry, posting, plan, tier))
    rows, awards = [], []
    for entry, posting, plan, _tier in priced:
        wallet = wallets[entry.item.member_id]
        lots, entries = credit_rows(
            posting=posting, wallet=wallet, parts=plan.lots, business_unit=business_unit,
            merchant=entry.merchant, source_account=Account.ISSUANCE, earned_at=posting.occurred_at,
        )
        rows.append(PostingRows(posting=posting, wallet=wallet, lots=lots, movements=[], entries=entries, changed_lots=[]))
        awards += rule_award_rows(posting=posting, wallet=wallet, plan=plan, earned_at=posting.occurred_at)
    write_postings(rows)
    for _entry, posting, _plan, _tier in priced:
        points_credited_on_commit(posting=posting, business_unit=business_unit)
    RuleAward.objects.bulk_create(awards)
    run_after_earn_hooks_many([
        EarnDone(posting=posting, wallet=wallets[entry.item.member_id], tier=tier)
        for entry, posting, _plan, tier in priced
    ])
    return [(entry, posting) for entry, posting, _plan, _tier in priced]

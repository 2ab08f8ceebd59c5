"""Every write on the points ledger: earn, spend, reverse, adjust, freeze and unfreeze (the expiry
job is in points.expiry).

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
the member no longer has becomes debt on the wallet. New earnings, positive adjustments and
cancelled spends repay the debt before anything reaches the wallet: a spend cancelled after
the purchase that earned its points was refunded must not hand those points back to spend
again. A balance never goes below zero.
"""

import calendar
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from config import rows
from config.bulk import insert_with_children
from config.errors import DomainError
from members.models import BusinessUnit, Member, MemberStatus, Merchant
from points.exceptions import (
    AccountFrozen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidEventType,
    InvalidOccurredAt,
    InvalidPoints,
    MemberInactive,
    NotFound,
    NotReversible,
    ReasonRequired,
    ReversalExceedsOriginal,
)
from points.models import (
    Account,
    Entry,
    EventType,
    ExpiryKind,
    Lot,
    LotExpiryChange,
    LotMovement,
    Posting,
    PostingKind,
    RuleAward,
    RuleBudget,
    Wallet,
    WalletStatusChange,
)
from points.policies import EarnContext, TierInfo, after_earn_hooks, earn_gates, member_tier
from points.rules import (
    Contribution,
    Event,
    LotTerms,
    PolicySpec,
    RuleConfig,
    activity_extended_expiry,
    evaluate,
    floor_points,
    lot_terms,
    static_match,
)
from points.selectors import member_facts, member_tags, rule_config
from points.timeutils import expiry_after_months, start_of_local_day

logger = logging.getLogger(__name__)

IDEMPOTENCY_CONSTRAINT = "posting_idempotency_key_unique_per_scope"
CLOCK_SKEW = timedelta(minutes=5)
# How far back a partner may date an event by default (occurred_at).
MAX_BACKDATE = timedelta(days=30)
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
    """Lock the member's wallet row for the rest of the transaction; its member comes with it.

    Hand-written SQL: every earn and redemption starts here."""
    lock = " FOR UPDATE OF w" if connection.features.has_select_for_update_of else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {rows.columns(Wallet, 'w')}, {rows.columns(Member, 'm')} FROM points_wallet w "
            f"JOIN members_member m ON m.id = w.member_id WHERE w.member_id = %s{lock}",
            [member_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"member {member_id} not found")
    wallet = rows.instance(Wallet, row)
    wallet.member = rows.instance(Member, row, rows.width(Wallet))
    return wallet


def wallets_lock(*, wallet_ids: list[int]) -> list[Wallet]:
    """Lock several wallets in primary-key order, so that two callers never deadlock."""
    return list(Wallet.objects.select_for_update().filter(id__in=wallet_ids).order_by("id"))


def request_fingerprint(operation: str, **fields) -> str:
    canonical = json.dumps({"operation": operation, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(idempotency: Idempotency | None, fingerprint: str) -> Posting | None:
    if idempotency is None or not idempotency.key:
        return None
    # Nearly always nothing is found: look for the id alone, read the posting only when there is one.
    found = Posting.objects.filter(idempotency_scope=idempotency.scope, idempotency_key=idempotency.key)
    posting_id = found.values_list("id", flat=True).first()
    if posting_id is None:
        return None
    posting = Posting.objects.get(pk=posting_id)
    if posting.request_hash != fingerprint:
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


def _new_posting(**fields) -> Posting:
    posting = posting_row(**fields)
    posting.save()
    return posting


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
    movements, touched, taken = _consume_rows(posting, lots, points)
    LotMovement.objects.bulk_create(movements)
    Lot.objects.bulk_update(touched, ["remaining"])
    return taken


def _consume_rows(posting: Posting, lots: list[Lot], points: int) -> tuple[list[LotMovement], list[Lot], int]:
    """Take up to `points` from `lots` in order, in memory: (movements, lots touched, taken)."""
    movements, touched, taken = [], [], 0
    for lot in lots:
        if taken == points:
            break
        take = min(lot.remaining, points - taken)
        lot.remaining -= take
        taken += take
        touched.append(lot)
        movements.append(LotMovement(posting=posting, lot=lot, amount=-take))
    return movements, touched, taken


def _credit(
    *, posting: Posting, wallet: Wallet, points: int, business_unit: BusinessUnit, merchant: Merchant | None,
    source_account: str, earned_at: datetime, available_at: datetime, expires_at: datetime, rule_code: str = "",
) -> None:
    """Credit points into one lot (after repaying the wallet's debt)."""
    terms = LotTerms(available_at=available_at, expires_at=expires_at, policy=None)
    _credit_lots(
        posting=posting, wallet=wallet, parts=[LotPart(points=points, rule_code=rule_code, terms=terms)],
        business_unit=business_unit, merchant=merchant, source_account=source_account, earned_at=earned_at,
    )


def _credit_lots(
    *, posting: Posting, wallet: Wallet, parts: list, business_unit: BusinessUnit, merchant: Merchant | None,
    source_account: str, earned_at: datetime,
) -> None:
    """Credit points: repay the wallet's debt first, out of the earliest-expiring parts, and put
    the rest in one new lot per part."""
    lots, entries = credit_rows(
        posting=posting, wallet=wallet, parts=parts, business_unit=business_unit, merchant=merchant,
        source_account=source_account, earned_at=earned_at,
    )
    _save_credit_rows(lots=lots, entries=entries, wallet=wallet)


def _save_credit_rows(*, lots: list[Lot], entries: list[Entry], wallet: Wallet) -> None:
    Lot.objects.bulk_create(lots)
    Entry.objects.bulk_create(entries)
    if entries:
        wallet.save(update_fields=["debt", "balance", "updated_at"])


def _write_credit(*, posting: Posting, lots: list[Lot], entries: list[Entry], wallet: Wallet) -> None:
    """Write a new posting, its lots and entries and the wallet's balance: on PostgreSQL in one
    statement (the earn's hot path), elsewhere through the ORM."""
    if connection.vendor == "postgresql":
        insert_with_children(
            posting, [(Lot, "posting", lots), (Entry, "posting", entries)],
            updates=[(Wallet, [wallet] if entries else [], ["debt", "balance", "updated_at"])],
        )
        return
    posting.save()
    _save_credit_rows(lots=lots, entries=entries, wallet=wallet)


def _write_debit(
    *, posting: Posting, movements: list[LotMovement], lots: list[Lot], entries: list[Entry], wallet: Wallet
) -> None:
    """Write a new debit posting, its movements and entries, the lots and the wallet's balance:
    on PostgreSQL in one statement (the redemption's hot path), elsewhere through the ORM."""
    if connection.vendor == "postgresql":
        insert_with_children(
            posting, [(LotMovement, "posting", movements), (Entry, "posting", entries)],
            updates=[(Lot, lots, ["remaining"]), (Wallet, [wallet], ["balance", "updated_at"])],
        )
        return
    posting.save()
    _save_debit_rows(movements=movements, lots=lots, entries=entries, wallet=wallet)


def _save_debit_rows(*, movements: list[LotMovement], lots: list[Lot], entries: list[Entry], wallet: Wallet) -> None:
    LotMovement.objects.bulk_create(movements)
    Lot.objects.bulk_update(lots, ["remaining"])
    Entry.objects.bulk_create(entries)
    wallet.save(update_fields=["balance", "updated_at"])


def credit_rows(
    *, posting: Posting, wallet: Wallet, parts: list, business_unit: BusinessUnit, merchant: Merchant | None,
    source_account: str, earned_at: datetime,
) -> tuple[list[Lot], list[Entry]]:
    """The lots and entries of a credit (unsaved), the wallet's debt and balance moved in memory."""
    points = sum(part.points for part in parts)
    repaid = min(points, wallet.debt)
    to_wallet = points - repaid
    entries = [Entry(posting=posting, account=source_account, business_unit=business_unit, amount=-points)]
    if repaid:
        entries.append(Entry(posting=posting, account=Account.DEBT, wallet=wallet, amount=repaid))
    if to_wallet:
        entries.append(Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=to_wallet))
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
    wallet.debt -= repaid
    wallet.balance += to_wallet
    return lots, entries


def _debit(*, posting: Posting, wallet: Wallet, lots: list[Lot], points: int, business_unit, target_account) -> None:
    """Debit points the caller has checked are there, consuming `lots` in order."""
    movements, touched, entries = debit_rows(
        posting=posting, wallet=wallet, lots=lots, points=points, business_unit=business_unit,
        target_account=target_account,
    )
    _save_debit_rows(movements=movements, lots=touched, entries=entries, wallet=wallet)


def debit_rows(
    *, posting: Posting, wallet: Wallet, lots: list[Lot], points: int, business_unit, target_account,
) -> tuple[list[LotMovement], list[Lot], list[Entry]]:
    """The movements, touched lots and entries of a debit the caller has checked is covered
    (unsaved), the lots' remaining points and the wallet's balance moved in memory."""
    movements, touched, taken = _consume_rows(posting, lots, points)
    assert taken == points, "caller must check the points are available"
    wallet.balance -= points
    entries = [
        Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=-points),
        Entry(posting=posting, account=target_account, business_unit=business_unit, amount=points),
    ]
    return movements, touched, entries


# --- earn ----------------------------------------------------------------------------------


def purchase_points(*, amount_cny: Decimal, rate: Decimal) -> int:
    """Points for a purchase: amount x rate, rounded down, in Decimal arithmetic (never float)."""
    return floor_points(amount_cny * rate)


@dataclass(frozen=True)
class LotPart:
    """Points of one earn that share their terms (one lot), and the rule giving most of them."""

    points: int
    rule_code: str
    terms: LotTerms


@dataclass(frozen=True)
class EarnPlan:
    """What an earn gives: the contributions (the explanation) and the lots they make."""

    contributions: list[Contribution]
    lots: list[LotPart]
    triggers_referral: bool = False

    @property
    def points(self) -> int:
        return sum(part.points for part in self.lots)

    @property
    def explanation(self) -> list[dict]:
        return [contribution.as_explanation() for contribution in self.contributions]


def _lot_parts(
    contributions: list[Contribution], *, config: RuleConfig, business_unit: BusinessUnit, earned_at: datetime,
    tier: TierInfo | None, hold_until: datetime | None,
) -> list[LotPart]:
    """Group the contributions by when their points become available and expire: one lot each."""
    groups: dict[tuple, list[Contribution]] = {}
    terms_of: dict[tuple, LotTerms] = {}
    for contribution in contributions:
        if contribution.points <= 0:
            continue
        terms = lot_terms(
            contribution.rule, earned_at=earned_at, default_policy=config.default_policy(business_unit.pk),
            bu_expiry_months=business_unit.expiry_months, bu_pending_days=business_unit.pending_days, tier=tier,
            hold_until=hold_until,
        )
        key = (terms.available_at, terms.expires_at, terms.policy.id if terms.policy else None)
        groups.setdefault(key, []).append(contribution)
        terms_of[key] = terms
    parts = []
    for key, group in groups.items():
        ruled = [c for c in group if c.rule is not None]
        main = max(ruled, key=lambda c: c.points) if ruled else None
        parts.append(LotPart(
            points=sum(c.points for c in group), rule_code=main.code if main else "", terms=terms_of[key]
        ))
    return sorted(parts, key=lambda part: (part.terms.expires_at, part.terms.available_at))


def earn_plan(
    *, wallet: Wallet, business_unit: BusinessUnit, merchant: Merchant | None, event_type: str,
    amount_cny: Decimal | None, points: int | None, occurred_at: datetime, tier: TierInfo | None,
    hold_until: datetime | None, lock_budgets: bool,
) -> EarnPlan:
    """Evaluate the earning rules for one event; with `lock_budgets` the caller holds the wallet lock."""
    config = rule_config()
    if points is not None:
        contributions = [Contribution(code="fixed", name="fixed points", effect="fixed", points=points)]
        return EarnPlan(contributions=contributions, lots=_lot_parts(
            contributions, config=config, business_unit=business_unit, earned_at=occurred_at, tier=tier,
            hold_until=hold_until,
        ))
    member = wallet.member
    event = Event(
        event_type=event_type, business_unit_id=business_unit.pk, bu_kind=business_unit.kind,
        bu_earn_rate=business_unit.earn_rate, merchant_id=merchant.pk if merchant else None,
        merchant_category=merchant.category if merchant else "", amount_cny=amount_cny, occurred_at=occurred_at,
    )
    tags = member_tags(member_id=member.pk) if any(rule.member_tag for rule in config.rules) else frozenset()
    candidates = [rule for rule in config.rules if static_match(rule, event, tier, tags, member.birthday)]
    referral_possible = (
        event_type == EventType.PURCHASE and member.referred_by_id is not None
        and config.has_rules_for(EventType.REFERRAL)
    )
    facts = member_facts(
        wallet=wallet, rules=candidates, event=event, tier=tier, tags=tags, lock_budgets=lock_budgets,
        need_has_purchased=referral_possible,
    )
    contributions = evaluate(tuple(candidates), event, facts)
    return EarnPlan(
        contributions=contributions,
        lots=_lot_parts(
            contributions, config=config, business_unit=business_unit, earned_at=occurred_at, tier=tier,
            hold_until=hold_until,
        ),
        triggers_referral=referral_possible and not facts.has_purchased,
    )


def checked_occurred_at(occurred_at: datetime | None, max_backdate: timedelta | None) -> datetime:
    """When the event happened (now by default): not in the future, not older than `max_backdate`."""
    now = timezone.now()
    occurred_at = occurred_at or now
    if occurred_at > now + CLOCK_SKEW or (max_backdate is not None and occurred_at < now - max_backdate):
        raise InvalidOccurredAt()
    return occurred_at


def earn_validate(*, amount_cny, points, event_type) -> str:
    """Check the shape of an earn; return its event type (purchase when only an amount is given)."""
    if amount_cny is not None and points is not None:
        raise InvalidPoints("give either amount_cny or points")
    if points is not None:
        _validate_points(points)
    if amount_cny is not None and amount_cny < 0:
        raise InvalidPoints("amount_cny must not be negative")
    if event_type is None:
        if amount_cny is None and points is None:
            raise InvalidPoints("give either amount_cny or points")
        return EventType.PURCHASE if amount_cny is not None else ""
    if event_type not in EventType.values:
        raise InvalidEventType()
    if event_type == EventType.PURCHASE and amount_cny is None and points is None:
        raise InvalidPoints("a purchase needs amount_cny")
    return event_type


def earn_fingerprint(
    *, member_id, business_unit, merchant, amount_cny, points, receipt_no, occurred_at, reason, event_type,
) -> str:
    return request_fingerprint(
        "earn", member=member_id, bu=business_unit.pk, merchant=merchant.pk if merchant else None,
        amount_cny=str(amount_cny) if amount_cny is not None else None, points=points, receipt_no=receipt_no,
        occurred_at=occurred_at.isoformat() if occurred_at else None, reason=reason, event_type=event_type,
    )


def gated_earn_plan(
    *, wallet: Wallet, business_unit: BusinessUnit, merchant: Merchant | None, event_type: str,
    amount_cny: Decimal | None, points: int | None, occurred_at: datetime, tier: TierInfo | None,
) -> EarnPlan:
    """The earn gates' verdict (a refusal raises, a hold delays the lots) and the rules' plan,
    for a wallet the caller has locked."""
    context = EarnContext(
        member=wallet.member, business_unit=business_unit, merchant=merchant, event_type=event_type,
        amount_cny=amount_cny, occurred_at=occurred_at,
    )
    holds = [hold for gate in earn_gates() if (hold := gate(context)) is not None]
    return earn_plan(
        wallet=wallet, business_unit=business_unit, merchant=merchant, event_type=event_type,
        amount_cny=amount_cny, points=points, occurred_at=occurred_at, tier=tier,
        hold_until=max(holds, default=None), lock_budgets=True,
    )


def _earn_locked(
    *, wallet: Wallet, business_unit: BusinessUnit, merchant: Merchant | None, amount_cny: Decimal | None,
    points: int | None, receipt_no: str, reason: str, occurred_at: datetime, event_type: str,
    idempotency: Idempotency | None, fingerprint: str, actor,
) -> tuple[Posting, EarnPlan]:
    """The earn itself, for a wallet the caller has locked and whose key is not taken."""
    member = wallet.member
    if member.status != MemberStatus.ACTIVE:
        raise MemberInactive()
    tier = member_tier(member, occurred_at)
    plan = gated_earn_plan(
        wallet=wallet, business_unit=business_unit, merchant=merchant, event_type=event_type,
        amount_cny=amount_cny, points=points, occurred_at=occurred_at, tier=tier,
    )
    posting = posting_row(
        wallet=wallet, kind=PostingKind.EARN, points=plan.points, idempotency=idempotency,
        fingerprint=fingerprint, occurred_at=occurred_at, business_unit=business_unit, merchant=merchant,
        amount_cny=amount_cny, receipt_no=receipt_no, reason=reason, explanation=plan.explanation,
        actor=actor, event_type=event_type,
    )
    lots, entries = credit_rows(
        posting=posting, wallet=wallet, parts=plan.lots, business_unit=business_unit, merchant=merchant,
        source_account=Account.ISSUANCE, earned_at=occurred_at,
    ) if plan.points else ([], [])
    _write_credit(posting=posting, lots=lots, entries=entries, wallet=wallet)
    _record_rule_awards(posting=posting, wallet=wallet, plan=plan, earned_at=occurred_at)
    _lots_extend_for_activity(wallet=wallet, at=occurred_at, posting=posting, tier=tier)
    for hook in after_earn_hooks():
        hook(posting=posting, wallet=wallet, tier=tier)
    return posting, plan


def _has_purchased(*, member_id: int) -> bool:
    return Posting.objects.filter(
        wallet__member_id=member_id, kind=PostingKind.EARN, event_type=EventType.PURCHASE
    ).exists()


def _referrer_to_lock(*, member_id: int, event_type: str) -> int | None:
    """The referrer whose wallet a purchase must lock too, because it may be the referee's first.

    Read before any lock: having purchased never becomes false again (postings are append-only),
    so a member seen to have purchased needs no second lock; one not seen to is re-checked under it.
    """
    if event_type != EventType.PURCHASE or not rule_config().has_rules_for(EventType.REFERRAL):
        return None
    referrer_id = Member.objects.filter(pk=member_id).values_list("referred_by_id", flat=True).first()
    if referrer_id is None or _has_purchased(member_id=member_id):
        return None
    return referrer_id


def _earn_wallets_lock(*, member_id: int, referrer_id: int | None) -> tuple[Wallet, Wallet | None]:
    """Lock the member's wallet, and the referrer's too when given: both in id order (no deadlock)."""
    if referrer_id is None:
        return wallet_lock(member_id=member_id), None
    wallets = {
        wallet.member_id: wallet
        for wallet in Wallet.objects.select_for_update(of=("self",)).select_related("member")
        .filter(member_id__in=[member_id, referrer_id]).order_by("id")
    }
    if member_id not in wallets:
        raise NotFound(f"member {member_id} not found")
    return wallets[member_id], wallets.get(referrer_id)


def _referral_award_locked(
    *, referee: Member, referrer_wallet: Wallet, business_unit: BusinessUnit, occurred_at: datetime
) -> Posting | None:
    """Award the referrer in the referee's first-purchase transaction (both wallets locked).

    Under the key `referral:<referee>` it happens at most once. The referrer's earn runs in a
    savepoint: if it is refused (referrer inactive, an earn gate), the referee's purchase still
    posts and the referral is simply not paid.
    """
    occurred_at = occurred_at.astimezone(dt_timezone.utc)
    idempotency = Idempotency(scope=SYSTEM_SCOPE, key=f"referral:{referee.pk}")
    reason = f"referral of member {referee.pk}"
    fingerprint = earn_fingerprint(
        member_id=referrer_wallet.member_id, business_unit=business_unit, merchant=None, amount_cny=None,
        points=None, receipt_no="", occurred_at=occurred_at, reason=reason, event_type=EventType.REFERRAL,
    )
    if Posting.objects.filter(idempotency_scope=idempotency.scope, idempotency_key=idempotency.key).exists():
        return None
    try:
        with transaction.atomic():
            posting, _plan = _earn_locked(
                wallet=referrer_wallet, business_unit=business_unit, merchant=None, amount_cny=None, points=None,
                receipt_no="", reason=reason, occurred_at=occurred_at, event_type=EventType.REFERRAL,
                idempotency=idempotency, fingerprint=fingerprint, actor=None,
            )
    except DomainError as refused:
        logger.warning("referral of member %s not paid: %s", referee.pk, refused)
        return None
    return posting


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
    max_backdate: timedelta | None = MAX_BACKDATE,
    event_type: str | None = None,
) -> PostingResult:
    """Credit points for an event: a purchase (amount_cny), another event type the earning rules
    price (points.rules), or a fixed number of points given by the caller (no rules apply).

    Under the wallet lock: the earn gates run (they may refuse, or hold the new lots), the rules
    are evaluated against the member's history, each rule's points are trimmed to its caps and
    budget, the posting stores the explanation (which rule gave how many points) and one lot is
    credited per distinct (pending, expiry) of the rules that fired. With no rule, the business
    unit's base rate applies, and lots follow its pending days and expiry. Then lots under the
    activity-extends policy move forward and the after-earn hooks run. A referee's first purchase
    awards the referrer in the same transaction (both wallets locked, in id order).
    A zero-point event still records a posting (with no entries), so retries replay it.
    """
    event_type = earn_validate(amount_cny=amount_cny, points=points, event_type=event_type)
    fingerprint = earn_fingerprint(
        member_id=member_id, business_unit=business_unit, merchant=merchant, amount_cny=amount_cny, points=points,
        receipt_no=receipt_no, occurred_at=occurred_at, reason=reason, event_type=event_type,
    )
    occurred_at = occurred_at or timezone.now()

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            referrer_id = _referrer_to_lock(member_id=member_id, event_type=event_type)
            wallet, referrer_wallet = _earn_wallets_lock(member_id=member_id, referrer_id=referrer_id)
            if replay := _replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=wallet, replayed=True)
            # After the replay: a retry of an accepted backdated earn replays even once the window has passed.
            checked_occurred_at(occurred_at, max_backdate)
            posting, plan = _earn_locked(
                wallet=wallet, business_unit=business_unit, merchant=merchant, amount_cny=amount_cny, points=points,
                receipt_no=receipt_no, reason=reason, occurred_at=occurred_at, event_type=event_type,
                idempotency=idempotency, fingerprint=fingerprint, actor=actor,
            )
            if plan.triggers_referral and referrer_wallet is not None:
                _referral_award_locked(
                    referee=wallet.member, referrer_wallet=referrer_wallet, business_unit=business_unit,
                    occurred_at=occurred_at,
                )
            return PostingResult(posting=posting, wallet=wallet)

    return _idempotent(idempotency, fingerprint, write)


def rule_award_rows(*, posting: Posting, wallet: Wallet, plan: EarnPlan, earned_at: datetime) -> list[RuleAward]:
    """What each rule gave in this earn (unsaved): caps and per-member limits count these."""
    return [
        RuleAward(rule_id=c.rule.id, wallet=wallet, posting=posting, points=c.points, earned_at=earned_at)
        for c in plan.contributions if c.rule is not None and c.points > 0
    ]


def _record_rule_awards(*, posting: Posting, wallet: Wallet, plan: EarnPlan, earned_at: datetime) -> None:
    """Count what each rule gave (caps and per-member limits read these) and spend its budget.

    The budget rows were locked by member_facts, so spending here cannot overrun the budget."""
    given = rule_award_rows(posting=posting, wallet=wallet, plan=plan, earned_at=earned_at)
    RuleAward.objects.bulk_create(given)
    budgets = {c.rule.id: c.rule.budget_points for c in plan.contributions if c.rule is not None}
    for award in sorted(given, key=lambda award: award.rule_id):
        if budgets[award.rule_id] is not None:
            RuleBudget.objects.filter(rule_id=award.rule_id).update(spent=F("spent") + award.points)


@dataclass(frozen=True)
class EarnSimulation:
    points: int
    explanation: list[dict]
    lots: list[LotPart]


def earn_simulate(
    *,
    member_id: int,
    business_unit: BusinessUnit,
    merchant: Merchant | None = None,
    amount_cny: Decimal | None = None,
    event_type: str | None = None,
    occurred_at: datetime | None = None,
    max_backdate: timedelta | None = MAX_BACKDATE,
    allow_future: bool = False,
) -> EarnSimulation:
    """How many points `points_earn` would give for this event now, and why; posts and locks nothing.

    It runs the same evaluation on the same facts, so it equals the real posting unless another
    earn lands in between or an earn gate refuses or holds the event. Operators may simulate a
    future moment (`allow_future`, e.g. next weekend's campaign) that could not be posted yet.
    """
    event_type = earn_validate(amount_cny=amount_cny, points=None, event_type=event_type)
    if not (allow_future and occurred_at is not None):
        occurred_at = checked_occurred_at(occurred_at, max_backdate)
    wallet = Wallet.objects.select_related("member").filter(member_id=member_id).first()
    if wallet is None:
        raise NotFound(f"member {member_id} not found")
    if wallet.member.status != MemberStatus.ACTIVE:
        raise MemberInactive()
    plan = earn_plan(
        wallet=wallet, business_unit=business_unit, merchant=merchant, event_type=event_type, amount_cny=amount_cny,
        points=None, occurred_at=occurred_at, tier=member_tier(wallet.member, occurred_at), hold_until=None,
        lock_budgets=False,
    )
    return EarnSimulation(points=plan.points, explanation=plan.explanation, lots=plan.lots)


def points_referral_award(*, referee_id: int) -> PostingResult | None:
    """Award the referrer of `referee_id` for the referee's first purchase, if not done yet.

    Purchases do this themselves; this is for the record, e.g. after a referral rule was
    switched on. Everything derives from the referee's first purchase (its business unit funds
    it, its time is the award's) under the key `referral:<referee>`, so it happens at most once
    whoever calls it and however often. None when there is no referrer or no purchase yet.
    """
    referrer_id = Member.objects.filter(pk=referee_id).values_list("referred_by_id", flat=True).first()
    first_purchase = (
        Posting.objects.filter(wallet__member_id=referee_id, kind=PostingKind.EARN, event_type=EventType.PURCHASE)
        .select_related("business_unit").order_by("id").first()
    )
    if referrer_id is None or first_purchase is None:
        return None
    return points_earn(
        member_id=referrer_id, business_unit=first_purchase.business_unit, event_type=EventType.REFERRAL,
        occurred_at=first_purchase.occurred_at.astimezone(dt_timezone.utc), reason=f"referral of member {referee_id}",
        max_backdate=None, idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"referral:{referee_id}"),
    )


def points_registration_award(member: Member) -> None:
    """Enrolment hook: once enrolment commits, award the registration rules (key `registration:<member>`).

    Needs the business unit the member enrolled at (it funds the points); a member enrolled
    without one earns through a `registration` event instead. Rules for registration should
    set `max_awards_per_member` = 1, so the hook and an event never both pay.
    """
    if member.enrolled_business_unit_id is None or not rule_config().has_rules_for(EventType.REGISTRATION):
        return
    transaction.on_commit(
        partial(
            points_earn, member_id=member.pk, business_unit=member.enrolled_business_unit,
            event_type=EventType.REGISTRATION, occurred_at=member.enrolled_at, max_backdate=None,
            idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"registration:{member.pk}"),
        ),
        robust=True,
    )


def points_birthday_awards(*, day: date, after_member_id: int = 0, batch_size: int | None = None) -> tuple[int, int | None]:
    """Post the `birthday` event for the next batch of active members born on `day` (the group's
    calendar; members born on 29 February count on 28 February in other years).

    The business unit a member enrolled at funds the award; members enrolled without one are
    skipped. The key `birthday:<member>:<year>` makes a rerun, or an overlapping run, award
    nothing twice. Returns (events posted, cursor for the next batch or None when done).
    """
    if not rule_config().has_rules_for(EventType.BIRTHDAY):
        return 0, None
    batch_size = batch_size or settings.POINTS_EXPIRY_BATCH_SIZE
    born = Q(birthday__month=day.month, birthday__day=day.day)
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
        born |= Q(birthday__month=2, birthday__day=29)
    members = list(
        Member.objects.filter(born, pk__gt=after_member_id, status=MemberStatus.ACTIVE,
                              enrolled_business_unit__isnull=False)
        .select_related("enrolled_business_unit").order_by("pk")[:batch_size]
    )
    posted = 0
    for member in members:
        try:
            result = points_earn(
                member_id=member.pk, business_unit=member.enrolled_business_unit, event_type=EventType.BIRTHDAY,
                occurred_at=start_of_local_day(day), max_backdate=None,
                idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"birthday:{member.pk}:{day.year}"),
            )
        except DomainError as refused:
            logger.warning("birthday award of member %s refused: %s", member.pk, refused)
            continue
        posted += not result.replayed
    cursor = members[-1].pk if len(members) == batch_size else None
    return posted, cursor


def _lots_extend_for_activity(*, wallet: Wallet, at: datetime, posting: Posting | None, tier: TierInfo | None) -> int:
    """Push forward the expiry of the wallet's open lots under an activity-extends policy.

    The caller holds the wallet lock. An expiry only ever moves later; each move is recorded
    (LotExpiryChange). Lots already past their expiry at `at` are left to the expiry job.
    """
    if not rule_config().activity_extends:
        return 0
    lots = list(
        Lot.objects.filter(
            wallet=wallet, remaining__gt=0, expires_at__gte=at, expiry_policy__kind=ExpiryKind.ACTIVITY_EXTENDS
        ).select_related("expiry_policy")
    )
    changes = []
    for lot in lots:
        extended = activity_extended_expiry(PolicySpec.from_model(lot.expiry_policy), activity_at=at, tier=tier)
        if extended > lot.expires_at:
            changes.append(LotExpiryChange(
                lot=lot, posting=posting, previous_expires_at=lot.expires_at, expires_at=extended,
                reason=f"activity at {at.isoformat()}",
            ))
            lot.expires_at = extended
    Lot.objects.bulk_update([change.lot for change in changes], ["expires_at"])
    LotExpiryChange.objects.bulk_create(changes)
    return len(changes)


def points_activity_record(*, member_id: int, at: datetime | None = None) -> int:
    """A qualifying activity other than an earn (e.g. a redemption): extend the member's lots
    under activity-extends. Earns do this themselves. Returns how many lots moved."""
    at = at or timezone.now()
    with transaction.atomic(durable=True):
        wallet = wallet_lock(member_id=member_id)
        return _lots_extend_for_activity(wallet=wallet, at=at, posting=None, tier=member_tier(wallet.member, at))


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
            posting = posting_row(
                wallet=wallet, kind=PostingKind.SPEND, points=-points, idempotency=idempotency,
                fingerprint=fingerprint, occurred_at=now, business_unit=business_unit, merchant=merchant,
                reason=reason, actor=actor,
            )
            movements, touched, entries = debit_rows(
                posting=posting, wallet=wallet, lots=lots, points=points, business_unit=business_unit,
                target_account=Account.REDEMPTION,
            )
            _write_debit(posting=posting, movements=movements, lots=touched, entries=entries, wallet=wallet)
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
    A refund follows the debt policy of this module; a cancel repays the wallet's debt first,
    then gives the rest back to exactly the lots the spend consumed, the latest-expiring first. Points given back to a lot that has
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
    repaid = min(amount, wallet.debt)
    to_wallet = amount - repaid
    net_taken = {}
    for movement in LotMovement.objects.filter(posting__in=[original, *original.reversals.all()]):
        net_taken[movement.lot_id] = net_taken.get(movement.lot_id, 0) - movement.amount
    lots = Lot.objects.filter(id__in=[lot_id for lot_id, taken in net_taken.items() if taken > 0])
    movements, touched, left = [], [], to_wallet
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
    entries = [Entry(posting=posting, account=Account.REDEMPTION, business_unit=original.business_unit, amount=-amount)]
    if repaid:
        entries.append(Entry(posting=posting, account=Account.DEBT, wallet=wallet, amount=repaid))
    if to_wallet:
        entries.append(Entry(posting=posting, account=Account.WALLET, wallet=wallet, amount=to_wallet))
    Entry.objects.bulk_create(entries)
    wallet.debt -= repaid
    wallet.balance += to_wallet
    wallet.save(update_fields=["balance", "debt", "updated_at"])
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

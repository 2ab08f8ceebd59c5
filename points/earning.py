"""Earning: the earning rules price an event, and the ledger core credits what they give.

`points_earn` is the one earn (purchases, other events, fixed points); the bulk earn
(points.batch) prices through the same gated plan. Also here: what an earn sets going in the
same transaction (rule awards and budgets, the referral award, activity-extended expiry) and the
awards of the periodic jobs (registration, birthdays). Ledger rows are written by points.ledger.
"""

import calendar
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config.errors import DomainError
from members.models import BusinessUnit, Member, MemberStatus, Merchant
from points.exceptions import (
    AmountNotAllowed,
    AmountTooLarge,
    InvalidEventType,
    InvalidOccurredAt,
    InvalidPoints,
    MemberInactive,
    NotFound,
)
from points.ledger import (
    SYSTEM_SCOPE,
    Idempotency,
    LotPart,
    PostingResult,
    PostingRows,
    credit_rows,
    posting_replay,
    posting_row,
    request_fingerprint,
    run_idempotent,
    wallet_lock,
    wallets_lock,
    lots_extend_for_activity,
    write_posting,
)
from points.models import (
    Account,
    EventType,
    Posting,
    PostingKind,
    RuleAward,
    RuleBudget,
    Wallet,
)
from points.policies import EarnContext, TierInfo, after_earn_hooks, earn_gates, member_tier
from points.rules.engine import (
    Contribution,
    Event,
    LotTerms,
    RuleConfig,
    RuleSpec,
    evaluate,
    lot_terms,
    static_match,
)
from points.rules.selectors import member_facts, member_tags, rule_config
from points.statements.credited import points_credited_on_commit
from points.timeutils import start_of_local_day

logger = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=5)
# The events about money: only these carry an amount (the others are priced by their rules alone).
MONEY_EVENTS = frozenset({EventType.PURCHASE, EventType.BILL, EventType.PARKING})
# How far back a partner may date an event by default (occurred_at).
MAX_BACKDATE = timedelta(days=30)


def validate_points(points) -> int:
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise InvalidPoints()
    return points


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
    """Group the contributions' points by when they become available and expire: one lot each.
    A bonus on other contributions (the tier's) is split into its shares, each with the terms of
    the rule it multiplies."""
    groups: dict[tuple, list[tuple[RuleSpec | None, int]]] = {}
    terms_of: dict[tuple, LotTerms] = {}
    for contribution in contributions:
        if contribution.points <= 0:
            continue
        for rule, points in contribution.terms_shares():
            terms = lot_terms(
                rule, earned_at=earned_at, default_policy=config.default_policy(business_unit.pk),
                bu_expiry_months=business_unit.expiry_months, bu_pending_days=business_unit.pending_days, tier=tier,
                hold_until=hold_until,
            )
            key = (terms.available_at, terms.expires_at, terms.policy.id if terms.policy else None)
            groups.setdefault(key, []).append((rule, points))
            terms_of[key] = terms
    parts = []
    for key, group in groups.items():
        ruled = [(rule, points) for rule, points in group if rule is not None]
        main = max(ruled, key=lambda share: share[1])[0] if ruled else None
        parts.append(LotPart(
            points=sum(points for _rule, points in group), rule_code=main.code if main else "", terms=terms_of[key]
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
    member = wallet.member  # None for an organization's wallet: no tags, birthday or referral
    event = Event(
        event_type=event_type, business_unit_id=business_unit.pk, bu_kind=business_unit.kind,
        bu_earn_rate=business_unit.earn_rate, merchant_id=merchant.pk if merchant else None,
        merchant_category=merchant.category if merchant else "", amount_cny=amount_cny, occurred_at=occurred_at,
    )
    tags = (member_tags(member_id=member.pk) if member is not None and any(rule.member_tag for rule in config.rules)
            else frozenset())
    birthday = member.birthday if member is not None else None
    candidates = [rule for rule in config.rules if static_match(rule, event, tier, tags, birthday)]
    referral_possible = (
        event_type == EventType.PURCHASE and member is not None and member.referred_by_id is not None
        and config.has_rules_for(EventType.REFERRAL)
    )
    facts = member_facts(
        wallet=wallet, rules=candidates, event=event, tier=tier, tags=tags,
        budget_spent=rule_budgets_lock(rules=candidates) if lock_budgets else None,
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


def rule_budgets_lock(*, rules: list) -> dict[int, int] | None:
    """Lock the budget rows of the budgeted rules among `rules` (creating missing ones), in rule
    id order, until the earn commits, so that parallel earns never overspend a budget; what each
    has given. None when no rule has a budget (nothing is read)."""
    budgeted = sorted(rule.id for rule in rules if rule.budget_points is not None)
    if not budgeted:
        return None
    RuleBudget.objects.bulk_create([RuleBudget(rule_id=rule_id) for rule_id in budgeted], ignore_conflicts=True)
    locked = RuleBudget.objects.select_for_update().filter(rule_id__in=budgeted).order_by("rule_id")
    return dict(locked.values_list("rule_id", "spent"))


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
        validate_points(points)
    if amount_cny is not None and amount_cny < 0:
        raise InvalidPoints("amount_cny must not be negative")
    if amount_cny is not None and event_type is not None and event_type not in MONEY_EVENTS:
        raise AmountNotAllowed()
    if amount_cny is not None and amount_cny > settings.POINTS_MAX_AMOUNT_CNY:
        raise AmountTooLarge(ceiling=settings.POINTS_MAX_AMOUNT_CNY)
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
    amount_cny: Decimal | None, points: int | None, occurred_at: datetime, tier: TierInfo | None, receipt_no: str,
) -> EarnPlan:
    """The earn gates' verdict (a refusal raises, a hold delays the lots) and the rules' plan,
    for a wallet the caller has locked."""
    context = EarnContext(
        member=wallet.member, business_unit=business_unit, merchant=merchant, event_type=event_type,
        amount_cny=amount_cny, occurred_at=occurred_at, receipt_no=receipt_no,
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
) -> tuple[Posting | None, EarnPlan]:
    """The earn itself, for a wallet the caller has locked and whose key is not taken. An event
    that earns nothing writes nothing (no posting: None), so histories show only what moved."""
    member = wallet.member
    if member.status != MemberStatus.ACTIVE:
        raise MemberInactive()
    tier = member_tier(member, occurred_at)
    plan = gated_earn_plan(
        wallet=wallet, business_unit=business_unit, merchant=merchant, event_type=event_type,
        amount_cny=amount_cny, points=points, occurred_at=occurred_at, tier=tier, receipt_no=receipt_no,
    )
    posting = posting_row(
        wallet=wallet, kind=PostingKind.EARN, points=plan.points, idempotency=idempotency,
        fingerprint=fingerprint, occurred_at=occurred_at, business_unit=business_unit, merchant=merchant,
        amount_cny=amount_cny, receipt_no=receipt_no, reason=reason, explanation=plan.explanation,
        actor=actor, event_type=event_type,
    )
    if not plan.points:
        return None, plan
    lots, entries = credit_rows(
        posting=posting, wallet=wallet, parts=plan.lots, business_unit=business_unit, merchant=merchant,
        source_account=Account.ISSUANCE, earned_at=occurred_at,
    )
    write_posting(PostingRows(posting=posting, wallet=wallet, lots=lots, movements=[], entries=entries, changed_lots=[]))
    points_credited_on_commit(posting=posting, business_unit=business_unit)
    record_rule_awards(posting=posting, wallet=wallet, plan=plan, earned_at=occurred_at)
    lots_extend_for_activity(wallet=wallet, at=occurred_at, posting=posting, tier=tier)
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
    wallets = {wallet.member_id: wallet for wallet in wallets_lock(member_ids=[member_id, referrer_id])}
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
    An event that earns nothing writes nothing: the result has no posting, and a retry under the
    same key is judged afresh.
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
            if replay := posting_replay(idempotency, fingerprint):
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

    return run_idempotent(idempotency, fingerprint, write)


def rule_award_rows(*, posting: Posting, wallet: Wallet, plan: EarnPlan, earned_at: datetime) -> list[RuleAward]:
    """What each rule gave in this earn (unsaved): caps and per-member limits count these."""
    return [
        RuleAward(rule_id=c.rule.id, wallet=wallet, posting=posting, points=c.points, earned_at=earned_at)
        for c in plan.contributions if c.rule is not None and c.points > 0
    ]


def record_rule_awards(*, posting: Posting, wallet: Wallet, plan: EarnPlan, earned_at: datetime) -> None:
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







"""The earning-rules engine: pure functions from an event and its facts to points.

Nothing here touches the database. The earn service (points.earning.points_earn) reads the
active rules (cached, points.selectors.rule_config) and the facts about the member under the
wallet lock, calls `evaluate`, and posts the result; the simulation calls the same functions
without posting, so both give the same answer for the same event.

How rules combine, for one event:

1. A rule *matches* when its event type, scope and every condition hold, and it still has
   room: its campaign budget is not spent, the member's daily / monthly cap is not reached,
   and the member has not had it `max_awards_per_member` times.
2. Matching rules run by priority, highest first (then by code). An *exclusive* rule that
   matches is the last one that applies: rules of lower priority, and the business unit's
   base rate, are dropped.
3. Rate rules set the base: the first matching rate rule gives floor(amount x rate); the others
   are ignored. When no rate rule matches and the event has an amount (and no exclusive rule
   fired), the business unit's base rate applies (1 point per CNY by default).
4. Multiplier rules each add floor(base x (multiplier - 1)): birthday "double points" on a
   base of 120 adds 120. Fixed rules add their points; "spend over X get Y" adds Y when the
   amount is at least X.
5. Each rule's points are trimmed to its room (budget, caps), so a rule never overspends.
6. The member's tier multiplier (from points.policies) applies on top of the total:
   floor(total x (tier multiplier - 1)), shown as its own line of the explanation. The bonus
   takes the terms of the points it multiplies: it is shared out over the contributions in
   proportion to their points (largest remainders first, so the shares add up to the bonus
   exactly) and each share becomes available and expires with the rule it multiplies.
"""

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from dateutil.relativedelta import relativedelta

from points.models import EventType, ExpiryKind, ExpiryPeriod, RuleEffect, RuleScope
from points.policies import TierInfo
from points.timeutils import end_of_local_day, expiry_after_months, group_timezone, local_date

BASE_RATE_CODE = "base_rate"
TIER_CODE_PREFIX = "tier:"


@dataclass(frozen=True)
class PolicySpec:
    id: int
    code: str
    kind: str
    months: int
    period: str
    periods: int

    @classmethod
    def from_model(cls, policy) -> "PolicySpec":
        return cls(
            id=policy.pk, code=policy.code, kind=policy.kind, months=policy.months, period=policy.period,
            periods=policy.periods,
        )


@dataclass(frozen=True)
class RuleSpec:
    """A snapshot of one EarningRule, cheap to cache and to evaluate."""

    id: int
    code: str
    name: str
    event_type: str
    scope: str = RuleScope.ALL
    bu_kind: str = ""
    business_unit_id: int | None = None
    merchant_id: int | None = None
    merchant_category: str = ""
    min_amount_cny: Decimal | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    weekdays: tuple[int, ...] = ()
    hour_from: int | None = None
    hour_to: int | None = None
    tier_codes: tuple[str, ...] = ()
    member_tag: str = ""
    first_purchase: bool = False
    nth_purchase: int | None = None
    nth_period: str = ""
    birthday_month: bool = False
    streak_days: int | None = None
    max_awards_per_member: int | None = None
    effect: str = RuleEffect.FIXED
    rate: Decimal | None = None
    points: int | None = None
    multiplier: Decimal | None = None
    threshold_cny: Decimal | None = None
    cap_per_member_day: int | None = None
    cap_per_member_month: int | None = None
    budget_points: int | None = None
    priority: int = 0
    exclusive: bool = False
    expiry_months: int | None = None
    expiry_date: date | None = None
    expiry_policy: PolicySpec | None = None
    pending_days: int | None = None

    @property
    def reads_history(self) -> bool:
        """Whether the rule's points depend on the member's earlier earns or awards, or on a
        budget shared by all members: earns evaluated together would have to see each other."""
        return bool(
            self.first_purchase or self.nth_purchase is not None or self.streak_days
            or self.max_awards_per_member is not None or self.cap_per_member_day is not None
            or self.cap_per_member_month is not None or self.budget_points is not None
        )

    @classmethod
    def from_model(cls, rule) -> "RuleSpec":
        policy = rule.expiry_policy
        return cls(
            id=rule.pk, code=rule.code, name=rule.name, event_type=rule.event_type, scope=rule.scope,
            bu_kind=rule.bu_kind, business_unit_id=rule.business_unit_id, merchant_id=rule.merchant_id,
            merchant_category=rule.merchant_category, min_amount_cny=rule.min_amount_cny,
            starts_at=rule.starts_at, ends_at=rule.ends_at, weekdays=tuple(rule.weekdays),
            hour_from=rule.hour_from, hour_to=rule.hour_to, tier_codes=tuple(rule.tier_codes),
            member_tag=rule.member_tag, first_purchase=rule.first_purchase, nth_purchase=rule.nth_purchase,
            nth_period=rule.nth_period, birthday_month=rule.birthday_month, streak_days=rule.streak_days,
            max_awards_per_member=rule.max_awards_per_member, effect=rule.effect, rate=rule.rate,
            points=rule.points, multiplier=rule.multiplier, threshold_cny=rule.threshold_cny,
            cap_per_member_day=rule.cap_per_member_day, cap_per_member_month=rule.cap_per_member_month,
            budget_points=rule.budget_points, priority=rule.priority, exclusive=rule.stacking == "exclusive",
            expiry_months=rule.expiry_months, expiry_date=rule.expiry_date,
            expiry_policy=PolicySpec.from_model(policy) if policy else None, pending_days=rule.pending_days,
        )


@dataclass(frozen=True)
class RuleConfig:
    """Everything the engine reads from configuration: the active rules, by priority, and the
    default expiry policies (key: business unit id, or None for the group-wide one)."""

    rules: tuple[RuleSpec, ...] = ()
    default_policies: dict = field(default_factory=dict)
    activity_extends: bool = False

    def has_rules_for(self, event_type: str) -> bool:
        return any(rule.event_type == event_type for rule in self.rules)

    @property
    def purchases_independent(self) -> bool:
        """Whether purchases of different members can be priced and posted together, set-wise:
        no purchase rule reads history, no referral can follow, no earn moves other lots."""
        return not (
            self.activity_extends or self.has_rules_for(EventType.REFERRAL)
            or any(rule.reads_history for rule in self.rules if rule.event_type == EventType.PURCHASE)
        )

    def default_policy(self, business_unit_id: int) -> PolicySpec | None:
        return self.default_policies.get(business_unit_id) or self.default_policies.get(None)


@dataclass(frozen=True)
class Event:
    """The event as the engine sees it; times are aware datetimes."""

    event_type: str
    business_unit_id: int
    bu_kind: str
    bu_earn_rate: Decimal
    merchant_id: int | None
    merchant_category: str
    amount_cny: Decimal | None
    occurred_at: datetime


@dataclass(frozen=True)
class MemberFacts:
    """What the engine knows about the member at the time of the event (read under the wallet
    lock when posting). Counts are of events recorded before this one."""

    tier: TierInfo | None = None
    tags: frozenset[str] = frozenset()
    birthday: date | None = None
    has_purchased: bool = False
    purchases_in_period: dict[str, int] = field(default_factory=dict)
    streak_days: int = 1
    first_event_today: bool = True
    used_today: dict[int, int] = field(default_factory=dict)
    used_this_month: dict[int, int] = field(default_factory=dict)
    awards: dict[int, int] = field(default_factory=dict)
    budget_left: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Contribution:
    """Points one rule (or the base rate, or the tier) gives for the event."""

    code: str
    name: str
    effect: str
    points: int
    rule: RuleSpec | None = None
    detail: dict = field(default_factory=dict)
    # For a bonus on other contributions (the tier's): (rule multiplied, points) pairs that add up
    # to `points`, so each share takes that rule's terms. Empty: all points take `rule`'s terms.
    shares: tuple[tuple[RuleSpec | None, int], ...] = ()

    def terms_shares(self) -> tuple[tuple[RuleSpec | None, int], ...]:
        """(rule whose terms apply, points) for the points of this contribution."""
        return self.shares or ((self.rule, self.points),)

    def as_explanation(self) -> dict:
        return {"rule": self.code, "name": self.name, "effect": self.effect, "points": self.points, **self.detail}


def floor_points(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_DOWN))


# --- matching ------------------------------------------------------------------------------


def in_scope(rule: RuleSpec, event: Event) -> bool:
    match rule.scope:
        case RuleScope.ALL:
            return True
        case RuleScope.BU_KIND:
            return rule.bu_kind == event.bu_kind
        case RuleScope.BUSINESS_UNIT:
            return rule.business_unit_id == event.business_unit_id
        case RuleScope.MERCHANT:
            return event.merchant_id is not None and rule.merchant_id == event.merchant_id
        case RuleScope.CATEGORY:
            return bool(event.merchant_category) and rule.merchant_category == event.merchant_category
    return False


def static_match(rule: RuleSpec, event: Event, tier: TierInfo | None, tags: frozenset[str], birthday: date | None) -> bool:
    """The conditions that need no count from the ledger: a rule failing these needs no facts."""
    local = event.occurred_at.astimezone(group_timezone())
    amount = event.amount_cny
    return (
        rule.event_type == event.event_type
        and in_scope(rule, event)
        and (rule.min_amount_cny is None or (amount is not None and amount >= rule.min_amount_cny))
        and (rule.starts_at is None or event.occurred_at >= rule.starts_at)
        and (rule.ends_at is None or event.occurred_at < rule.ends_at)
        and (not rule.weekdays or local.weekday() in rule.weekdays)
        and (rule.hour_from is None or local.hour >= rule.hour_from)
        and (rule.hour_to is None or local.hour < rule.hour_to)
        and (not rule.tier_codes or (tier is not None and tier.code in rule.tier_codes))
        and (not rule.member_tag or rule.member_tag in tags)
        and (not rule.birthday_month or (birthday is not None and birthday.month == local.month))
        and (rule.effect != RuleEffect.RATE or amount is not None)
        and (rule.effect != RuleEffect.THRESHOLD_BONUS or (amount is not None and amount >= rule.threshold_cny))
    )


def room(rule: RuleSpec, facts: MemberFacts) -> int | None:
    """How many more points the rule may give this member now (None: no limit)."""
    limits = []
    if rule.cap_per_member_day is not None:
        limits.append(rule.cap_per_member_day - facts.used_today.get(rule.id, 0))
    if rule.cap_per_member_month is not None:
        limits.append(rule.cap_per_member_month - facts.used_this_month.get(rule.id, 0))
    if rule.budget_points is not None:
        limits.append(facts.budget_left.get(rule.id, rule.budget_points))
    return max(0, min(limits)) if limits else None


def dynamic_match(rule: RuleSpec, facts: MemberFacts) -> bool:
    """The conditions that count the member's history, and whether the rule has room left."""
    if rule.first_purchase and facts.has_purchased:
        return False
    if rule.nth_purchase is not None and facts.purchases_in_period.get(rule.nth_period, 0) + 1 != rule.nth_purchase:
        return False
    if rule.streak_days is not None and not (facts.first_event_today and facts.streak_days % rule.streak_days == 0):
        return False
    if rule.max_awards_per_member is not None and facts.awards.get(rule.id, 0) >= rule.max_awards_per_member:
        return False
    return room(rule, facts) != 0


# --- evaluation ----------------------------------------------------------------------------


def _rule_contribution(rule: RuleSpec, points: int, facts: MemberFacts, **detail) -> Contribution:
    limit = room(rule, facts)
    given = points if limit is None else min(points, limit)
    if given < points:
        detail["capped_from"] = points
    return Contribution(code=rule.code, name=rule.name, effect=rule.effect, points=given, rule=rule, detail=detail)


def evaluate(rules: tuple[RuleSpec, ...], event: Event, facts: MemberFacts) -> list[Contribution]:
    """The contributions of every rule that applies to `event`, in priority order, then the
    tier's. See the module docstring for how they combine."""
    applying = []
    for rule in sorted(rules, key=lambda r: (-r.priority, r.code)):
        if static_match(rule, event, facts.tier, facts.tags, facts.birthday) and dynamic_match(rule, facts):
            applying.append(rule)
            if rule.exclusive:
                break
    exclusive_fired = bool(applying) and applying[-1].exclusive

    contributions: list[Contribution] = []
    rate_rule = next((rule for rule in applying if rule.effect == RuleEffect.RATE), None)
    if rate_rule is not None:
        base = _rule_contribution(
            rate_rule, floor_points(event.amount_cny * rate_rule.rate), facts, rate=str(rate_rule.rate)
        )
        contributions.append(base)
    elif event.amount_cny is not None and not exclusive_fired:
        base = Contribution(
            code=BASE_RATE_CODE, name="base rate", effect=RuleEffect.RATE,
            points=floor_points(event.amount_cny * event.bu_earn_rate), detail={"rate": str(event.bu_earn_rate)},
        )
        contributions.append(base)
    else:
        base = None
    base_points = base.points if base else 0

    for rule in applying:
        if rule.effect == RuleEffect.MULTIPLIER:
            contributions.append(_rule_contribution(
                rule, floor_points(base_points * (rule.multiplier - 1)), facts, multiplier=str(rule.multiplier)
            ))
        elif rule.effect == RuleEffect.FIXED:
            contributions.append(_rule_contribution(rule, rule.points, facts))
        elif rule.effect == RuleEffect.THRESHOLD_BONUS:
            contributions.append(_rule_contribution(rule, rule.points, facts, spend_over=str(rule.threshold_cny)))

    tier = facts.tier
    total = sum(c.points for c in contributions)
    if tier is not None and tier.earn_multiplier > 1 and total:
        bonus = floor_points(total * (tier.earn_multiplier - 1))
        contributions.append(Contribution(
            code=f"{TIER_CODE_PREFIX}{tier.code}", name=f"tier {tier.code}", effect=RuleEffect.MULTIPLIER,
            points=bonus, detail={"multiplier": str(tier.earn_multiplier)}, shares=bonus_shares(bonus, contributions),
        ))
    return contributions


def bonus_shares(bonus: int, contributions: list[Contribution]) -> tuple[tuple[RuleSpec | None, int], ...]:
    """`bonus` shared over the contributions in proportion to their points: each gets the floor of
    its exact share, and the points left go one each to the largest remainders (then the earliest)."""
    given = [c for c in contributions if c.points > 0]
    total = sum(c.points for c in given)
    exact = [(bonus * c.points // total, bonus * c.points % total) for c in given]
    left = bonus - sum(whole for whole, _remainder in exact)
    by_remainder = sorted(range(len(given)), key=lambda i: (-exact[i][1], i))
    extra = set(by_remainder[:left])
    shares = [(c.rule, whole + (i in extra)) for i, (c, (whole, _remainder)) in enumerate(zip(given, exact, strict=True))]
    return tuple((rule, points) for rule, points in shares if points)


# --- expiry and pending --------------------------------------------------------------------


def period_end_expiry(earned_at: datetime, *, period: str, periods: int) -> datetime:
    """End of the calendar quarter or year `periods` periods after the one of `earned_at`.

    Earned 2026-02-10 (Q1), quarter, 0 -> 2026-03-31 end of day; 4 -> 2027-03-31.
    Earned 2026-12-31 23:30 Shanghai, year, 1 -> 2027-12-31 end of day Shanghai.
    """
    day = local_date(earned_at)
    if period == ExpiryPeriod.YEAR:
        return end_of_local_day(date(day.year + periods, 12, 31))
    quarter_start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    target = quarter_start + relativedelta(months=3 * periods + 2)
    return end_of_local_day(target.replace(day=calendar.monthrange(target.year, target.month)[1]))


def policy_expiry(policy: PolicySpec, earned_at: datetime) -> datetime:
    if policy.kind == ExpiryKind.PERIOD_END:
        return period_end_expiry(earned_at, period=policy.period, periods=policy.periods)
    return expiry_after_months(earned_at, policy.months)


def extend_by_months(expires_at: datetime, months: int) -> datetime:
    """The tier extension: the same end of day, `months` later."""
    if not months:
        return expires_at
    return end_of_local_day(local_date(expires_at) + relativedelta(months=months))


@dataclass(frozen=True)
class LotTerms:
    available_at: datetime
    expires_at: datetime
    policy: PolicySpec | None


def lot_terms(
    rule: RuleSpec | None, *, earned_at: datetime, default_policy: PolicySpec | None, bu_expiry_months: int,
    bu_pending_days: int, tier: TierInfo | None, hold_until: datetime | None = None,
) -> LotTerms:
    """When points a rule gives become available and expire.

    Expiry: the rule's override (months, a date, or a policy), else the default policy, else the
    business unit's months; then the tier's extension on top. Pending: the rule's override, else
    the business unit's days; an earn gate's hold can only make it longer.
    """
    policy = None
    if rule is not None and rule.expiry_months is not None:
        expires_at = expiry_after_months(earned_at, rule.expiry_months)
    elif rule is not None and rule.expiry_date is not None:
        expires_at = end_of_local_day(rule.expiry_date)
    else:
        policy = (rule.expiry_policy if rule is not None else None) or default_policy
        expires_at = policy_expiry(policy, earned_at) if policy else expiry_after_months(earned_at, bu_expiry_months)
    expires_at = extend_by_months(expires_at, tier.expiry_extension_months if tier else 0)
    pending_days = rule.pending_days if rule is not None and rule.pending_days is not None else bu_pending_days
    available_at = earned_at + timedelta(days=pending_days)
    if hold_until is not None:
        available_at = max(available_at, hold_until)
    return LotTerms(available_at=min(available_at, expires_at), expires_at=expires_at, policy=policy)


def activity_extended_expiry(policy: PolicySpec, *, activity_at: datetime, tier: TierInfo | None) -> datetime:
    """Under "activity extends", where an activity at `activity_at` pushes a lot's expiry."""
    return extend_by_months(expiry_after_months(activity_at, policy.months), tier.expiry_extension_months if tier else 0)

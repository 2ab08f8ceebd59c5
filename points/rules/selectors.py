"""Reads of the earning rules: the active rules and default expiry policies (cached), and the
facts about a member's history that the rules in play need for one event."""

from datetime import timedelta

from django.db.models import Count, Sum

from config.cache import VersionedCache
from points.models import (
    EarningRule,
    EventType,
    ExpiryKind,
    ExpiryPolicy,
    MemberTag,
    Posting,
    PostingKind,
    RuleAward,
    RuleBudget,
    Wallet,
)
from points.policies import TierInfo
from points.rules.engine import Event, MemberFacts, PolicySpec, RuleConfig, RuleSpec
from points.timeutils import local_date, local_period_end, local_period_start

STREAK_LOOKBACK_DAYS = 400


def rule_config() -> RuleConfig:
    """The active earning rules and default expiry policies, cached (config.cache): the earn
    path is hot. Any change of a rule or policy replaces the cache version (PointsConfig.ready)."""
    return rule_configs.get()


def _rule_config_load() -> RuleConfig:
    rules = EarningRule.objects.filter(is_active=True).select_related("expiry_policy")
    policies = ExpiryPolicy.objects.filter(is_default=True)
    return RuleConfig(
        rules=tuple(RuleSpec.from_model(rule) for rule in rules.order_by("-priority", "code")),
        default_policies={policy.business_unit_id: PolicySpec.from_model(policy) for policy in policies},
        activity_extends=ExpiryPolicy.objects.filter(kind=ExpiryKind.ACTIVITY_EXTENDS).exists(),
    )


rule_configs = VersionedCache("earning-rules", _rule_config_load)


def _birthday(wallet: Wallet):
    """The member's birthday; an organization's wallet has none."""
    return wallet.member.birthday if wallet.member_id is not None else None


def member_facts(
    *, wallet: Wallet, rules: list[RuleSpec], event: Event, tier: TierInfo | None, tags: frozenset[str],
    budget_spent: dict[int, int] | None = None, need_has_purchased: bool = False,
) -> MemberFacts:
    """What the rules in `rules` need to know about the member's history for this event.

    Only what some rule (or the caller, `need_has_purchased`) needs is read. The earn service calls
    this under the wallet lock, so the counts cannot change before it posts, and hands in
    `budget_spent`: what each budgeted rule has given, read from the budget rows it has locked
    (points.earning.rule_budgets_lock); the simulation passes nothing and they are read unlocked.
    """
    at = event.occurred_at
    facts: dict = {}
    if not (need_has_purchased or any(rule.reads_history for rule in rules)):
        return MemberFacts(tier=tier, tags=tags, birthday=_birthday(wallet))
    purchases = Posting.objects.filter(wallet=wallet, kind=PostingKind.EARN, event_type=EventType.PURCHASE)
    if need_has_purchased or any(rule.first_purchase for rule in rules):
        facts["has_purchased"] = purchases.exists()
    periods = {rule.nth_period for rule in rules if rule.nth_purchase is not None}
    facts["purchases_in_period"] = {
        period: purchases.filter(
            occurred_at__gte=local_period_start(at, period), occurred_at__lt=local_period_end(at, period)
        ).count()
        for period in periods
    }
    if any(rule.streak_days for rule in rules):
        facts["first_event_today"], facts["streak_days"] = _streak(wallet, event)
    capped = [rule.id for rule in rules if rule.cap_per_member_day is not None or rule.cap_per_member_month is not None]
    if capped:
        awards = RuleAward.objects.filter(wallet=wallet, rule_id__in=capped)
        facts["used_today"] = _points_by_rule(awards.filter(
            earned_at__gte=local_period_start(at, "day"), earned_at__lt=local_period_end(at, "day")
        ))
        facts["used_this_month"] = _points_by_rule(awards.filter(
            earned_at__gte=local_period_start(at, "month"), earned_at__lt=local_period_end(at, "month")
        ))
    limited = [rule.id for rule in rules if rule.max_awards_per_member is not None]
    if limited:
        facts["awards"] = dict(
            RuleAward.objects.filter(wallet=wallet, rule_id__in=limited).values("rule_id").annotate(n=Count("id"))
            .values_list("rule_id", "n")
        )
    budgeted = {rule.id: rule.budget_points for rule in rules if rule.budget_points is not None}
    if budgeted:
        spent = budget_spent if budget_spent is not None else rule_budgets_spent(rule_ids=list(budgeted))
        facts["budget_left"] = {rule_id: budget - spent.get(rule_id, 0) for rule_id, budget in budgeted.items()}
    return MemberFacts(tier=tier, tags=tags, birthday=_birthday(wallet), **facts)


def _points_by_rule(awards) -> dict[int, int]:
    return dict(awards.values("rule_id").annotate(total=Sum("points")).values_list("rule_id", "total"))


def rule_budgets_spent(*, rule_ids: list[int]) -> dict[int, int]:
    """What each of these rules' campaign budgets has given so far (rules with no row: nothing)."""
    return dict(RuleBudget.objects.filter(rule_id__in=rule_ids).values_list("rule_id", "spent"))


def _streak(wallet: Wallet, event: Event) -> tuple[bool, int]:
    """(is this the member's first event of this type today, consecutive days ending today)."""
    today = local_date(event.occurred_at)
    since = local_period_start(event.occurred_at, "day") - timedelta(days=STREAK_LOOKBACK_DAYS)
    days = {
        local_date(moment)
        for moment in Posting.objects.filter(
            wallet=wallet, kind=PostingKind.EARN, event_type=event.event_type, occurred_at__gte=since,
            occurred_at__lt=local_period_end(event.occurred_at, "day"),
        ).values_list("occurred_at", flat=True)
    }
    streak = 1
    while today - timedelta(days=streak) in days:
        streak += 1
    return today not in days, streak


def member_tags(*, member_id: int) -> frozenset[str]:
    return frozenset(MemberTag.objects.filter(member_id=member_id).values_list("tag", flat=True))

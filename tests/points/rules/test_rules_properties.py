"""Properties of the pure rules engine over random rule sets, events and member histories."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from points.models import RuleEffect
from points.policies import TierInfo
from points.rules.engine import BASE_RATE_CODE, Event, MemberFacts, RuleSpec, dynamic_match, evaluate, room, static_match

SHANGHAI = ZoneInfo("Asia/Shanghai")
optional_cap = st.none() | st.integers(min_value=0, max_value=300)


@st.composite
def rule_specs(draw, rule_id):
    effect = draw(st.sampled_from(list(RuleEffect)))
    return RuleSpec(
        id=rule_id, code=f"r{rule_id}", name=f"rule {rule_id}", event_type="purchase", effect=effect,
        rate=draw(st.decimals(min_value=0, max_value=5, places=2)) if effect == RuleEffect.RATE else None,
        points=draw(st.integers(min_value=0, max_value=500)),
        multiplier=draw(st.decimals(min_value=1, max_value=4, places=2)) if effect == RuleEffect.MULTIPLIER else None,
        threshold_cny=Decimal(draw(st.integers(min_value=0, max_value=1000))),
        min_amount_cny=draw(st.none() | st.decimals(min_value=0, max_value=800, places=2)),
        weekdays=tuple(draw(st.sets(st.integers(min_value=0, max_value=6), max_size=3))),
        cap_per_member_day=draw(optional_cap), cap_per_member_month=draw(optional_cap),
        budget_points=draw(optional_cap), priority=draw(st.integers(min_value=-2, max_value=2)),
        exclusive=draw(st.booleans()),
    )


@st.composite
def scenarios(draw):
    rules = tuple(draw(rule_specs(rule_id)) for rule_id in range(1, draw(st.integers(0, 6)) + 1))
    event = Event(
        event_type="purchase", business_unit_id=1, bu_kind="mall",
        bu_earn_rate=draw(st.decimals(min_value=0, max_value=3, places=2)), merchant_id=None, merchant_category="",
        amount_cny=draw(st.none() | st.decimals(min_value=0, max_value=2000, places=2)),
        occurred_at=draw(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31),
                                      timezones=st.just(SHANGHAI))),
    )
    used = st.dictionaries(st.sampled_from([r.id for r in rules] or [0]), st.integers(0, 300), max_size=6)
    facts = MemberFacts(
        tier=draw(st.none() | st.builds(TierInfo, code=st.just("gold"),
                                        earn_multiplier=st.decimals(min_value=1, max_value=3, places=2))),
        used_today=draw(used), used_this_month=draw(used), budget_left=draw(used),
    )
    return rules, event, facts


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_contributions_respect_room_priority_exclusivity_and_the_tier(scenario):
    rules, event, facts = scenario
    contributions = evaluate(rules, event, facts)
    lines = [c for c in contributions if not c.code.startswith("tier:")]
    assert all(c.points >= 0 for c in contributions)

    for c in lines:
        if c.rule is not None:
            limit = room(c.rule, facts)
            assert limit is None or c.points <= limit, "a rule never gives more than its caps and budget allow"
            assert limit != 0, "a rule with no room left does not apply"

    applying = [r for r in sorted(rules, key=lambda r: (-r.priority, r.code))
                if static_match(r, event, facts.tier, facts.tags, facts.birthday) and dynamic_match(r, facts)]
    first_exclusive = next((i for i, r in enumerate(applying) if r.exclusive), None)
    allowed = applying if first_exclusive is None else applying[: first_exclusive + 1]
    assert {c.rule.id for c in lines if c.rule is not None} <= {r.id for r in allowed}

    rate_rules = [r for r in allowed if r.effect == RuleEffect.RATE]
    base_lines = [c for c in lines if c.code == BASE_RATE_CODE]
    expects_base = event.amount_cny is not None and not rate_rules and first_exclusive is None
    assert len(base_lines) == (1 if expects_base else 0)
    assert len([c for c in lines if c.effect == RuleEffect.RATE and c.rule is not None]) <= 1

    tier_lines = [c for c in contributions if c.code.startswith("tier:")]
    total = sum(c.points for c in lines)
    if facts.tier is not None and facts.tier.earn_multiplier > 1 and total:
        assert [c.points for c in tier_lines] == [int(total * (facts.tier.earn_multiplier - 1))]
    else:
        assert tier_lines == []

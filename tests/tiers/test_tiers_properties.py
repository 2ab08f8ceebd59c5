"""Property: whatever mix of earns, spends and refunds a member makes, the qualifying value is
points earned minus points refunded, and the tier (evaluated after each step) is the level of
the highest value reached: spending never costs a tier, and evaluation never downgrades."""

from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from points.earning import points_earn
from points.services import points_spend, posting_reverse
from tests.factories import enrol_member
from tests.factories import ladder
from tiers.models import MemberTier
from tiers.selectors import level_for_value, qualifying_value
from tiers.services import tier_evaluate

operations = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(min_value=1, max_value=700)),
        st.tuples(st.just("spend"), st.integers(min_value=1, max_value=700)),
        st.tuples(st.just("refund"), st.integers(min_value=0, max_value=20), st.integers(min_value=1, max_value=700)),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture
def tiers_ladder(db):
    return ladder()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_qualifying_value_and_tier_follow_points_earned_only(bu, tiers_ladder, steps):
    programme, levels = tiers_ladder
    member = enrol_member()
    earns: list[list[int]] = []  # [posting id, points not yet refunded]
    expected = highest = 0
    for step in steps:
        if step[0] == "earn":
            earns.append([points_earn(member_id=member.pk, business_unit=bu, points=step[1]).posting.pk, step[1]])
            expected += step[1]
        elif step[0] == "spend":
            member.wallet.refresh_from_db()
            if member.wallet.balance:
                points_spend(member_id=member.pk, points=min(step[1], member.wallet.balance), business_unit=bu)
        elif earns:
            earn = earns[step[1] % len(earns)]
            if earn[1]:
                refunded = min(step[2], earn[1])
                posting_reverse(posting_id=earn[0], points=refunded)
                earn[1] -= refunded
                expected -= refunded
        tier_evaluate(member=member)
        highest = max(highest, expected)
        assert qualifying_value(member_id=member.pk, programme=programme, at=timezone.now()) == Decimal(expected)
        assert MemberTier.objects.get(member=member).level == level_for_value(
            levels=list(levels.values()), value=Decimal(highest)
        )

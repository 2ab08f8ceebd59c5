"""Tiers on the earning path: a real earn upgrades at once, and the tier's multiplier and
expiry extension reach the next earn through points' policy registry."""

from decimal import Decimal

import pytest
from dateutil.relativedelta import relativedelta

from points.models import Lot
from points.earning import points_earn
from points.timeutils import end_of_local_day, local_date
from tests.factories import ladder
from tiers.models import MemberTier, TierChange, TierChangeKind


@pytest.fixture
def levels(db):
    return ladder()[1]


def purchase(member, bu, amount):
    return points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal(amount))


def test_the_earn_that_reaches_the_threshold_upgrades_at_once(bu, member, levels):
    purchase(member, bu, "999")
    assert MemberTier.objects.get(member=member).level == levels["member"]
    purchase(member, bu, "1")
    member_tier = MemberTier.objects.get(member=member)
    assert (member_tier.level, member_tier.qualifying_value) == (levels["silver"], Decimal("1000"))
    assert TierChange.objects.filter(member=member, kind=TierChangeKind.UPGRADE, to_level=levels["silver"]).count() == 1


def test_tier_multiplier_and_expiry_extension_apply_from_the_next_earn(bu, member, levels, ledger_sound):
    crossing = purchase(member, bu, "1000")
    assert crossing.posting.points == 1000, "the earn that crosses the threshold is credited at the old tier"
    after = purchase(member, bu, "100")
    assert after.posting.points == 125
    tier_line = next(line for line in after.posting.explanation if line["rule"] == "tier:silver")
    assert (tier_line["points"], tier_line["multiplier"]) == (25, "1.25")
    before_lot = Lot.objects.get(posting=crossing.posting)
    after_lot = Lot.objects.get(posting=after.posting)
    assert after_lot.expires_at == end_of_local_day(local_date(before_lot.expires_at) + relativedelta(months=3))
    assert MemberTier.objects.get(member=member).qualifying_value == Decimal("1125")
    ledger_sound()

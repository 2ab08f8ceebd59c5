"""Races on a member's tier, run for real: threads, each on its own PostgreSQL connection."""

import pytest
from django.utils import timezone

from points.earning import points_earn
from tests.factories import BusinessUnitFactory, enrol_member
from tests.concurrency import errors_of, run_together
from tests.factories import ladder
from tiers.models import MemberTier, TierChange, TierChangeKind
from tiers.services import tier_evaluate, tier_requalify

pytestmark = pytest.mark.django_db(transaction=True)


def test_racing_evaluations_create_one_tier_row_and_one_upgrade():
    member = enrol_member(name="Race")
    points_earn(member_id=member.pk, business_unit=BusinessUnitFactory(code="mall"), points=5000)
    _programme, levels = ladder()  # after the earn, so that no tier row exists yet
    now = timezone.now()
    calls = [lambda: tier_evaluate(member=member)] * 8 + [lambda: tier_requalify(member_id=member.pk, now=now)] * 8
    outcomes = run_together(calls)
    assert errors_of(outcomes) == []
    assert MemberTier.objects.get(member=member).level == levels["gold"]
    assert TierChange.objects.filter(member=member, kind=TierChangeKind.UPGRADE).count() == 1

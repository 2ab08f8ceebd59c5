"""Points held for review do not count for tiers: not in the qualifying value, nor the immediate
upgrade, until the case is approved; a rejected earn never counts, and its reversal takes
nothing from what does."""

from datetime import timedelta

import pytest
from django.utils import timezone

from points.models import ExpiryKind, Lot
from riskcontrol.models import RiskCase, RuleAction, RuleKind
from riskcontrol.services import case_approve, case_reject
from tiers.models import MemberTier, QualificationBasis
from tiers.selectors import qualifying_value
from tests.factories import ExpiryPolicyFactory, ladder

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[QualificationBasis.POINTS, QualificationBasis.SPEND])
def programme(request):
    return ladder(basis=request.param)[0]


def value(member, programme):
    return qualifying_value(member_id=member.pk, programme=programme, at=timezone.now())


def level(member):
    return MemberTier.objects.get(member=member).level.code


@pytest.fixture
def held(bu, member, earn, make_rule, programme):
    """300 counted, then a held earn of 800 that would make the member Silver (from 1,000)."""
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    earn(member, bu, "300")
    earn(member, bu, "800")
    return RiskCase.objects.get(member=member)


def test_held_points_do_not_count_until_approved_then_they_do(bu, member, earn, programme, held, reviewer):
    assert value(member, programme) == 300
    assert level(member) == "member"
    case_approve(case_id=held.pk, actor=reviewer, reason="real purchase")
    assert value(member, programme) == 1100
    earn(member, bu, "10")  # the next earn's upgrade check sees them
    assert level(member) == "silver"


def test_a_rejected_held_earn_never_counts_and_its_reversal_takes_nothing(member, programme, held, reviewer):
    case_reject(case_id=held.pk, actor=reviewer, reason="fake receipt")
    assert value(member, programme) == 300


def test_a_held_lot_stays_held_when_activity_extends_its_expiry(bu, member, earn, make_rule, programme):
    ExpiryPolicyFactory(kind=ExpiryKind.ACTIVITY_EXTENDS, months=12, is_default=True)
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    held_lot = Lot.objects.get(posting=earn(member, bu, "800", occurred_at=timezone.now() - timedelta(days=10)).posting)
    earn(member, bu, "10")  # an activity: the held lot's expiry moves later
    moved = Lot.objects.get(pk=held_lot.pk)
    assert moved.expires_at > held_lot.expires_at
    assert moved.available_at == moved.expires_at
    assert value(member, programme) == 10

"""Regressions of the earning defects found by trying the rules as an operator would: a tier
bonus that ignored the terms of the points it multiplies, events that are not about money
earning from an amount, and postings of nothing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings

from points.earning import points_earn
from points.exceptions import AmountNotAllowed, AmountTooLarge, InsufficientPoints
from points.models import EventType, Lot, Posting
from points.rules.engine import Contribution, bonus_shares, extend_by_months
from points.services import points_spend, posting_reverse
from points.timeutils import expiry_after_months
from tests.factories import BusinessUnitFactory, enrol_member
from tests.factories import EarningRuleFactory
from tests.factories import ladder

pytestmark = pytest.mark.django_db


@pytest.fixture
def silver(bu, member):
    ladder()
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("1000"))  # reaches Silver (x1.25)
    return member


def test_a_tier_bonus_waits_out_the_pending_days_of_the_rule_it_multiplies(bu, silver, ledger_sound):
    EarningRuleFactory(code="returns-window", effect="rate", rate=Decimal("1"), points=None, pending_days=3)
    earn = points_earn(member_id=silver.pk, business_unit=bu, amount_cny=Decimal("100")).posting
    assert earn.points == 125
    lots = list(Lot.objects.filter(posting=earn))
    assert [lot.amount for lot in lots] == [125], "bonus and base share one lot: the same terms"
    assert lots[0].available_at == earn.occurred_at + timedelta(days=3)
    spend = points_spend(member_id=silver.pk, points=1000, business_unit=bu)
    assert spend.posting is not None
    with pytest.raises(InsufficientPoints):
        points_spend(member_id=silver.pk, points=1, business_unit=bu)
    refund = posting_reverse(posting_id=earn.pk).posting
    assert refund.points == -125
    silver.wallet.refresh_from_db()
    assert silver.wallet.debt == 0, "the bonus was not spendable before the return window closed"
    ledger_sound()


def test_a_tier_bonus_expires_with_the_rule_it_multiplies(bu, silver, ledger_sound):
    EarningRuleFactory(code="anniversary", effect="rate", rate=Decimal("1"), points=None, expiry_months=18)
    earn = points_earn(member_id=silver.pk, business_unit=bu, amount_cny=Decimal("100")).posting
    lots = list(Lot.objects.filter(posting=earn))
    assert sum(lot.amount for lot in lots) == 125
    # the rule's 18 months, then Silver's extension of 3: not the business unit's 12
    assert {lot.expires_at for lot in lots} == {extend_by_months(expiry_after_months(earn.occurred_at, 18), 3)}
    ledger_sound()


def test_the_bonus_shares_add_up_to_the_bonus_exactly():
    parts = [Contribution(code=c, name=c, effect="rate", points=p) for c, p in (("a", 15), ("b", 15), ("c", 1))]
    shares = bonus_shares(7, parts)
    assert sum(points for _rule, points in shares) == 7, "no point lost to rounding"
    assert [points for _rule, points in shares] == [4, 3], "largest remainder first, then the earliest"


@pytest.mark.parametrize("event_type", [EventType.CHECK_IN, EventType.SURVEY, EventType.REVIEW, EventType.EVENT])
def test_an_event_not_about_money_refuses_an_amount(bu, member, event_type):
    EarningRuleFactory(code="check-in", event_type=EventType.CHECK_IN, points=10)
    with pytest.raises(AmountNotAllowed):
        points_earn(member_id=member.pk, business_unit=bu, event_type=event_type, amount_cny=Decimal("500.00"))
    assert not Posting.objects.exists()


@pytest.mark.parametrize("event_type", [EventType.PURCHASE, EventType.BILL, EventType.PARKING])
def test_money_events_take_an_amount_up_to_the_ceiling(bu, member, event_type):
    with override_settings(POINTS_MAX_AMOUNT_CNY=Decimal("50000.00")):
        with pytest.raises(AmountTooLarge):
            points_earn(member_id=member.pk, business_unit=bu, event_type=event_type, amount_cny=Decimal("50000.01"))
        result = points_earn(member_id=member.pk, business_unit=bu, event_type=event_type, amount_cny=Decimal("50000"))
    assert result.posting.points == 50000


def test_enrolment_elsewhere_writes_no_posting_of_nothing(django_capture_on_commit_callbacks):
    hotel, mall = BusinessUnitFactory(code="hotel"), BusinessUnitFactory(code="mall2")
    EarningRuleFactory(code="hotel-welcome", event_type=EventType.REGISTRATION, points=100, scope="business_unit",
                       business_unit=hotel, max_awards_per_member=1)
    with django_capture_on_commit_callbacks(execute=True):
        member = enrol_member(name="Wang Wu", business_unit=mall)
    assert not Posting.objects.filter(wallet__member=member).exists(), "a registration rule of another BU gives nothing"
    with django_capture_on_commit_callbacks(execute=True):
        guest = enrol_member(name="Zhao Liu", business_unit=hotel)
    assert list(Posting.objects.filter(wallet__member=guest).values_list("points", "event_type")) == [
        (100, EventType.REGISTRATION)]

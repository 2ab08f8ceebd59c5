"""Budgets and caps hold under parallel earns: real threads, each on its own database connection."""

import threading
from decimal import Decimal

from django.db import connection

from points.models import EventType, Posting, RuleAward, RuleBudget, RuleEffect
from points.selectors import ledger_problems
from points.earning import points_earn
from tests.factories import BusinessUnitFactory, enrol_member
from tests.factories import EarningRuleFactory

THREADS = 20


def run_in_parallel(calls) -> list:
    """Start every call at once, each in its own thread and connection; return their errors."""
    barrier = threading.Barrier(len(calls))
    errors = []

    def worker(call):
        try:
            barrier.wait(timeout=30)
            call()
        except Exception as error:  # noqa: BLE001 - collected and asserted by the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    return errors


def test_campaign_budget_is_never_overspent_by_parallel_earns(transactional_db):
    bu = BusinessUnitFactory(code="mall")
    campaign = EarningRuleFactory(code="grand-opening", event_type=EventType.EVENT, points=100, budget_points=1_050)
    members = [enrol_member(name=f"Guest {n}") for n in range(THREADS)]
    errors = run_in_parallel([
        lambda member=member: points_earn(member_id=member.pk, business_unit=bu, event_type=EventType.EVENT)
        for member in members
    ])
    assert errors == []
    given = sorted(Posting.objects.values_list("points", flat=True))
    assert sum(given) == 1_050
    assert given.count(100) == 10 and given.count(50) == 1 and len(given) == 11, "an earn of nothing writes nothing"
    assert RuleBudget.objects.get(rule=campaign).spent == 1_050
    assert ledger_problems() == {}


def test_daily_cap_holds_for_one_member_earning_in_parallel(transactional_db):
    bu = BusinessUnitFactory(code="mall")
    survey = EarningRuleFactory(code="survey", event_type=EventType.SURVEY, points=10, cap_per_member_day=30)
    rate = EarningRuleFactory(code="double", effect=RuleEffect.RATE, rate=Decimal("2"), points=None,
                              cap_per_member_month=50)
    member = enrol_member(name="Busy")
    calls = [lambda: points_earn(member_id=member.pk, business_unit=bu, event_type=EventType.SURVEY)] * 10
    calls += [lambda: points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("10"))] * 10
    assert run_in_parallel(calls) == []
    awards = {rule.code: sum(RuleAward.objects.filter(rule=rule).values_list("points", flat=True))
              for rule in (survey, rate)}
    assert awards == {"survey": 30, "double": 50}
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 30 + 50 + 10 * 7, "after the rate's cap the base rate of 1/CNY applies"
    assert ledger_problems() == {}


def test_parallel_first_purchases_pay_the_referrer_once(transactional_db):
    bu = BusinessUnitFactory(code="mall")
    EarningRuleFactory(code="referral", event_type=EventType.REFERRAL, points=500)
    referrer = enrol_member(name="Han Meimei")
    referee = enrol_member(name="Wei Hua", referral_code=referrer.referral_code)
    errors = run_in_parallel([
        lambda: points_earn(member_id=referee.pk, business_unit=bu, amount_cny=Decimal("10"))
    ] * 8)
    assert errors == []
    referrer.wallet.refresh_from_db()
    assert referrer.wallet.balance == 500
    assert Posting.objects.filter(wallet=referrer.wallet).count() == 1
    assert ledger_problems() == {}

"""Expiry policies: fixed months, end of quarter / year, activity extends, tier extension on top.

Every boundary is a calendar boundary in Asia/Shanghai (UTC+8), so midnight there is 16:00 UTC
the day before.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from points import policies
from points.expiry import expiry_run_batch
from points.models import ExpiryKind, ExpiryPeriod, Lot, LotExpiryChange, RuleEffect
from points.policies import TierInfo
from points.rules.engine import period_end_expiry
from points.earning import points_earn
from points.services import points_spend
from points.timeutils import expiry_after_months
from django.utils import timezone
from points.timeutils import end_of_local_day
from tests.factories import EarningRuleFactory, ExpiryPolicyFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def earn(member, bu, **kwargs):
    kwargs.setdefault("max_backdate", None)
    posting = points_earn(member_id=member.pk, business_unit=bu, **kwargs).posting
    return Lot.objects.filter(posting=posting).get()


@pytest.mark.parametrize(
    ("earned_at", "period", "periods", "valid_through"),
    [
        (at(2026, 3, 31, 23, 59), ExpiryPeriod.QUARTER, 0, date(2026, 3, 31)),
        (at(2026, 4, 1, 0, 0), ExpiryPeriod.QUARTER, 0, date(2026, 6, 30)),  # still 31 March in UTC
        (at(2026, 2, 10, 12), ExpiryPeriod.QUARTER, 4, date(2027, 3, 31)),
        (at(2026, 11, 30, 12), ExpiryPeriod.QUARTER, 1, date(2027, 3, 31)),
        (at(2026, 12, 31, 23, 30), ExpiryPeriod.YEAR, 1, date(2027, 12, 31)),
        (at(2027, 1, 1, 0, 10), ExpiryPeriod.YEAR, 1, date(2028, 12, 31)),  # still 2026 in UTC
    ],
)
def test_end_of_quarter_or_year_after_n_periods(earned_at, period, periods, valid_through):
    assert period_end_expiry(earned_at, period=period, periods=periods) == end_of_local_day(valid_through)


def test_group_default_policy_and_bu_default_policy(bu, other_bu, member, ledger_sound):
    ExpiryPolicyFactory(code="group-year-end", kind=ExpiryKind.PERIOD_END, period=ExpiryPeriod.YEAR, periods=1,
                        is_default=True)
    ExpiryPolicyFactory(code="hotel-6m", months=6, business_unit=other_bu, is_default=True)
    mall_lot = earn(member, bu, amount_cny=Decimal("10"), occurred_at=at(2026, 5, 20, 9))
    hotel_lot = earn(member, other_bu, amount_cny=Decimal("10"), occurred_at=at(2026, 5, 20, 9))
    assert mall_lot.expires_at == end_of_local_day(date(2027, 12, 31))
    assert mall_lot.expiry_policy.code == "group-year-end"
    assert hotel_lot.expires_at == end_of_local_day(date(2026, 11, 20))
    ledger_sound()


def test_points_expire_just_after_the_end_of_the_quarter_in_shanghai(bu, member, ledger_sound):
    ExpiryPolicyFactory(code="quarter-end", kind=ExpiryKind.PERIOD_END, period=ExpiryPeriod.QUARTER, periods=0,
                        is_default=True)
    lot = earn(member, bu, amount_cny=Decimal("10"), occurred_at=at(2026, 2, 1, 9))
    last_instant = at(2026, 3, 31, 23, 59, 59, 999999)
    assert lot.expires_at == last_instant
    assert expiry_run_batch(now=last_instant)[0] == 0
    assert expiry_run_batch(now=last_instant + timedelta(microseconds=1))[0] == 1
    lot.refresh_from_db()
    assert lot.remaining == 0
    ledger_sound()


def test_rule_policy_override_and_tier_extension_on_top(bu, member):
    year_end = ExpiryPolicyFactory(code="year-end", kind=ExpiryKind.PERIOD_END, period=ExpiryPeriod.YEAR, periods=0)
    EarningRuleFactory(code="year-end-promo", effect=RuleEffect.RATE, rate=Decimal("1"), points=None,
                       expiry_policy=year_end)
    saved = list(policies._tier_provider)
    policies.register_tier_provider(lambda member, moment: TierInfo(code="gold", expiry_extension_months=3))
    try:
        lot = earn(member, bu, amount_cny=Decimal("10"), occurred_at=at(2026, 7, 1, 9))
    finally:
        policies._tier_provider[:] = saved
    assert lot.expires_at == end_of_local_day(date(2027, 3, 31)), "year end, then three months for gold"


def test_activity_extends_every_open_lot_under_the_policy(bu, member, ledger_sound):
    ExpiryPolicyFactory(code="active-12m", kind=ExpiryKind.ACTIVITY_EXTENDS, months=12, is_default=True)
    EarningRuleFactory(code="fixed-date", event_type="event", points=50, expiry_date=date(2027, 6, 30))
    first = earn(member, bu, amount_cny=Decimal("10"), occurred_at=at(2026, 1, 10, 9))
    assert first.expires_at == end_of_local_day(date(2027, 1, 10))
    fixed = earn(member, bu, event_type="event", occurred_at=at(2026, 1, 11, 9))
    first.refresh_from_db()
    assert first.expires_at == end_of_local_day(date(2027, 1, 11)), "the event is an activity too"

    second = earn(member, bu, amount_cny=Decimal("20"), occurred_at=at(2026, 3, 5, 23, 30))
    first.refresh_from_db()
    fixed.refresh_from_db()
    assert first.expires_at == second.expires_at == end_of_local_day(date(2027, 3, 5))
    assert fixed.expires_at == end_of_local_day(date(2027, 6, 30)), "a rule's fixed date is not extended"
    change = LotExpiryChange.objects.filter(lot=first).latest("id")
    assert (change.previous_expires_at, change.expires_at) == (end_of_local_day(date(2027, 1, 11)), first.expires_at)
    assert change.posting_id == second.posting_id

    earn(member, bu, amount_cny=Decimal("5"), occurred_at=at(2026, 2, 1, 9))
    first.refresh_from_db()
    assert first.expires_at == end_of_local_day(date(2027, 3, 5)), "an earlier activity never shortens"
    before = timezone.now()
    spend = points_spend(member_id=member.pk, points=1, business_unit=bu).posting
    first.refresh_from_db()
    assert first.expires_at == expiry_after_months(spend.occurred_at, 12) > expiry_after_months(before, 12) - timedelta(days=1)
    moved = LotExpiryChange.objects.filter(posting=spend)
    assert moved.count() == 3, "a spend is a qualifying activity: every open lot under the policy moves"
    ledger_sound()


def test_activity_does_not_revive_expired_lots(bu, member):
    ExpiryPolicyFactory(code="active-1m", kind=ExpiryKind.ACTIVITY_EXTENDS, months=1, is_default=True)
    old = earn(member, bu, amount_cny=Decimal("10"), occurred_at=at(2026, 1, 10, 9))
    earn(member, bu, amount_cny=Decimal("10"), occurred_at=at(2026, 3, 1, 9))
    old.refresh_from_db()
    assert old.expires_at == end_of_local_day(date(2026, 2, 10))
    assert not LotExpiryChange.objects.exists()

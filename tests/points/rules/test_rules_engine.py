"""Conditions, caps, the policy registry, lots, simulation, audit and caching of the earning rules."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from config.errors import DomainError
from members.models import BusinessUnitKind, MerchantCategory
from points import policies
from points.models import EarningRule, EventType, Lot, MemberTag, Posting, RuleEffect, RuleScope
from points.policies import TierInfo
from points.earning import earn_simulate, points_earn
from points.services import points_adjust, points_spend, posting_reverse
from points.timeutils import end_of_local_day
from tests.factories import BusinessUnitFactory, MerchantFactory, enrol_member
from tests.factories import EarningRuleFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def earn(member, bu, **kwargs):
    kwargs.setdefault("max_backdate", None)
    return points_earn(member_id=member.pk, business_unit=bu, **kwargs).posting


def rules_fired(posting):
    return {line["rule"]: line["points"] for line in posting.explanation}


@pytest.fixture
def registry():
    """The policy registry, emptied for the test and restored after it."""
    registries = (policies._tier_provider, policies._earn_gates, policies._after_earn_hooks)
    saved = [list(registered) for registered in registries]
    for registered in registries:
        registered.clear()
    yield policies
    for registered, items in zip(registries, saved, strict=True):
        registered[:] = items


def test_daily_and_monthly_caps_per_member(bu, member, ledger_sound):
    EarningRuleFactory(code="survey", event_type=EventType.SURVEY, points=10, cap_per_member_day=20,
                       cap_per_member_month=45)
    day = at(2026, 4, 28, 10)

    def surveys(days_later, count):
        given = [earn(member, bu, event_type=EventType.SURVEY, occurred_at=day + timedelta(days=days_later, hours=h))
                 for h in range(count)]
        return [posting.points if posting else 0 for posting in given]

    assert surveys(0, 3) == [10, 10, 0], "the daily cap of 20"
    assert surveys(1, 2) == [10, 10]
    assert surveys(2, 2) == [5, 0], "the monthly cap of 45 trims the fifth survey"
    assert surveys(3, 1) == [10], "1 May: a new month in Shanghai"
    ledger_sound()


def test_second_purchase_this_week_and_first_purchase_bonuses(bu, member):
    EarningRuleFactory(code="welcome-buy", points=50, first_purchase=True)
    EarningRuleFactory(code="second-this-week", points=20, nth_purchase=2, nth_period="week")
    monday, sunday, next_monday = at(2026, 6, 1, 10), at(2026, 6, 7, 23, 59), at(2026, 6, 8, 0, 0)
    assert rules_fired(earn(member, bu, amount_cny=Decimal("10"), occurred_at=monday)) == {
        "base_rate": 10, "welcome-buy": 50,
    }
    assert rules_fired(earn(member, bu, amount_cny=Decimal("10"), occurred_at=sunday)) == {
        "base_rate": 10, "second-this-week": 20,
    }
    assert rules_fired(earn(member, bu, amount_cny=Decimal("10"), occurred_at=next_monday)) == {"base_rate": 10}


def test_scope_by_bu_kind_bu_and_merchant(bu, other_bu, member):
    hotel = BusinessUnitFactory(code="resort", kind=BusinessUnitKind.HOTEL)
    shop = MerchantFactory(business_unit=bu, code="shop", category=MerchantCategory.RETAIL)
    EarningRuleFactory(code="hotels", scope=RuleScope.BU_KIND, bu_kind=BusinessUnitKind.HOTEL, points=1)
    EarningRuleFactory(code="mall-only", scope=RuleScope.BUSINESS_UNIT, business_unit=bu, points=2)
    EarningRuleFactory(code="shop-only", scope=RuleScope.MERCHANT, merchant=shop, points=4)
    assert set(rules_fired(earn(member, hotel, amount_cny=Decimal("1")))) == {"base_rate", "hotels"}
    assert set(rules_fired(earn(member, bu, merchant=shop, amount_cny=Decimal("1")))) == {
        "base_rate", "mall-only", "shop-only",
    }
    assert set(rules_fired(earn(member, bu, amount_cny=Decimal("1")))) == {"base_rate", "mall-only"}


def test_weekend_evening_rule_reads_shanghai_weekdays_and_hours(bu, member):
    EarningRuleFactory(code="weekend-evening", points=30, weekdays=[5, 6], hour_from=18, hour_to=24)
    friday_late = at(2026, 6, 5, 23, 59)  # Friday in Shanghai
    saturday_morning = at(2026, 6, 6, 0, 0)  # Saturday, but before 18:00
    saturday_evening = at(2026, 6, 6, 18, 0)  # 10:00 UTC: a Saturday evening in Shanghai only
    assert "weekend-evening" not in rules_fired(earn(member, bu, amount_cny=Decimal("1"), occurred_at=friday_late))
    assert "weekend-evening" not in rules_fired(earn(member, bu, amount_cny=Decimal("1"), occurred_at=saturday_morning))
    assert "weekend-evening" in rules_fired(earn(member, bu, amount_cny=Decimal("1"), occurred_at=saturday_evening))


def test_min_amount_and_member_tag(bu, member):
    EarningRuleFactory(code="tenant-staff", points=15, member_tag="tenant-staff", min_amount_cny=Decimal("50"))
    assert "tenant-staff" not in rules_fired(earn(member, bu, amount_cny=Decimal("80")))
    MemberTag.objects.create(member=member, tag="tenant-staff")
    assert "tenant-staff" not in rules_fired(earn(member, bu, amount_cny=Decimal("49.99")))
    assert rules_fired(earn(member, bu, amount_cny=Decimal("50")))["tenant-staff"] == 15


def test_tier_condition_multiplier_and_expiry_extension_from_the_registry(bu, member, registry, ledger_sound):
    registry.register_tier_provider(
        lambda member, moment: TierInfo(code="gold", earn_multiplier=Decimal("1.5"), expiry_extension_months=6)
    )
    EarningRuleFactory(code="gold-lounge", points=40, tier_codes=["gold", "platinum"])
    EarningRuleFactory(code="silver-only", points=99, tier_codes=["silver"])
    posting = earn(member, bu, amount_cny=Decimal("101"), occurred_at=at(2026, 1, 31, 12))
    assert rules_fired(posting) == {"base_rate": 101, "gold-lounge": 40, "tier:gold": 70}
    assert posting.points == 211
    lot = Lot.objects.get(posting=posting)
    assert lot.expires_at == end_of_local_day(date(2027, 7, 31)), "12 months, then 6 more for gold"
    ledger_sound()


def test_earn_gates_refuse_or_hold_and_after_earn_hooks_see_the_posting(bu, member, registry):
    class Refused(DomainError):
        code = "refused"

    seen = []
    hold_until = at(2026, 12, 1)
    registry.register_earn_gate(lambda context: hold_until if context.event_type == EventType.PURCHASE else None)
    registry.register_after_earn_hook(lambda *, posting, wallet, tier: seen.append((posting.pk, wallet.balance)))
    posting = earn(member, bu, amount_cny=Decimal("10"), occurred_at=at(2026, 11, 1))
    assert Lot.objects.get(posting=posting).available_at == hold_until
    assert seen == [(posting.pk, 10)]

    def refuse(context):
        raise Refused("blacklisted")

    registry.register_earn_gate(refuse)
    with pytest.raises(Refused):
        earn(member, bu, amount_cny=Decimal("10"))
    assert Posting.objects.count() == 1


def test_rules_with_different_expiry_and_pending_make_one_lot_each(bu, member, operator, ledger_sound):
    EarningRuleFactory(code="returns-window", effect=RuleEffect.RATE, rate=Decimal("1"), points=None,
                       pending_days=7)
    EarningRuleFactory(code="promo", points=30, expiry_date=date(2026, 12, 31))
    EarningRuleFactory(code="promo-2", points=20, expiry_date=date(2026, 12, 31))
    earned_at = at(2026, 11, 2, 10)
    posting = earn(member, bu, amount_cny=Decimal("100"), occurred_at=earned_at)
    lots = {lot.rule_code: lot for lot in Lot.objects.filter(posting=posting)}
    assert set(lots) == {"returns-window", "promo"}
    assert (lots["promo"].amount, lots["promo"].expires_at) == (50, end_of_local_day(date(2026, 12, 31)))
    assert lots["promo"].available_at == earned_at
    assert lots["returns-window"].available_at == earned_at + timedelta(days=7)
    assert lots["returns-window"].expires_at == end_of_local_day(date(2027, 11, 2))
    ledger_sound()


def test_new_earnings_repay_debt_from_the_earliest_expiring_part(bu, member, ledger_sound):
    EarningRuleFactory(code="short-lived", points=30, expiry_months=1)
    first = points_earn(member_id=member.pk, business_unit=bu, points=100)
    points_spend(member_id=member.pk, points=100, business_unit=bu)
    posting_reverse(posting_id=first.posting.pk)  # refund after spending: 100 points of debt
    posting = earn(member, bu, amount_cny=Decimal("120"))
    member.wallet.refresh_from_db()
    assert (member.wallet.debt, member.wallet.balance) == (0, 50)
    lot = Lot.objects.get(posting=posting)
    assert (lot.rule_code, lot.amount) == ("", 50), "the 30 short-lived points repaid debt first"
    ledger_sound()


def test_simulation_equals_the_real_posting_for_the_same_event(bu, ledger_sound):
    electronics = MerchantFactory(business_unit=bu, code="phones", category=MerchantCategory.ELECTRONICS)
    EarningRuleFactory(code="electronics-2x", scope=RuleScope.CATEGORY, merchant_category="electronics",
                       effect=RuleEffect.RATE, rate=Decimal("2"), points=None, cap_per_member_day=3000)
    EarningRuleFactory(code="birthday-double", effect=RuleEffect.MULTIPLIER, multiplier=Decimal("2"), points=None,
                       birthday_month=True)
    EarningRuleFactory(code="over-500", effect=RuleEffect.THRESHOLD_BONUS, threshold_cny=Decimal("500"), points=100,
                       expiry_months=3, budget_points=150)
    member = enrol_member(name="Sim", birthday=date(1991, 10, 3))
    moments = [at(2026, 10, 3, 12), at(2026, 10, 3, 13), at(2026, 10, 4, 9)]
    for moment in moments:
        event = {"business_unit": bu, "merchant": electronics, "amount_cny": Decimal("999.50"), "occurred_at": moment}
        simulated = earn_simulate(member_id=member.pk, max_backdate=None, **event)
        posted = points_earn(member_id=member.pk, max_backdate=None, **event).posting
        assert (simulated.points, simulated.explanation) == (posted.points, posted.explanation)
        assert sorted((p.points, p.terms.expires_at) for p in simulated.lots) == sorted(
            Lot.objects.filter(posting=posted).values_list("amount", "expires_at")
        )
    # second: the daily cap trims the rate to 1001 and the budget the bonus to 50; third: budget spent.
    assert [p.points for p in Posting.objects.order_by("id")] == [4098, 2052, 3998]
    ledger_sound()


def test_rule_changes_are_audited_with_before_and_after(operator):
    rule = EarningRuleFactory(code="electronics", effect=RuleEffect.RATE, rate=Decimal("2"), points=None)
    rule.rate = Decimal("3")
    rule._history_user = operator
    rule.save()
    latest, first = rule.history.order_by("-history_id")[:2]
    assert (first.rate, latest.rate) == (Decimal("2"), Decimal("3"))
    assert latest.history_user == operator
    assert [change.field for change in latest.diff_against(first).changes] == ["rate"]


def test_a_saved_rule_change_reaches_the_cached_earn_path_at_once(bu, member):
    rule = EarningRuleFactory(code="rate", effect=RuleEffect.RATE, rate=Decimal("2"), points=None)
    assert earn(member, bu, amount_cny=Decimal("10")).points == 20
    rule.rate = Decimal("3")
    rule.save()
    assert earn(member, bu, amount_cny=Decimal("10")).points == 30
    rule.is_active = False
    rule.save()
    assert earn(member, bu, amount_cny=Decimal("10")).points == 10


def test_inactive_rules_and_unknown_event_types(bu, member):
    EarningRuleFactory(code="off", points=500, is_active=False)
    assert earn(member, bu, amount_cny=Decimal("10")).points == 10
    with pytest.raises(DomainError) as refused:
        earn(member, bu, event_type="lottery")
    assert refused.value.code == "invalid_event_type"
    assert not Posting.objects.filter(event_type="lottery").exists()


def test_explicit_points_bypass_the_rules(bu, member, operator):
    EarningRuleFactory(code="everything", points=500, event_type=EventType.EVENT)
    posting = earn(member, bu, points=25, event_type=EventType.EVENT)
    assert rules_fired(posting) == {"fixed": 25}
    points_adjust(member_id=member.pk, points=5, business_unit=bu, reason="goodwill", actor=operator)
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 30


def test_rule_validation_names_the_missing_fields():
    from django.core.exceptions import ValidationError

    rule = EarningRule(code="bad", name="Bad", scope=RuleScope.MERCHANT, effect=RuleEffect.RATE,
                       nth_purchase=2, weekdays=[7], expiry_months=3, expiry_date=date(2027, 1, 1))
    with pytest.raises(ValidationError) as invalid:
        rule.clean()
    assert set(invalid.value.message_dict) == {"merchant", "rate", "nth_period", "weekdays", "expiry_months"}

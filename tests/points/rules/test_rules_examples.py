"""The operators' examples of the earning rules, each through the real earn service."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

from django.core.management import call_command

from members.models import Member, MemberStatus, MerchantCategory
from points.models import EventType, Lot, Posting, RuleAward, RuleBudget, RuleEffect, RuleScope, Stacking
from points.earning import points_earn, points_referral_award
from points.ledger import Idempotency
from points.timeutils import end_of_local_day
from tests.factories import MerchantFactory, enrol_member
from tests.factories import EarningRuleFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*args) -> datetime:
    """A moment given in the group's time zone (Asia/Shanghai)."""
    return datetime(*args, tzinfo=SHANGHAI)


def earn(member, bu, **kwargs):
    kwargs.setdefault("max_backdate", None)
    return points_earn(member_id=member.pk, business_unit=bu, **kwargs)


def balance_of(member):
    member.wallet.refresh_from_db()
    return member.wallet.balance


def rules_fired(posting):
    return {line["rule"]: line["points"] for line in posting.explanation}


def test_default_is_one_point_per_cny_from_the_bu_base_rate(bu, member, ledger_sound):
    posting = earn(member, bu, amount_cny=Decimal("128.90")).posting
    assert posting.points == 128
    assert posting.event_type == EventType.PURCHASE
    assert rules_fired(posting) == {"base_rate": 128}
    ledger_sound()


def test_electronics_two_per_cny_and_groceries_half_per_cny(bu, member, ledger_sound):
    electronics = MerchantFactory(business_unit=bu, code="phones", category=MerchantCategory.ELECTRONICS)
    grocery = MerchantFactory(business_unit=bu, code="market", category=MerchantCategory.GROCERY)
    bakery = MerchantFactory(business_unit=bu, code="bakery", category=MerchantCategory.FOOD)
    EarningRuleFactory(code="electronics-2x", scope=RuleScope.CATEGORY, merchant_category="electronics",
                       effect=RuleEffect.RATE, rate=Decimal("2"), points=None)
    EarningRuleFactory(code="groceries-half", scope=RuleScope.CATEGORY, merchant_category="grocery",
                       effect=RuleEffect.RATE, rate=Decimal("0.5"), points=None)

    assert earn(member, bu, merchant=electronics, amount_cny=Decimal("1000")).posting.points == 2000
    groceries = earn(member, bu, merchant=grocery, amount_cny=Decimal("99")).posting
    assert groceries.points == 49
    assert rules_fired(groceries) == {"groceries-half": 49}
    assert earn(member, bu, merchant=bakery, amount_cny=Decimal("30")).posting.points == 30
    assert set(Lot.objects.values_list("rule_code", flat=True)) == {"electronics-2x", "groceries-half", ""}
    ledger_sound()


def test_check_in_ten_points_once_a_day_with_seven_day_streak_bonus(bu, member, ledger_sound):
    EarningRuleFactory(code="check-in", event_type=EventType.CHECK_IN, points=10, cap_per_member_day=10)
    EarningRuleFactory(code="streak-7", event_type=EventType.CHECK_IN, points=30, streak_days=7)
    first_day = at(2026, 3, 1, 9, 0)
    given = [earn(member, bu, event_type=EventType.CHECK_IN, occurred_at=first_day + timedelta(days=d)).posting.points
             for d in range(7)]
    assert given == [10, 10, 10, 10, 10, 10, 40]
    again_today = earn(member, bu, event_type=EventType.CHECK_IN, occurred_at=first_day + timedelta(days=6, hours=5))
    assert again_today.posting is None, "nothing earned, nothing written"
    after_gap = earn(member, bu, event_type=EventType.CHECK_IN, occurred_at=first_day + timedelta(days=9)).posting
    assert after_gap.points == 10
    assert balance_of(member) == 110
    ledger_sound()


def test_streak_days_are_calendar_days_in_shanghai(bu, member):
    # A streak counts the days on which the event earned: the daily check-in rule marks each day.
    EarningRuleFactory(code="check-in", event_type=EventType.CHECK_IN, points=1, cap_per_member_day=1)
    EarningRuleFactory(code="streak-2", event_type=EventType.CHECK_IN, points=5, streak_days=2)
    earn(member, bu, event_type=EventType.CHECK_IN, occurred_at=at(2026, 3, 1, 23, 50))
    # 16:10 UTC on 1 March is 00:10 on 2 March in Shanghai: the next day, so the streak completes.
    next_day = earn(member, bu, event_type=EventType.CHECK_IN, occurred_at=at(2026, 3, 2, 0, 10))
    assert rules_fired(next_day.posting) == {"check-in": 1, "streak-2": 5}


def test_event_sign_in_fifty_points(bu, member, ledger_sound):
    EarningRuleFactory(code="event-sign-in", event_type=EventType.EVENT, points=50)
    result = earn(member, bu, event_type=EventType.EVENT, receipt_no="concert-42")
    assert result.posting.points == 50
    assert rules_fired(result.posting) == {"event-sign-in": 50}
    ledger_sound()


def test_referral_pays_the_referrer_with_the_referees_first_purchase_only_once(bu, ledger_sound):
    EarningRuleFactory(code="referral", event_type=EventType.REFERRAL, points=500)
    referrer = enrol_member(name="Han Meimei")
    referee = enrol_member(name="Wei Hua", referral_code=referrer.referral_code)
    earn(referee, bu, event_type=EventType.CHECK_IN)
    assert balance_of(referrer) == 0, "no purchase yet"

    earn(referee, bu, amount_cny=Decimal("20"))
    assert balance_of(referrer) == 500, "paid in the purchase's own transaction"
    earn(referee, bu, amount_cny=Decimal("30"))
    replay = points_referral_award(referee_id=referee.pk)
    assert replay.replayed
    assert balance_of(referrer) == 500
    award = referrer.wallet.postings.get()
    assert (award.event_type, award.idempotency_key, award.business_unit) == ("referral", f"referral:{referee.pk}", bu)
    assert award.explanation[0]["rule"] == "referral"
    ledger_sound()


def test_a_refused_referral_does_not_block_the_referees_purchase(bu):
    EarningRuleFactory(code="referral", event_type=EventType.REFERRAL, points=500)
    referrer = enrol_member(name="Gone")
    referee = enrol_member(name="Wei Hua", referral_code=referrer.referral_code)
    Member.objects.filter(pk=referrer.pk).update(status=MemberStatus.CLOSED)
    assert earn(referee, bu, amount_cny=Decimal("20")).posting.points == 20
    assert not referrer.wallet.postings.exists()


def test_referral_switched_on_later_is_paid_by_the_backfill_once(bu):
    referrer = enrol_member(name="Han Meimei")
    referee = enrol_member(name="Wei Hua", referral_code=referrer.referral_code)
    earn(referee, bu, amount_cny=Decimal("20"), occurred_at=at(2026, 11, 1, 10))
    enrol_member(name="No purchase yet", referral_code=referrer.referral_code)
    EarningRuleFactory(code="referral", event_type=EventType.REFERRAL, points=500)
    out = StringIO()
    call_command("pay_referrals", batch_size=1, stdout=out)
    assert "1 paid, 0 already paid, 0 refused" in out.getvalue()
    assert balance_of(referrer) == 500
    call_command("pay_referrals", stdout=out)
    assert "0 paid, 1 already paid" in out.getvalue()
    assert points_referral_award(referee_id=referee.pk).replayed
    assert balance_of(referrer) == 500


def test_registration_hundred_points_on_enrolment_once(bu, django_capture_on_commit_callbacks, ledger_sound):
    EarningRuleFactory(code="welcome", event_type=EventType.REGISTRATION, points=100, max_awards_per_member=1)
    with django_capture_on_commit_callbacks(execute=True):
        member = enrol_member(name="Zhang San", business_unit=bu)
    assert balance_of(member) == 100
    again = earn(member, bu, event_type=EventType.REGISTRATION, idempotency=Idempotency("partner:1", "reg-1"))
    assert again.posting is None, "nothing earned, nothing written"
    assert balance_of(member) == 100
    assert Posting.objects.filter(wallet__member=member).count() == 1
    ledger_sound()


def test_registration_event_for_a_member_enrolled_without_a_bu(bu, member):
    EarningRuleFactory(code="welcome", event_type=EventType.REGISTRATION, points=100, max_awards_per_member=1)
    assert earn(member, bu, event_type=EventType.REGISTRATION).posting.points == 100


def test_birthday_month_double_points(bu, ledger_sound):
    EarningRuleFactory(code="birthday-double", effect=RuleEffect.MULTIPLIER, multiplier=Decimal("2"), points=None,
                       birthday_month=True)
    member = enrol_member(name="Born in May", birthday=date(1990, 5, 31))
    in_may = earn(member, bu, amount_cny=Decimal("120"), occurred_at=at(2026, 5, 31, 23, 59)).posting
    assert in_may.points == 240
    assert rules_fired(in_may) == {"base_rate": 120, "birthday-double": 120}
    # 1 June 00:01 in Shanghai is still 31 May in UTC: the group's calendar decides.
    in_june = earn(member, bu, amount_cny=Decimal("120"), occurred_at=at(2026, 6, 1, 0, 1)).posting
    assert in_june.points == 120
    ledger_sound()


def test_anniversary_week_points_valid_eighteen_months(bu, member, ledger_sound):
    EarningRuleFactory(code="anniversary", effect=RuleEffect.RATE, rate=Decimal("1"), points=None, priority=10,
                       starts_at=at(2026, 9, 1), ends_at=at(2026, 9, 8), expiry_months=18)
    inside = earn(member, bu, amount_cny=Decimal("100"), occurred_at=at(2026, 9, 7, 23, 59)).posting
    outside = earn(member, bu, amount_cny=Decimal("100"), occurred_at=at(2026, 9, 8, 0, 0)).posting
    assert Lot.objects.get(posting=inside).expires_at == end_of_local_day(date(2028, 3, 7))
    assert Lot.objects.get(posting=outside).expires_at == end_of_local_day(date(2027, 9, 8))
    assert rules_fired(inside) == {"anniversary": 100}
    ledger_sound()


def test_spend_over_500_get_100_extra(bu, member, ledger_sound):
    EarningRuleFactory(code="over-500", effect=RuleEffect.THRESHOLD_BONUS, threshold_cny=Decimal("500"), points=100)
    assert earn(member, bu, amount_cny=Decimal("499.99")).posting.points == 499
    at_threshold = earn(member, bu, amount_cny=Decimal("500")).posting
    assert at_threshold.points == 600
    assert rules_fired(at_threshold) == {"base_rate": 500, "over-500": 100}
    ledger_sound()


def test_campaign_budget_of_a_million_points_then_it_stops(bu, ledger_sound):
    campaign = EarningRuleFactory(code="launch", effect=RuleEffect.RATE, rate=Decimal("10"), points=None,
                                  budget_points=1_000_000, priority=5)
    first, second, third = (enrol_member(name=f"Buyer {n}") for n in range(3))
    assert earn(first, bu, amount_cny=Decimal("60000")).posting.points == 600_000
    trimmed = earn(second, bu, amount_cny=Decimal("60000")).posting
    assert trimmed.points == 400_000
    assert (trimmed.explanation[0]["rule"], trimmed.explanation[0]["capped_from"]) == ("launch", 600_000)
    after = earn(third, bu, amount_cny=Decimal("60000")).posting
    assert rules_fired(after) == {"base_rate": 60_000}
    assert RuleBudget.objects.get(rule=campaign).spent == 1_000_000
    assert sum(RuleAward.objects.filter(rule=campaign).values_list("points", flat=True)) == 1_000_000
    ledger_sound()


def test_exclusive_rule_drops_lower_priority_rules_and_the_base_rate(bu, member):
    EarningRuleFactory(code="bonus", points=20, priority=1)
    EarningRuleFactory(code="flash-sale", points=300, priority=9, stacking=Stacking.EXCLUSIVE)
    EarningRuleFactory(code="vip-extra", points=7, priority=10)
    posting = earn(member, bu, amount_cny=Decimal("100")).posting
    assert rules_fired(posting) == {"flash-sale": 300, "vip-extra": 7}

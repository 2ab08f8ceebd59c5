"""Risk rules on the earn path: each kind fires, each action does what it says, a rule judges
from when it was switched on, and a refusal posts nothing but is recorded with its reference."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from points.exceptions import AccountFrozen, InsufficientPoints
from points.models import Lot, Posting, Wallet
from points.selectors import member_balance
from points.services import points_spend, posting_reverse
from riskcontrol.exceptions import RiskBlocked
from riskcontrol.models import BlockedAttempt, CaseStatus, RiskCase, RiskFreeze, RuleAction, RuleKind
from tests.factories import BusinessUnitFactory, MerchantFactory, enrol_member

pytestmark = pytest.mark.django_db
DAY = 24 * 60


def test_no_active_rule_leaves_the_earn_alone(bu, member, earn, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 1, action=RuleAction.BLOCK, is_active=False)
    result = earn(member, bu, "100")
    assert result.posting.points == 100
    assert member_balance(member_id=member.pk).available == 100
    assert not RiskCase.objects.exists() and not BlockedAttempt.objects.exists()


def test_velocity_blocks_the_earn_past_the_threshold_and_records_it(bu, member, earn, make_rule):
    rule = make_rule(RuleKind.EARN_COUNT, 3, window_minutes=DAY, action=RuleAction.BLOCK)
    for _ in range(3):
        earn(member, bu, "10")
    with pytest.raises(RiskBlocked) as refused:
        earn(member, bu, "10", device="phone-1", address="10.0.0.9")
    assert refused.value.as_dict()["code"] == "risk_blocked"
    reference = refused.value.as_dict()["reference"]
    assert Posting.objects.filter(wallet__member=member).count() == 3
    attempt = BlockedAttempt.objects.get(reference=reference)
    assert (attempt.member, attempt.rule, attempt.operation, attempt.device_id, attempt.client_address) == (
        member, rule, "earn", "phone-1", "10.0.0.9")
    assert attempt.details["findings"][0]["earns_in_window"] == 3


def test_a_rule_switched_on_today_judges_from_now_on(bu, member, earn, make_rule):
    for _ in range(5):
        earn(member, bu, "10")
    make_rule(RuleKind.EARN_COUNT, 2, window_minutes=DAY, action=RuleAction.BLOCK)
    earn(member, bu, "10")
    earn(member, bu, "10")
    with pytest.raises(RiskBlocked):
        earn(member, bu, "10")


def test_points_velocity_counts_points_earned_in_the_window(bu, member, earn, make_rule):
    make_rule(RuleKind.EARN_POINTS, 150, window_minutes=60, action=RuleAction.FLAG)
    earn(member, bu, "100")
    earn(member, bu, "60")  # 100 before it: under 150
    assert not RiskCase.objects.exists()
    earn(member, bu, "1")  # 160 before it
    assert RiskCase.objects.get().evidence["findings"][0]["points_in_window"] == 160


def test_hold_credits_the_points_pending_until_review_and_they_cannot_be_spent(bu, member, earn, make_rule):
    rule = make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    earn(member, bu, "50")
    result = earn(member, bu, "800")
    lot = Lot.objects.get(posting=result.posting)
    assert lot.available_at == lot.expires_at  # held until reviewed, capped at its expiry
    case = RiskCase.objects.get()
    assert (case.member, case.rule, case.action, case.status, case.posting, case.held_points) == (
        member, rule, RuleAction.HOLD, CaseStatus.OPEN, result.posting, 800)
    balance = member_balance(member_id=member.pk)
    assert (balance.total, balance.available, balance.pending) == (850, 50, 800)
    with pytest.raises(InsufficientPoints):
        points_spend(member_id=member.pk, points=51, business_unit=bu)


def test_flag_lets_the_points_through_and_opens_a_case(bu, member, earn, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.FLAG)
    result = earn(member, bu, "800")
    assert member_balance(member_id=member.pk).available == 800
    case = RiskCase.objects.get()
    assert (case.action, case.held_points, case.posting) == (RuleAction.FLAG, 0, result.posting)
    assert [event.to_status for event in case.events.all()] == [CaseStatus.OPEN]


def test_the_worst_action_decides_and_every_finding_is_evidence(bu, member, earn, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.FLAG, code="big-flag")
    make_rule(RuleKind.EARN_AMOUNT, 700, action=RuleAction.HOLD, code="bigger-hold")
    earn(member, bu, "800")
    case = RiskCase.objects.get()
    assert (case.action, case.rule.code) == (RuleAction.HOLD, "bigger-hold")
    assert {finding["rule"] for finding in case.evidence["findings"]} == {"big-flag", "bigger-hold"}


def test_scope_limits_a_rule_to_its_business_unit(bu, other_bu, member, earn, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 10, action=RuleAction.BLOCK, scope="business_unit", business_unit=other_bu)
    earn(member, bu, "100")
    with pytest.raises(RiskBlocked):
        earn(member, other_bu, "100")


def test_merchant_scope(bu, member, earn, make_rule):
    shop, other_shop = MerchantFactory(business_unit=bu, code="s1"), MerchantFactory(business_unit=bu, code="s2")
    make_rule(RuleKind.EARN_AMOUNT, 10, action=RuleAction.BLOCK, scope="merchant", merchant=shop)
    earn(member, bu, "100", merchant=other_shop)
    with pytest.raises(RiskBlocked):
        earn(member, bu, "100", merchant=shop)


def test_duplicate_receipt_by_another_member_is_flagged_with_the_first_earn(bu, merchant, earn, make_rule):
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.FLAG)
    first, second = enrol_member(), enrol_member()
    original = earn(first, bu, "100", merchant=merchant, receipt_no="R-1").posting
    again = earn(second, bu, "100", merchant=merchant, receipt_no="R-1").posting
    earn(second, bu, "100", merchant=merchant, receipt_no="R-2")
    case = RiskCase.objects.get()
    assert (case.member, case.posting) == (second, again)
    finding = case.evidence["findings"][0]
    assert (finding["first_earn"], finding["first_member"]) == (original.pk, first.pk)


def test_duplicate_receipt_that_blocks_posts_nothing(bu, merchant, member, earn, make_rule):
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.BLOCK)
    earn(member, bu, "100", merchant=merchant, receipt_no="R-1")
    with pytest.raises(RiskBlocked):
        earn(enrol_member(), bu, "100", merchant=merchant, receipt_no="R-1")
    assert Posting.objects.count() == 1
    assert BlockedAttempt.objects.get().details["receipt_no"] == "R-1"


def test_duplicate_receipt_that_holds_moves_the_lots_to_pending(bu, merchant, member, earn, make_rule):
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.HOLD)
    earn(member, bu, "100", merchant=merchant, receipt_no="R-1")
    again = earn(member, bu, "100", merchant=merchant, receipt_no="R-1").posting
    lot = Lot.objects.get(posting=again)
    assert lot.available_at == lot.expires_at
    assert member_balance(member_id=member.pk).pending == 100
    assert RiskCase.objects.get().held_points == 100


def test_receipts_earned_before_the_rule_do_not_count(bu, merchant, member, earn, make_rule):
    earn(member, bu, "100", merchant=merchant, receipt_no="R-1")
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.BLOCK)
    earn(member, bu, "100", merchant=merchant, receipt_no="R-1")  # the first is from before the rule
    with pytest.raises(RiskBlocked):
        earn(member, bu, "100", merchant=merchant, receipt_no="R-1")


def test_same_amount_in_the_same_minute_at_one_merchant(bu, merchant, earn, make_rule):
    make_rule(RuleKind.DUPLICATE_AMOUNT, 1, action=RuleAction.FLAG)
    at = timezone.now().replace(second=5, microsecond=0) - timedelta(minutes=3)
    earn(enrol_member(), bu, "88.80", merchant=merchant, occurred_at=at)
    earn(enrol_member(), bu, "88.80", merchant=merchant, occurred_at=at + timedelta(seconds=40))
    earn(enrol_member(), bu, "88.80", merchant=merchant, occurred_at=at + timedelta(minutes=1))
    assert RiskCase.objects.count() == 1


def test_many_members_on_one_device_are_flagged_with_the_others(bu, earn, make_rule):
    make_rule(RuleKind.DEVICE_MEMBERS, 2, window_minutes=DAY, action=RuleAction.FLAG)
    members = [enrol_member() for _ in range(3)]
    for member in members:
        earn(member, bu, "10", device="dev-1")
    earn(members[0], bu, "10", device="dev-1")  # the same member again: still two others
    earn(enrol_member(), bu, "10", device="dev-2")
    cases = list(RiskCase.objects.order_by("id"))
    assert [case.member for case in cases] == [members[2], members[0]]
    evidence = cases[0].evidence["findings"][0]
    assert (evidence["device"], evidence["members_in_window"], set(evidence["other_members"])) == (
        "dev-1", 3, {members[0].pk, members[1].pk})
    assert cases[0].device_id == "dev-1"


def test_many_members_from_one_address_blocks(bu, earn, make_rule):
    make_rule(RuleKind.ADDRESS_MEMBERS, 1, window_minutes=60, action=RuleAction.BLOCK)
    earn(enrol_member(), bu, "10", address="203.0.113.7")
    earn(enrol_member(), bu, "10", address="203.0.113.8")
    with pytest.raises(RiskBlocked):
        earn(enrol_member(), bu, "10", address="203.0.113.7")


def test_refund_ratio_holds_the_next_earns_of_a_member_who_refunds_most(bu, member, earn, make_rule):
    make_rule(RuleKind.REFUND_RATIO, "0.5", window_minutes=DAY, min_points=100, action=RuleAction.HOLD)
    first = earn(member, bu, "200").posting
    earn(member, bu, "10")
    assert not RiskCase.objects.exists()
    posting_reverse(posting_id=first.pk, points=150)
    held = earn(member, bu, "10").posting
    assert RiskCase.objects.get().posting == held
    assert member_balance(member_id=member.pk).pending == 10


def test_freeze_holds_the_earn_and_freezes_the_account(bu, member, earn, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.FREEZE, freeze_mode="both", freeze_days=7)
    earn(member, bu, "100")
    earn(member, bu, "900")
    freeze = RiskFreeze.objects.get()
    assert (freeze.member, freeze.mode, freeze.froze_wallet, freeze.case) == (member, "both", True, RiskCase.objects.get())
    assert freeze.ends_at > timezone.now() + timedelta(days=6)
    assert Wallet.objects.get(member=member).is_frozen
    with pytest.raises(AccountFrozen):
        points_spend(member_id=member.pk, points=10, business_unit=bu)
    with pytest.raises(RiskBlocked):
        earn(member, bu, "10")  # earning is frozen too
    assert BlockedAttempt.objects.get().origin == "freeze"


def test_an_earn_that_earns_nothing_leaves_no_finding_for_the_next(bu, member, earn, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 50, action=RuleAction.FLAG)
    zero_rate = BusinessUnitFactory(code="free", earn_rate=Decimal("0"))
    assert earn(member, zero_rate, "60").posting is None  # flagged, but nothing posted: no case
    earn(member, bu, "10")  # under the amount: must not inherit the finding above
    assert not RiskCase.objects.exists()


def test_a_receipt_claimed_by_a_refused_earn_stays_free(bu, merchant, earn, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.BLOCK)
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.BLOCK)
    with pytest.raises(RiskBlocked):
        earn(enrol_member(), bu, "900", merchant=merchant, receipt_no="R-9")
    assert earn(enrol_member(), bu, "100", merchant=merchant, receipt_no="R-9").posting.points == 100
    with pytest.raises(RiskBlocked):
        earn(enrol_member(), bu, "100", merchant=merchant, receipt_no="R-9")

"""Risk rules on redemptions (spends and holds): count, size, and points redeemed soon after
being earned; a flag lets the redemption through with a case, a block or freeze refuses it."""

import pytest

from points.exceptions import AccountFrozen
from points.ledger import hold_capture, hold_place
from points.models import Posting, PostingKind, Wallet
from points.services import points_spend
from riskcontrol.context import risk_request
from riskcontrol.exceptions import RiskBlocked
from riskcontrol.models import BlockedAttempt, RiskCase, RiskFreeze, RuleAction, RuleKind

pytestmark = pytest.mark.django_db


def test_redemptions_per_window_count_spends_and_holds_but_not_captures(bu, member, earn, make_rule):
    earn(member, bu, "1000")
    make_rule(RuleKind.REDEMPTION_COUNT, 3, window_minutes=60, action=RuleAction.BLOCK)
    points_spend(member_id=member.pk, points=10, business_unit=bu)
    hold = hold_place(member_id=member.pk, points=10, business_unit=bu, purpose="pos_bill").hold
    hold_capture(hold_id=hold.pk)  # judged when placed: the capture is not a third redemption
    points_spend(member_id=member.pk, points=10, business_unit=bu)
    with risk_request(), pytest.raises(RiskBlocked):
        points_spend(member_id=member.pk, points=10, business_unit=bu)
    assert Posting.objects.filter(kind=PostingKind.SPEND).count() == 3
    assert BlockedAttempt.objects.get().operation == "spend"


def test_a_redemption_above_an_amount_is_flagged_and_goes_through(bu, member, earn, make_rule):
    earn(member, bu, "2000")
    rule = make_rule(RuleKind.REDEMPTION_POINTS, 500, action=RuleAction.FLAG)
    points_spend(member_id=member.pk, points=500, business_unit=bu)
    assert not RiskCase.objects.exists()
    points_spend(member_id=member.pk, points=501, business_unit=bu)
    case = RiskCase.objects.get()
    assert (case.rule, case.operation, case.points, case.posting) == (rule, "spend", -501, None)


def test_earn_then_redeem_blocks_fresh_points_leaving_at_once(bu, member, earn, make_rule):
    make_rule(RuleKind.EARN_THEN_REDEEM, 300, window_minutes=30, action=RuleAction.BLOCK)
    earn(member, bu, "1000")
    points_spend(member_id=member.pk, points=300, business_unit=bu)  # not above 300
    with risk_request(), pytest.raises(RiskBlocked):
        hold_place(member_id=member.pk, points=400, business_unit=bu, purpose="mall_order")
    assert BlockedAttempt.objects.get().operation == "hold"


def test_freeze_on_a_redemption_refuses_it_and_freezes_after_the_rollback(bu, member, earn, make_rule):
    earn(member, bu, "1000")
    make_rule(RuleKind.REDEMPTION_POINTS, 100, action=RuleAction.FREEZE, freeze_mode="spending")
    with risk_request(), pytest.raises(RiskBlocked):
        points_spend(member_id=member.pk, points=200, business_unit=bu)
    freeze = RiskFreeze.objects.get()
    assert (freeze.mode, freeze.froze_wallet) == ("spending", True)
    assert Wallet.objects.get(member=member).is_frozen
    with pytest.raises(AccountFrozen):
        points_spend(member_id=member.pk, points=10, business_unit=bu)

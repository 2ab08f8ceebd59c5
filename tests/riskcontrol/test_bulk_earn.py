"""Risk rules in the bulk earn: set-wise, the gates judge each item and the after-earn hook
opens the cases; a block found after pricing sends the batch one item at a time, where only
that item is refused."""

from decimal import Decimal

import pytest

from points.batch import CREATED, ERROR, EarnBatchItem, points_earn_batch
from points.models import Posting
from points.selectors import member_balance
from riskcontrol.context import risk_request
from riskcontrol.models import BlockedAttempt, RiskCase, RiskReceipt, RuleAction, RuleKind
from tests.factories import enrol_member

pytestmark = pytest.mark.django_db


def batch(bu, items):
    with risk_request():
        return points_earn_batch(items=items, business_unit=bu, key_merchant=None, scope="pos")


def item(n, member, amount="100", receipt=None):
    return EarnBatchItem(idempotency_key=f"b{n}", member_id=member.pk, amount_cny=Decimal(amount),
                         receipt_no=receipt or f"R{n}", merchant_code="shop1")


def test_bulk_items_are_held_and_flagged_like_single_earns(bu, merchant, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.FLAG)
    members = [enrol_member() for _ in range(3)]
    outcomes = batch(bu, [item(0, members[0], "800"), item(1, members[1], receipt="R0"), item(2, members[2])])
    assert [outcome.status for outcome in outcomes] == [CREATED] * 3
    cases = {case.member_id: case for case in RiskCase.objects.all()}
    assert set(cases) == {members[0].pk, members[1].pk}
    assert (cases[members[0].pk].action, cases[members[0].pk].held_points) == (RuleAction.HOLD, 800)
    assert cases[members[1].pk].action == RuleAction.FLAG
    assert member_balance(member_id=members[0].pk).pending == 800


def test_a_duplicate_that_blocks_refuses_only_its_item(bu, merchant, make_rule):
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.BLOCK)
    members = [enrol_member() for _ in range(3)]
    outcomes = batch(bu, [item(0, members[0], receipt="X"), item(1, members[1], receipt="X"), item(2, members[2])])
    assert [outcome.status for outcome in outcomes] == [CREATED, ERROR, CREATED]
    assert outcomes[1].error["code"] == "risk_blocked"
    assert Posting.objects.count() == 2
    assert BlockedAttempt.objects.count() == 1


def test_a_gate_block_refuses_only_its_item_set_wise(bu, merchant, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.BLOCK)
    members = [enrol_member() for _ in range(2)]
    outcomes = batch(bu, [item(0, members[0], "900"), item(1, members[1])])
    assert [outcome.status for outcome in outcomes] == [ERROR, CREATED]
    assert BlockedAttempt.objects.get().member == members[0]


def test_an_item_refused_by_another_rule_leaves_its_receipt_unclaimed(bu, merchant, make_rule):
    # Set-wise, a refusal does not roll the batch back: the gate gives back the receipt it claimed.
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.BLOCK)
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.FLAG)
    members = [enrol_member() for _ in range(2)]
    outcomes = batch(bu, [item(0, members[0], "900", receipt="Y"), item(1, members[1], receipt="Y")])
    assert [outcome.status for outcome in outcomes] == [ERROR, CREATED]
    assert list(RiskReceipt.objects.values_list("member_id", flat=True)) == [members[1].pk]
    assert not RiskCase.objects.exists()  # the receipt was the second item's own

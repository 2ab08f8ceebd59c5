"""What risk control costs on the earn and redemption paths, in SQL statements: nothing with no
rule active (also held by tests/points/test_hot_paths.py), and a fixed, known set with three
active rules on each (the earn: velocity, duplicate receipt, device: one statement; the
redemption: velocity, one redemption's points, earn-then-redeem: one)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from points.earning import points_earn
from points.ledger import Idempotency
from points.services import points_spend
from riskcontrol.context import risk_request
from riskcontrol.models import RuleAction, RuleKind
from riskcontrol.services import blacklist_add, blacklist_remove, freeze_lift, freeze_open
from tests.points.test_hot_paths import verbs
from tests.factories import ladder

pytestmark = pytest.mark.django_db
BASELINE = ["SELECT", "SELECT", "SELECT", "WITH", "SELECT", "UPDATE"]


@pytest.fixture
def tiers(db):
    return ladder()


def earn_statements(member, bu, merchant, key, *, device="till-7", receipt="R-1"):
    with risk_request(device_id=device), CaptureQueriesContext(connection) as queries:
        points_earn(member_id=member.pk, business_unit=bu, merchant=merchant, amount_cny=Decimal("10"),
                    receipt_no=receipt, idempotency=Idempotency(scope="pos", key=key))
    return verbs(queries)


def test_inactive_rules_lifted_freezes_and_removed_entries_cost_nothing(bu, merchant, member, tiers, make_rule):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("10"))
    make_rule(RuleKind.EARN_COUNT, 5, window_minutes=60, is_active=False)
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.FLAG, is_active=False)
    freeze_lift(freeze_id=freeze_open(member_id=member.pk, mode="earning", reason="x").pk, reason="y")
    blacklist_remove(entry_id=blacklist_add(kind="device", value="d", action="block", reason="x").pk)
    earn_statements(member, bu, merchant, "warm")  # the configuration cache filled (five reads, once)
    assert earn_statements(member, bu, merchant, "k1") == BASELINE
    with CaptureQueriesContext(connection) as spending:
        points_spend(member_id=member.pk, business_unit=bu, points=5, idempotency=Idempotency(scope="pos", key="s"))
    assert verbs(spending) == ["SELECT", "SELECT", "SELECT", "WITH", "INSERT"]  # the INSERT: settlement's clearing line


def test_three_active_rules_add_one_statement_to_an_earn(bu, merchant, member, tiers, make_rule):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("10"))
    make_rule(RuleKind.EARN_COUNT, 50, window_minutes=24 * 60, action=RuleAction.BLOCK)
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.FLAG)
    make_rule(RuleKind.DEVICE_MEMBERS, 5, window_minutes=24 * 60, action=RuleAction.FLAG)
    earn_statements(member, bu, merchant, "warm", receipt="R-0")  # the configuration cache filled
    with CaptureQueriesContext(connection) as queries:
        added = earn_statements(member, bu, merchant, "k2")
    # lock the wallet, look for the key, read the tier row; the gate (riskcontrol.counters), one
    # statement: upsert the device (its row locked) and the member's use of it, count the member's
    # earns in the window and the other members on the device, claim the receipt; write the
    # posting; the tier hook
    assert added == ["SELECT", "SELECT", "SELECT", "WITH", "WITH", "SELECT", "UPDATE"]
    assert len(added) - len(BASELINE) == 1
    counts = next(query["sql"] for query in queries.captured_queries if query["sql"].startswith("WITH"))
    assert all(table in counts for table in (
        "riskcontrol_riskdevice ", "riskcontrol_riskdeviceuse", "riskcontrol_riskreceipt", "points_posting"))


SPEND_BASELINE = ["SELECT", "SELECT", "SELECT", "WITH", "INSERT"]


def spend_statements(member, bu, key):
    with CaptureQueriesContext(connection) as queries:
        points_spend(member_id=member.pk, business_unit=bu, points=5, idempotency=Idempotency(scope="pos", key=key))
    return verbs(queries)


def test_the_earn_rules_cost_a_redemption_nothing(bu, merchant, member, tiers, make_rule):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100"))
    make_rule(RuleKind.EARN_COUNT, 50, window_minutes=24 * 60, action=RuleAction.BLOCK)
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.FLAG)
    make_rule(RuleKind.DEVICE_MEMBERS, 5, window_minutes=24 * 60, action=RuleAction.FLAG)
    spend_statements(member, bu, "warm")  # the configuration cache filled
    assert spend_statements(member, bu, "s1") == SPEND_BASELINE


def test_three_active_redemption_rules_add_one_statement_to_a_redemption(bu, member, tiers, make_rule):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100"))
    make_rule(RuleKind.REDEMPTION_COUNT, 50, window_minutes=24 * 60, action=RuleAction.BLOCK)
    make_rule(RuleKind.REDEMPTION_POINTS, 1000, action=RuleAction.FLAG)
    make_rule(RuleKind.EARN_THEN_REDEEM, 1000, window_minutes=30, action=RuleAction.FLAG)
    spend_statements(member, bu, "warm")
    added = spend_statements(member, bu, "s2")
    # lock the wallet, look for the key; the gate: the member's redemptions and earns in the
    # windows and the holds placed in them, one statement; then the spend as without rules
    assert added == ["SELECT", "SELECT", "WITH", "SELECT", "WITH", "INSERT"]
    assert len(added) - len(SPEND_BASELINE) == 1

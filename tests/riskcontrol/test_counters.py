"""The counters the gates judge (riskcontrol.counters) count the same in their one statement
(PostgreSQL) and statement by statement with the ORM (elsewhere: the SQLite demo)."""

import pytest
from django.db import transaction
from django.utils import timezone

from points.ledger import hold_capture, hold_place, wallet_lock
from points.services import points_spend, posting_reverse
from riskcontrol import counters
from riskcontrol.models import RiskDevice, RiskDeviceUse, RiskReceipt, RuleKind
from riskcontrol.selectors import risk_config
from tests.factories import enrol_member

pytestmark = pytest.mark.django_db
DAY = 24 * 60


@pytest.fixture(params=["one statement", "orm"])
def path(request, monkeypatch):
    if request.param == "orm":
        monkeypatch.setattr(counters, "_one_statement", lambda: False)
    return request.param


def rules_of(kind):
    config = risk_config()
    return [rule for rule in (*config.earn_rules, *config.spend_rules) if rule.kind == kind]


def test_an_earns_counts_and_claims(path, bu, merchant, member, earn, make_rule):
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action="flag")
    make_rule(RuleKind.EARN_COUNT, 50, window_minutes=DAY)
    make_rule(RuleKind.REFUND_RATIO, "0.9", window_minutes=DAY)
    make_rule(RuleKind.DEVICE_MEMBERS, 50, window_minutes=DAY, action="flag")
    other = enrol_member()
    first = earn(member, bu, "100", device="phone-1").posting
    earn(member, bu, "100", device="phone-1")
    earn(other, bu, "50", device="phone-1", merchant=merchant, receipt_no="R-1")
    posting_reverse(posting_id=first.pk, points=30)
    taken = RiskReceipt.objects.get().fingerprint
    history_rules = rules_of(RuleKind.EARN_COUNT) + rules_of(RuleKind.REFUND_RATIO)
    device_rule = rules_of(RuleKind.DEVICE_MEMBERS)[0]
    with transaction.atomic():
        wallet_lock(member_id=member.pk)
        counts = counters.earn_counts(
            member_id=member.pk, history_rules=history_rules, seen={"device": "phone-1", "address": "10.0.0.9"},
            device_rules=[(device_rule, "device")], fingerprints=["receipt:new", taken], now=timezone.now(),
        )
        assert counts.claimed == {"receipt:new"}
        counters.receipts_release(fingerprints=counts.claimed)
    assert all(counts.history[rule.id] == {"earns": 2, "points": 200, "refunded": 30} for rule in history_rules)
    assert counts.others == {device_rule.id: 1}
    phone = RiskDevice.objects.get(kind="device", value="phone-1")
    assert counts.devices == {"device": phone.pk, "address": RiskDevice.objects.get(kind="address").pk}
    assert phone.version == 4  # three earns and this one moved it on
    assert RiskDeviceUse.objects.filter(member=member).count() == 2  # the phone and the address
    assert list(RiskReceipt.objects.values_list("fingerprint", flat=True)) == [taken]


def test_a_redemptions_counts(path, bu, member, earn, make_rule):
    earn(member, bu, "1000")  # before the rules were switched on: not counted
    make_rule(RuleKind.REDEMPTION_COUNT, 50, window_minutes=DAY, action="flag")
    make_rule(RuleKind.EARN_THEN_REDEEM, 5000, window_minutes=30, action="flag")
    earn(member, bu, "300")
    points_spend(member_id=member.pk, points=10, business_unit=bu)
    hold = hold_place(member_id=member.pk, points=10, business_unit=bu, purpose="pos_bill").hold
    hold_capture(hold_id=hold.pk)  # a hold placed counts, its capture does not
    rules = rules_of(RuleKind.REDEMPTION_COUNT) + rules_of(RuleKind.EARN_THEN_REDEEM)
    with transaction.atomic():
        wallet_lock(member_id=member.pk)
        counted = counters.spend_counts(member_id=member.pk, rules=rules, now=timezone.now(), count_holds=True)
        without_holds = counters.spend_counts(member_id=member.pk, rules=rules, now=timezone.now(), count_holds=False)
    assert all(counted[rule.id] == {"redemptions": 2, "earned": 300} for rule in rules)
    assert all(without_holds[rule.id] == {"redemptions": 1, "earned": 300} for rule in rules)

"""Risk control's guarantees under real concurrency: threads, each on its own PostgreSQL
connection, committing (transaction=True), started together at a barrier (tests.concurrency)."""

import threading
import time
from unittest.mock import patch

import pytest
from django.db import connection, transaction
from django.utils import timezone

from points.models import Posting, PostingKind, Wallet
from points.selectors import member_balance
from points.services import points_adjust, posting_reverse
from points.exceptions import ReversalExceedsOriginal
from riskcontrol import counters
from riskcontrol.exceptions import AdjustmentApprovalRequired, CaseResolved, RiskBlocked
from riskcontrol.models import (
    AdjustmentRequest,
    AdjustmentThreshold,
    BlockedAttempt,
    CaseStatus,
    DeviceKind,
    RequestStatus,
    RiskCase,
    RiskReceipt,
    RuleAction,
    RuleKind,
)
from riskcontrol.services import adjustment_request_approve, case_approve, case_reject
from tests.concurrency import errors_of, results_of, run_together
from tests.factories import MerchantFactory, OperatorFactory, enrol_member

pytestmark = pytest.mark.django_db(transaction=True)
DAY = 24 * 60


def test_a_velocity_rule_of_5_earns_a_day_raced_by_20_earns_lets_exactly_5_pass(bu, earn, make_rule):
    member = enrol_member()
    make_rule(RuleKind.EARN_COUNT, 5, window_minutes=DAY, action=RuleAction.BLOCK)
    outcomes = run_together([lambda: earn(member, bu, "10") for _ in range(20)])
    assert len(results_of(outcomes)) == 5
    assert all(isinstance(error, RiskBlocked) for error in errors_of(outcomes)), errors_of(outcomes)
    assert Posting.objects.filter(wallet__member=member, kind=PostingKind.EARN).count() == 5
    assert Wallet.objects.get(member=member).balance == 50
    assert BlockedAttempt.objects.count() == 15


@pytest.mark.parametrize("action", [RuleAction.FLAG, RuleAction.BLOCK])
def test_a_duplicate_receipt_raced_from_two_tills_earns_once_and_is_caught_once(bu, earn, make_rule, action):
    shop = MerchantFactory(business_unit=bu, code="till-shop")
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=action)
    first, second = enrol_member(), enrol_member()
    outcomes = run_together([
        lambda: earn(first, bu, "100", merchant=shop, receipt_no="R-77"),
        lambda: earn(second, bu, "100", merchant=shop, receipt_no="R-77"),
    ])
    assert RiskReceipt.objects.count() == 1  # claimed once, in the gate, by the earn that committed first
    if action == RuleAction.BLOCK:
        assert len(results_of(outcomes)) == 1 and isinstance(errors_of(outcomes)[0], RiskBlocked)
        assert Posting.objects.filter(kind=PostingKind.EARN).count() == 1
        assert BlockedAttempt.objects.count() == 1
    else:
        assert len(results_of(outcomes)) == 2
        case = RiskCase.objects.get()  # exactly one of the two is the duplicate
        postings = {result.posting.pk for result in results_of(outcomes)}
        assert case.posting_id in postings
        assert case.evidence["findings"][0]["first_earn"] == (postings - {case.posting_id}).pop()


def test_earns_racing_on_one_receipt_and_one_device_wait_in_one_order(bu, earn, make_rule):
    # Each earn's statement locks the device before it claims the receipt: never crosswise.
    shop = MerchantFactory(business_unit=bu, code="till-shop")
    make_rule(RuleKind.DUPLICATE_RECEIPT, 1, action=RuleAction.BLOCK)
    make_rule(RuleKind.DEVICE_MEMBERS, 100, window_minutes=DAY, action=RuleAction.FLAG)
    members = [enrol_member() for _ in range(4)]
    outcomes = run_together([
        lambda m=m: earn(m, bu, "100", merchant=shop, receipt_no="R-78", device="kiosk") for m in members
    ])
    assert len(results_of(outcomes)) == 1
    assert all(isinstance(error, RiskBlocked) for error in errors_of(outcomes)), errors_of(outcomes)
    assert RiskReceipt.objects.count() == 1


def test_members_racing_on_one_device_are_counted_one_after_the_other(bu, earn, make_rule):
    make_rule(RuleKind.DEVICE_MEMBERS, 3, window_minutes=DAY, action=RuleAction.BLOCK)
    members = [enrol_member() for _ in range(8)]
    outcomes = run_together([lambda m=m: earn(m, bu, "10", device="shared-phone") for m in members])
    assert len(results_of(outcomes)) == 3
    assert all(isinstance(error, RiskBlocked) for error in errors_of(outcomes)), errors_of(outcomes)


def _blocked_by_me() -> int:
    """Backends waiting for a lock this connection holds (read afresh: no statistics snapshot)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))")
        return cursor.fetchone()[0]


def test_an_earn_that_waited_for_the_device_counts_the_member_it_waited_for(bu, earn, make_rule):
    # The earn's one statement reads what was committed when it began; having waited for the
    # device's lock, it must count again (riskcontrol.counters): here the member before it commits
    # only once the earn's statement is waiting for the lock.
    make_rule(RuleKind.DEVICE_MEMBERS, 1, window_minutes=DAY, action=RuleAction.BLOCK)
    first, second = enrol_member(), enrol_member()
    holding = threading.Event()

    def hold_the_device_until_the_earn_waits():
        with transaction.atomic():
            counters.devices_seen(seen={DeviceKind.DEVICE: "shared-phone"}, member_id=first.pk, now=timezone.now())
            holding.set()
            deadline = time.monotonic() + 30
            while not _blocked_by_me():
                assert time.monotonic() < deadline, "the earn never waited for the device's lock"
                time.sleep(0.02)

    def earn_once_the_device_is_held():
        assert holding.wait(30)
        return earn(second, bu, "10", device="shared-phone")

    with patch("riskcontrol.counters._others_again", wraps=counters._others_again) as counted_again:
        outcomes = run_together([hold_the_device_until_the_earn_waits, earn_once_the_device_is_held])
    assert outcomes[0] == (True, None)
    assert isinstance(outcomes[1][1], RiskBlocked), outcomes[1]
    assert counted_again.call_count == 1
    assert not Posting.objects.filter(kind=PostingKind.EARN).exists()


@pytest.fixture
def held_case(bu, earn, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    member = enrol_member()
    earn(member, bu, "800")
    return RiskCase.objects.get(member=member)


def test_approve_and_reject_racing_on_one_case_move_it_once(held_case):
    reviewers = [OperatorFactory(username=f"rev-{n}") for n in range(2)]
    outcomes = run_together([
        lambda: case_approve(case_id=held_case.pk, actor=reviewers[0], reason="fine"),
        lambda: case_reject(case_id=held_case.pk, actor=reviewers[1], reason="fraud"),
    ])
    assert len(results_of(outcomes)) == 1
    assert isinstance(errors_of(outcomes)[0], CaseResolved)
    case = RiskCase.objects.get()
    balance = member_balance(member_id=case.member_id)
    if case.status == CaseStatus.APPROVED:
        assert (balance.available, balance.total) == (800, 800)
        assert not Posting.objects.filter(kind=PostingKind.REFUND).exists()
    else:
        assert balance.total == 0
    assert case.events.count() == 2


def test_many_approvals_racing_release_the_points_once(held_case):
    reviewers = [OperatorFactory(username=f"rev-{n}") for n in range(6)]
    outcomes = run_together([
        lambda r=r: case_approve(case_id=held_case.pk, actor=r, reason="fine") for r in reviewers
    ])
    assert len(results_of(outcomes)) == 1
    assert member_balance(member_id=held_case.member_id).available == 800


def test_reject_racing_a_merchant_refund_never_reverses_more_than_the_earn(held_case):
    reviewer = OperatorFactory(username="rev")
    outcomes = run_together([
        lambda: case_reject(case_id=held_case.pk, actor=reviewer, reason="fraud"),
        lambda: posting_reverse(posting_id=held_case.posting_id, points=300),
    ])
    # Either order reverses the earn once in all: reject first takes all 800 and the refund finds
    # nothing left; the refund first takes 300 and the reject the 500 left.
    assert all(isinstance(error, ReversalExceedsOriginal) for error in errors_of(outcomes)), errors_of(outcomes)
    refunds = Posting.objects.filter(kind=PostingKind.REFUND, reverses_id=held_case.posting_id)
    assert sum(-refund.points for refund in refunds) == 800
    assert RiskCase.objects.get().status == CaseStatus.REJECTED
    wallet = Wallet.objects.get(member_id=held_case.member_id)
    assert (wallet.balance, wallet.debt) == (0, 0)


def test_two_checkers_racing_on_one_request_post_it_once(bu, operator):
    AdjustmentThreshold.objects.create(group=None, max_points=100)
    member = enrol_member()
    maker = OperatorFactory(username="maker", is_superuser=True)
    request = AdjustmentRequest.objects.create(
        member=member, business_unit=bu, points=500, reason_code="goodwill", reason="parking fault", maker=maker,
        expires_at=bu.created_at.replace(year=bu.created_at.year + 1),
    )
    checkers = [OperatorFactory(username=f"checker-{n}") for n in range(4)]
    outcomes = run_together([
        lambda c=c: adjustment_request_approve(request_id=request.pk, checker=c) for c in checkers
    ])
    assert len(results_of(outcomes)) == 1
    assert Posting.objects.filter(kind=PostingKind.ADJUST).count() == 1
    request.refresh_from_db()
    assert request.status == RequestStatus.EXECUTED and request.checker in checkers
    assert Wallet.objects.get(member=member).balance == 500
    with pytest.raises(AdjustmentApprovalRequired):  # by hand, the maker still needs a second operator
        points_adjust(member_id=member.pk, points=500, business_unit=bu, reason="goodwill: again", actor=maker)
    assert Wallet.objects.get(member=member).balance == 500


def test_approve_racing_the_expiry_job_never_makes_expired_points_spendable(bu, earn, make_rule):
    from datetime import timedelta

    from django.utils import timezone

    from points.expiry import expiry_run_batch

    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    member = enrol_member()
    earn(member, bu, "800", occurred_at=timezone.now() - timedelta(days=400), max_backdate=None)  # expired, held
    case = RiskCase.objects.get()
    reviewer = OperatorFactory(username="rev")
    outcomes = run_together([
        lambda: case_approve(case_id=case.pk, actor=reviewer, reason="fine"),
        lambda: expiry_run_batch(now=timezone.now()),
    ])
    assert not errors_of(outcomes), errors_of(outcomes)
    balance = member_balance(member_id=member.pk)
    assert (balance.available, balance.total) == (0, 0)
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 1

"""Maker-checker for manual adjustments: above the operator's limit, or to their own member
account, an adjustment becomes a request that a second operator approves; the maker never
decides their own, on any path; duplicates are refused; requests expire; reason codes."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from points.models import Posting, PostingKind, Wallet
from points.services import points_adjust
from riskcontrol.exceptions import (
    AdjustmentApprovalRequired,
    ApprovalNotPermitted,
    DuplicateAdjustmentRequest,
    MakerCannotDecide,
    OperatorRequired,
    ReasonCodeRequired,
    RequestExpired,
    RequestNotPending,
    RiskBlocked,
)
from riskcontrol.models import (
    AdjustmentRequest,
    AdjustmentThreshold,
    BlockedAttempt,
    OperatorMember,
    RequestStatus,
    RiskCase,
    RuleAction,
    RuleKind,
)
from riskcontrol.services import (
    adjustment_request_approve,
    adjustment_request_reject,
    adjustment_request_withdraw,
    adjustment_requests_expire,
)
from tests.factories import enrol_member
from tests.riskcontrol.conftest import staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def maker(db):
    return staff("maker", "operations")


@pytest.fixture
def limits(db):
    AdjustmentThreshold.objects.create(group=None, max_points=1000)


def adjust(member, bu, points, actor, reason="goodwill: parking gate fault"):
    return points_adjust(member_id=member.pk, points=points, business_unit=bu, reason=reason, actor=actor)


def request_of(refused) -> AdjustmentRequest:
    return AdjustmentRequest.objects.get(pk=refused.value.request_id)


def test_without_limits_adjustments_post_as_before(bu, member, maker):
    assert adjust(member, bu, 50_000, maker).posting.points == 50_000


def test_above_the_limit_the_adjustment_becomes_a_request_and_posts_nothing(bu, member, maker, limits):
    adjust(member, bu, 1000, maker)
    with pytest.raises(AdjustmentApprovalRequired) as refused:
        adjust(member, bu, -1001, maker, reason="correction: double credit")
    request = request_of(refused)
    assert (request.member, request.points, request.reason_code, request.reason, request.maker, request.status) == (
        member, -1001, "correction", "double credit", maker, RequestStatus.PENDING)
    assert request.expires_at > timezone.now() + timedelta(days=2)
    assert Posting.objects.filter(kind=PostingKind.ADJUST).count() == 1
    assert [event.to_status for event in request.events.all()] == [RequestStatus.PENDING]


def test_a_request_needs_a_reason_code(bu, member, maker, limits):
    with pytest.raises(ReasonCodeRequired):
        adjust(member, bu, 5000, maker, reason="because")
    assert not AdjustmentRequest.objects.exists()


def test_a_second_pending_request_for_the_same_member_and_points_is_refused(bu, member, maker, limits):
    with pytest.raises(AdjustmentApprovalRequired):
        adjust(member, bu, 5000, maker)
    with pytest.raises(DuplicateAdjustmentRequest):
        adjust(member, bu, 5000, maker, reason="goodwill: again")
    with pytest.raises(AdjustmentApprovalRequired):
        adjust(member, bu, 5001, maker)
    assert AdjustmentRequest.objects.count() == 2


def test_the_limit_of_the_operators_role_applies(bu, member, maker, limits):
    AdjustmentThreshold.objects.create(group=Group.objects.get(name="operations"), max_points=10_000)
    assert adjust(member, bu, 9_000, maker).posting.points == 9_000
    with pytest.raises(AdjustmentApprovalRequired):
        adjust(member, bu, 10_001, maker)


def test_an_operators_own_account_always_needs_a_second_operator(bu, maker, limits):
    own = enrol_member(email="MAKER@example.com")
    with pytest.raises(AdjustmentApprovalRequired):
        adjust(own, bu, 1, maker)
    linked = enrol_member()
    OperatorMember.objects.create(operator=maker, member=linked)
    with pytest.raises(AdjustmentApprovalRequired):
        adjust(linked, bu, 1, maker)


def test_a_second_operator_approves_and_the_adjustment_posts_once(bu, member, maker, checker, limits):
    with pytest.raises(AdjustmentApprovalRequired) as refused:
        adjust(member, bu, 5000, maker)
    request = adjustment_request_approve(request_id=refused.value.request_id, checker=checker, reason="checked")
    assert (request.status, request.checker) == (RequestStatus.EXECUTED, checker)
    posting = request.posting
    assert (posting.points, posting.actor, posting.idempotency_key) == (5000, maker, f"adjust-request:{request.pk}")
    assert [e.to_status for e in request.events.all()] == [
        RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTED]
    with pytest.raises(RequestNotPending):
        adjustment_request_approve(request_id=request.pk, checker=checker)
    assert Wallet.objects.get(member=member).balance == 5000


def test_the_maker_cannot_decide_their_own_request_on_any_path(bu, member, limits):
    maker = staff("maker-approver", "finance")  # has the approve permission itself
    with pytest.raises(AdjustmentApprovalRequired) as refused:
        adjust(member, bu, 5000, maker)
    request = request_of(refused)
    with pytest.raises(MakerCannotDecide):
        adjustment_request_approve(request_id=request.pk, checker=maker)
    with pytest.raises(MakerCannotDecide):
        adjustment_request_reject(request_id=request.pk, checker=maker, reason="no")
    # Not even by writing the row: the database refuses a request decided by its maker.
    with pytest.raises(IntegrityError), transaction.atomic():
        AdjustmentRequest.objects.filter(pk=request.pk).update(status=RequestStatus.APPROVED, checker=maker)
    # Nor by posting it by hand under the request's key: only an approved request passes (this
    # one asks for approval again, and the pending request for the same points refuses it).
    from points.ledger import OPERATOR_SCOPE, Idempotency
    with pytest.raises(DuplicateAdjustmentRequest):
        points_adjust(member_id=member.pk, points=5000, business_unit=bu, reason="goodwill: x", actor=maker,
                      idempotency=Idempotency(scope=OPERATOR_SCOPE, key=f"adjust-request:{request.pk}"))
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING
    assert not Posting.objects.filter(kind=PostingKind.ADJUST).exists()
    adjustment_request_withdraw(request_id=request.pk, maker=maker)
    request.refresh_from_db()
    assert request.status == RequestStatus.WITHDRAWN


def test_only_operators_with_the_approve_permission_decide(bu, member, maker, limits):
    with pytest.raises(AdjustmentApprovalRequired) as refused:
        adjust(member, bu, 5000, maker)
    other_operations = staff("ops-2", "operations")
    with pytest.raises(ApprovalNotPermitted):
        adjustment_request_approve(request_id=refused.value.request_id, checker=other_operations)


def test_a_rejected_request_posts_nothing(bu, member, maker, checker, limits):
    with pytest.raises(AdjustmentApprovalRequired) as refused:
        adjust(member, bu, 5000, maker)
    request = adjustment_request_reject(request_id=refused.value.request_id, checker=checker, reason="no ticket")
    assert request.status == RequestStatus.REJECTED
    assert not Posting.objects.exists()


def test_an_approved_request_the_ledger_refuses_is_failed(bu, member, maker, checker, limits):
    with pytest.raises(AdjustmentApprovalRequired) as refused:
        adjust(member, bu, -5000, maker, reason="fraud: clawback")
    request = adjustment_request_approve(request_id=refused.value.request_id, checker=checker)
    assert request.status == RequestStatus.FAILED and request.failure
    assert not Posting.objects.exists()


def test_requests_expire(bu, member, maker, checker, limits):
    with pytest.raises(AdjustmentApprovalRequired) as first:
        adjust(member, bu, 5000, maker)
    with pytest.raises(AdjustmentApprovalRequired) as second:
        adjust(member, bu, 6000, maker)
    AdjustmentRequest.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(RequestExpired):
        adjustment_request_approve(request_id=first.value.request_id, checker=checker)
    assert adjustment_requests_expire() == 1
    statuses = set(AdjustmentRequest.objects.values_list("status", flat=True))
    assert statuses == {RequestStatus.EXPIRED}
    assert second.value.request_id and not Posting.objects.exists()


def test_with_limits_set_an_adjustment_needs_a_named_operator(bu, member, limits):
    with pytest.raises(OperatorRequired):
        points_adjust(member_id=member.pk, points=1, business_unit=bu, reason="r", actor=None)


def test_a_posted_adjustment_replays_even_after_the_limit_is_lowered(bu, member, maker):
    from points.ledger import OPERATOR_SCOPE, Idempotency

    key = Idempotency(scope=OPERATOR_SCOPE, key="adjust:console-1")
    first = points_adjust(member_id=member.pk, points=500, business_unit=bu, reason="r", actor=maker, idempotency=key)
    AdjustmentThreshold.objects.create(group=None, max_points=100)
    again = points_adjust(member_id=member.pk, points=500, business_unit=bu, reason="r", actor=maker, idempotency=key)
    assert again.replayed and again.posting == first.posting


def test_operator_totals_above_a_rule_block_flag_or_ask_for_approval(bu, member, maker, make_rule):
    block = make_rule(RuleKind.OPERATOR_ADJUSTMENTS, 1000, window_minutes=24 * 60, action=RuleAction.BLOCK)
    adjust(member, bu, 600, maker)
    with pytest.raises(RiskBlocked):
        adjust(member, bu, -500, maker)
    assert BlockedAttempt.objects.get().operation == "adjust"
    block.is_active = False
    block.save()
    make_rule(RuleKind.OPERATOR_ADJUSTMENTS, 1000, window_minutes=24 * 60, action=RuleAction.FLAG)
    adjust(member, bu, 600, maker)  # the rule counts from now on: 600
    adjust(member, bu, -500, maker)  # 1100 > 1000: flagged, posted
    assert RiskCase.objects.get().operation == "adjust"
    make_rule(RuleKind.OPERATOR_ADJUSTMENTS, 1500, window_minutes=24 * 60, action=RuleAction.HOLD)
    with pytest.raises(AdjustmentApprovalRequired):
        adjust(member, bu, 1600, maker)
    assert Posting.objects.filter(kind=PostingKind.ADJUST).count() == 3

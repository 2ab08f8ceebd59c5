"""The review queue's decisions: approve releases held points (available exactly once), reject
reverses them (never below zero, never twice), each once, audited; bulk decisions; refunds and
expiry before the decision."""

from datetime import timedelta

import pytest
from django.utils import timezone

from points.exceptions import InsufficientPoints
from points.expiry import expiry_run_batch
from points.models import Lot, Posting, PostingKind, Wallet
from points.selectors import member_balance
from points.services import points_spend, posting_reverse
from riskcontrol.exceptions import CaseResolved, InvalidRiskInput, ReviewNotPermitted
from riskcontrol.models import CaseStatus, RiskCase, RiskFreeze, RuleAction, RuleKind
from riskcontrol.services import case_approve, case_reject, cases_decide
from tests.factories import BusinessUnitFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def held(bu, member, earn, make_rule):
    """The member has 50 available points and an earn of 800 held for review."""
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    earn(member, bu, "50")
    earn(member, bu, "800")
    return RiskCase.objects.get()


def test_approve_releases_the_held_points_exactly_once(held, member, bu, reviewer):
    case = case_approve(case_id=held.pk, actor=reviewer, reason="known customer, big purchase")
    assert (case.status, case.decided_by, case.decision_reason) == (CaseStatus.APPROVED, reviewer,
                                                                   "known customer, big purchase")
    assert member_balance(member_id=member.pk).available == 850
    with pytest.raises(CaseResolved):
        case_approve(case_id=held.pk, actor=reviewer, reason="again")
    with pytest.raises(CaseResolved):
        case_reject(case_id=held.pk, actor=reviewer, reason="changed my mind")
    points_spend(member_id=member.pk, points=850, business_unit=bu)
    with pytest.raises(InsufficientPoints):
        points_spend(member_id=member.pk, points=1, business_unit=bu)
    events = [(e.from_status, e.to_status, e.actor) for e in held.events.all()]
    assert events == [("", CaseStatus.OPEN, None), (CaseStatus.OPEN, CaseStatus.APPROVED, reviewer)]
    assert held.events.last().details["released_lots"]


def test_approve_keeps_the_business_units_own_pending_days(member, earn, make_rule, reviewer):
    hotel = BusinessUnitFactory(code="hotel-pending", pending_days=7)
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    posting = earn(member, hotel, "800").posting
    case_approve(case_id=RiskCase.objects.get().pk, actor=reviewer, reason="ok")
    lot = Lot.objects.get(posting=posting)
    assert lot.available_at == posting.occurred_at + timedelta(days=7)


def test_reject_reverses_the_held_earn(held, member, reviewer):
    case = case_reject(case_id=held.pk, actor=reviewer, reason="receipt forged")
    refund = Posting.objects.get(kind=PostingKind.REFUND)
    assert (refund.reverses, refund.points, refund.actor) == (held.posting, -800, reviewer)
    balance = member_balance(member_id=member.pk)
    assert (balance.total, balance.available, balance.pending, balance.debt) == (50, 50, 0, 0)
    assert case.events.last().details["reversal"] == refund.pk


def test_reject_after_a_partial_spend_elsewhere_cannot_go_negative(held, member, bu, reviewer):
    points_spend(member_id=member.pk, points=30, business_unit=bu)  # the other, available points
    case_reject(case_id=held.pk, actor=reviewer, reason="fraud")
    wallet = Wallet.objects.get(member=member)
    assert (wallet.balance, wallet.debt) == (20, 0)


def test_reject_after_a_merchant_refund_reverses_only_what_is_left(held, member, reviewer):
    posting_reverse(posting_id=held.posting_id, points=300)
    case_reject(case_id=held.pk, actor=reviewer, reason="fraud")
    refunds = Posting.objects.filter(kind=PostingKind.REFUND).order_by("id")
    assert [refund.points for refund in refunds] == [-300, -500]
    assert Wallet.objects.get(member=member).balance == 50


def test_reject_after_a_full_refund_reverses_nothing(held, member, reviewer):
    posting_reverse(posting_id=held.posting_id)
    case = case_reject(case_id=held.pk, actor=reviewer, reason="fraud")
    assert Posting.objects.filter(kind=PostingKind.REFUND).count() == 1
    assert case.status == CaseStatus.REJECTED and case.events.last().details["reversal"] is None


def test_held_points_that_expired_are_not_taken_again_on_reject(bu, member, earn, make_rule, reviewer):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    earn(member, bu, "50")
    long_ago = timezone.now() - timedelta(days=400)
    earn(member, bu, "800", occurred_at=long_ago, max_backdate=None)  # expired a month ago
    case = RiskCase.objects.get()
    assert expiry_run_batch(now=timezone.now())[0] == 1  # the held 800 expired, unreviewed
    case_reject(case_id=case.pk, actor=reviewer, reason="fraud")
    assert not Posting.objects.filter(kind=PostingKind.REFUND).exists()
    wallet = Wallet.objects.get(member=member)
    assert (wallet.balance, wallet.debt) == (50, 0)


def test_approve_after_a_refund_releases_what_is_left(held, member, reviewer):
    posting_reverse(posting_id=held.posting_id, points=800)
    case_approve(case_id=held.pk, actor=reviewer, reason="fine")
    assert member_balance(member_id=member.pk).available == 50


def test_only_the_risk_review_role_decides_and_always_with_a_reason(held, checker, reviewer):
    with pytest.raises(ReviewNotPermitted):
        case_approve(case_id=held.pk, actor=checker, reason="ok")
    with pytest.raises(ReviewNotPermitted):
        case_reject(case_id=held.pk, actor=None, reason="ok")
    with pytest.raises(InvalidRiskInput):
        case_approve(case_id=held.pk, actor=reviewer, reason="  ")
    assert RiskCase.objects.get().status == CaseStatus.OPEN


def test_bulk_decisions_report_each_case(bu, earn, make_rule, reviewer):
    from tests.factories import enrol_member

    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    members = [enrol_member() for _ in range(3)]
    for member in members:
        earn(member, bu, "600")
    cases = list(RiskCase.objects.order_by("id"))
    case_reject(case_id=cases[0].pk, actor=reviewer, reason="first")
    outcomes = cases_decide(case_ids=[case.pk for case in cases], approve=True, actor=reviewer, reason="batch ok")
    assert [type(error).__name__ if error else None for _case, error in outcomes] == ["CaseResolved", None, None]
    assert [member_balance(member_id=m.pk).available for m in members] == [0, 600, 600]


def test_approving_a_freeze_case_lifts_its_freeze(bu, member, earn, make_rule, reviewer):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.FREEZE, freeze_mode="both")
    earn(member, bu, "900")
    case_approve(case_id=RiskCase.objects.get().pk, actor=reviewer, reason="verified by phone")
    freeze = RiskFreeze.objects.get()
    assert freeze.lifted_at is not None and freeze.lifted_by == reviewer
    assert not Wallet.objects.get(member=member).is_frozen
    points_spend(member_id=member.pk, points=900, business_unit=bu)

"""Referral farming: a referrer with more referrals than a rule allows in its window, and
referees of one referrer enrolling from one device or client address; judged in the enrolment
transaction, under the referrer's wallet lock."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from members.models import Member
from riskcontrol.context import risk_request
from riskcontrol.exceptions import RiskBlocked
from riskcontrol.models import BlockedAttempt, CaseStatus, RiskCase, RiskFreeze, RiskRule, RuleAction, RuleKind
from tests.concurrency import errors_of, results_of, run_together
from tests.factories import enrol_member

DAY = 24 * 60


def enrol_referee(referrer, *, device="", address=""):
    with risk_request(device_id=device, client_address=address):
        return enrol_member(referral_code=referrer.referral_code)


@pytest.mark.django_db
def test_a_referrer_past_the_daily_referrals_is_refused_and_recorded(bu, make_rule):
    make_rule(RuleKind.REFERRAL_COUNT, 2, window_minutes=DAY, action=RuleAction.BLOCK)
    referrer = enrol_member()
    enrol_referee(referrer), enrol_referee(referrer)
    enrol_member()  # enrolled without a referral: not counted
    with pytest.raises(RiskBlocked):
        enrol_referee(referrer)
    assert Member.objects.filter(referred_by=referrer).count() == 2
    attempt = BlockedAttempt.objects.get()
    assert (attempt.operation, attempt.member_id) == ("enrol", referrer.pk)
    assert attempt.details["findings"][0]["referrals_in_window"] == 3


@pytest.mark.django_db
def test_referees_of_one_referrer_on_one_device_open_a_case_on_the_referrer(bu, make_rule):
    rule = make_rule(RuleKind.REFERRAL_DEVICE, 2, window_minutes=DAY, action=RuleAction.FLAG)
    referrer, stranger = enrol_member(), enrol_member()
    first = enrol_referee(referrer, device="phone-1")
    second = enrol_referee(referrer, device="phone-1")
    enrol_referee(stranger, device="phone-1")  # another referrer's referee on the same phone
    enrol_referee(referrer, device="phone-2")  # the same referrer, another phone
    assert not RiskCase.objects.exists()
    third = enrol_referee(referrer, device="phone-1")
    case = RiskCase.objects.get()
    assert (case.member_id, case.rule_id, case.operation, case.status) == (referrer.pk, rule.pk, "enrol", CaseStatus.OPEN)
    finding = case.evidence["findings"][0]
    assert finding["referee"] == third.pk and finding["referees_in_window"] == 3
    assert sorted(finding["other_referees"]) == sorted([first.pk, second.pk])


@pytest.mark.django_db
def test_referees_from_one_address_freeze_the_referrer_and_enrol(bu, make_rule):
    make_rule(RuleKind.REFERRAL_ADDRESS, 1, window_minutes=DAY, action=RuleAction.FREEZE, freeze_mode="both")
    referrer = enrol_member()
    enrol_referee(referrer, address="203.0.113.9")
    second = enrol_referee(referrer, address="203.0.113.9")
    assert Member.objects.filter(pk=second.pk).exists()
    freeze = RiskFreeze.objects.get()
    assert freeze.member_id == referrer.pk and freeze.lifted_at is None
    referrer.wallet.refresh_from_db()
    assert referrer.wallet.is_frozen


@pytest.mark.django_db
def test_referrals_before_the_rule_was_switched_on_do_not_count(bu, make_rule):
    referrer = enrol_member()
    enrol_referee(referrer), enrol_referee(referrer)
    make_rule(RuleKind.REFERRAL_COUNT, 1, window_minutes=DAY, action=RuleAction.BLOCK)
    enrol_referee(referrer)
    with pytest.raises(RiskBlocked):
        enrol_referee(referrer)


@pytest.mark.django_db
def test_a_referral_rule_cannot_hold_by_form_or_database(bu):
    rule = RiskRule(code="r", name="r", kind=RuleKind.REFERRAL_COUNT, threshold=3, window_minutes=DAY,
                    action=RuleAction.HOLD)
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "action" in refused.value.message_dict
    with pytest.raises(IntegrityError, match="risk_rule_enrolments_not_held"), transaction.atomic():
        rule.save()


@pytest.mark.django_db(transaction=True)
def test_referees_racing_on_one_referrer_are_counted_one_after_the_other(bu, make_rule):
    make_rule(RuleKind.REFERRAL_COUNT, 3, window_minutes=DAY, action=RuleAction.BLOCK)
    referrer = enrol_member()
    outcomes = run_together([lambda: enrol_referee(referrer) for _ in range(8)])
    assert len(results_of(outcomes)) == 3
    assert all(isinstance(error, RiskBlocked) for error in errors_of(outcomes)), errors_of(outcomes)
    assert Member.objects.filter(referred_by=referrer).count() == 3


@pytest.mark.django_db(transaction=True)
def test_referees_racing_on_one_device_are_counted_one_after_the_other(bu, make_rule):
    make_rule(RuleKind.REFERRAL_DEVICE, 2, window_minutes=DAY, action=RuleAction.BLOCK)
    referrer = enrol_member()
    outcomes = run_together([lambda: enrol_referee(referrer, device="farm-phone") for _ in range(6)])
    assert len(results_of(outcomes)) == 2
    assert all(isinstance(error, RiskBlocked) for error in errors_of(outcomes)), errors_of(outcomes)

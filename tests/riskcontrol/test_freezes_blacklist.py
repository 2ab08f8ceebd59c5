"""Freezes (earning, spending or both; lifted once, by hand or by the beat job at their end) and
the blacklist (phones, devices, client addresses, card numbers; block or hold; expiry)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members.models import Member
from points.exceptions import AccountFrozen
from points.models import Wallet
from points.selectors import member_balance
from points.services import points_spend, wallet_freeze
from riskcontrol.context import risk_request
from riskcontrol.exceptions import FreezeLifted, RiskBlocked
from riskcontrol.models import BlacklistEntry, BlockedAttempt, CaseOrigin, RiskCase, RiskFreeze
from riskcontrol.services import (
    blacklist_add,
    blacklist_remove,
    freeze_lift,
    freeze_open,
    freezes_lift_due,
    risk_housekeeping,
)
from riskcontrol.tasks import risk_housekeeping as housekeeping_task
from tests.factories import enrol_member

pytestmark = pytest.mark.django_db


def test_a_spending_freeze_freezes_the_wallet_and_earning_goes_on(bu, member, earn, reviewer):
    earn(member, bu, "100")
    freeze = freeze_open(member_id=member.pk, mode="spending", reason="chargeback under review", actor=reviewer)
    assert freeze.froze_wallet and Wallet.objects.get(member=member).is_frozen
    earn(member, bu, "10")
    with pytest.raises(AccountFrozen):
        points_spend(member_id=member.pk, points=10, business_unit=bu)
    freeze_lift(freeze_id=freeze.pk, reason="cleared", actor=reviewer)
    with pytest.raises(FreezeLifted):
        freeze_lift(freeze_id=freeze.pk, reason="again", actor=reviewer)
    assert not Wallet.objects.get(member=member).is_frozen
    points_spend(member_id=member.pk, points=110, business_unit=bu)
    assert [e.event for e in freeze.events.all()] == ["frozen", "lifted"]


def test_an_earning_freeze_refuses_earns_and_leaves_spending(bu, member, earn):
    earn(member, bu, "100")
    freeze_open(member_id=member.pk, mode="earning", reason="farming suspected")
    with pytest.raises(RiskBlocked):
        earn(member, bu, "10")
    points_spend(member_id=member.pk, points=100, business_unit=bu)
    assert BlockedAttempt.objects.get().origin == "freeze"


def test_lifting_a_risk_freeze_keeps_a_freeze_made_by_hand(bu, member):
    wallet_freeze(member_id=member.pk, reason="customer asked")
    freeze = freeze_open(member_id=member.pk, mode="both", reason="review")
    assert not freeze.froze_wallet
    freeze_lift(freeze_id=freeze.pk, reason="done")
    assert Wallet.objects.get(member=member).is_frozen


def test_the_wallet_stays_frozen_until_the_last_spending_freeze_is_lifted(bu, member):
    first = freeze_open(member_id=member.pk, mode="spending", reason="one")
    second = freeze_open(member_id=member.pk, mode="both", reason="two")
    freeze_lift(freeze_id=first.pk, reason="done")
    assert Wallet.objects.get(member=member).is_frozen
    freeze_lift(freeze_id=second.pk, reason="done")
    assert not Wallet.objects.get(member=member).is_frozen


def test_the_beat_job_lifts_freezes_past_their_end(bu, member, earn):
    soon = timezone.now() + timedelta(minutes=5)
    freeze = freeze_open(member_id=member.pk, mode="both", reason="cool-off", ends_at=soon)
    later = freeze_open(member_id=enrol_member().pk, mode="both", reason="longer", ends_at=soon + timedelta(days=1))
    assert freezes_lift_due() == 0
    assert freezes_lift_due(now=soon + timedelta(seconds=1)) == 1
    freeze.refresh_from_db()
    later.refresh_from_db()
    assert freeze.lifted_at and freeze.lift_reason == "ended" and later.lifted_at is None
    assert not Wallet.objects.get(member=member).is_frozen
    earn(member, bu, "10")
    assert housekeeping_task() == {"freezes_lifted": 0, "requests_expired": 0, "holds_kept": 0}


def test_an_earning_freeze_past_its_end_no_longer_refuses_before_the_job_runs(bu, member, earn):
    freeze = freeze_open(member_id=member.pk, mode="earning", reason="x", ends_at=timezone.now() + timedelta(hours=1))
    RiskFreeze.objects.filter(pk=freeze.pk).update(starts_at=timezone.now() - timedelta(hours=3),
                                                   ends_at=timezone.now() - timedelta(hours=1))
    earn(member, bu, "10")


def test_a_blacklisted_phone_cannot_enrol(bu, reviewer):
    blacklist_add(kind="phone", value="13912345678", action="block", reason="fake accounts", actor=reviewer)
    with risk_request(device_id="dev-9"), pytest.raises(RiskBlocked):
        enrol_member(phone="13912345678", business_unit=bu)
    assert not Member.objects.filter(phone="13912345678").exists()
    attempt = BlockedAttempt.objects.get()
    assert (attempt.operation, attempt.member, attempt.details["phone"], attempt.device_id) == (
        "enrol", None, "13912345678", "dev-9")


def test_a_held_phone_enrols_with_a_case_and_its_earns_are_held(bu, earn):
    blacklist_add(kind="phone", value="13912345679", action="hold", reason="watch")
    member = enrol_member(phone="13912345679")
    case = RiskCase.objects.get()
    assert (case.member, case.origin, case.operation) == (member, CaseOrigin.BLACKLIST, "enrol")
    earn(member, bu, "100")
    assert member_balance(member_id=member.pk).pending == 100
    assert RiskCase.objects.filter(member=member, operation="earn", held_points=100).exists()


def test_earning_from_a_blacklisted_device_or_card_is_refused(bu, member, earn):
    blacklist_add(kind="device", value="rooted-1", action="block", reason="emulator farm")
    earn(member, bu, "10", device="clean-phone")
    with pytest.raises(RiskBlocked):
        earn(member, bu, "10", device="rooted-1")
    blacklist_add(kind="card", value=member.card_no, action="block", reason="stolen card")
    with pytest.raises(RiskBlocked):
        earn(member, bu, "10", device="clean-phone")


def test_expired_and_removed_entries_no_longer_apply(bu, member, earn):
    entry = blacklist_add(kind="address", value="198.51.100.1", action="block", reason="proxy",
                          expires_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(RiskBlocked):
        earn(member, bu, "10", address="198.51.100.1")
    BlacklistEntry.objects.filter(pk=entry.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    earn(member, bu, "10", address="198.51.100.1")
    other = blacklist_add(kind="address", value="198.51.100.2", action="block", reason="proxy")
    assert blacklist_remove(entry_id=other.pk) is True
    assert blacklist_remove(entry_id=other.pk) is False
    earn(member, bu, "10", address="198.51.100.2")
    assert member_balance(member_id=member.pk).total == 20


def test_housekeeping_keeps_held_points_held_when_their_expiry_moves(bu, member, earn, make_rule):
    from points.models import Lot

    make_rule("earn_amount", 50, action="hold")
    posting = earn(member, bu, "100").posting
    lot = Lot.objects.get(posting=posting)
    Lot.objects.filter(pk=lot.pk).update(expires_at=lot.expires_at + timedelta(days=90))  # activity-extended
    assert risk_housekeeping()["holds_kept"] == 1
    lot.refresh_from_db()
    assert lot.available_at == lot.expires_at
    assert member_balance(member_id=member.pk, now=lot.expires_at - timedelta(days=1)).pending == 100
    assert risk_housekeeping()["holds_kept"] == 0

"""Transfers between wallets: an organization's distributions to its employees and members'
transfers, through the ledger core: two balanced postings, lots carried with their expiry and
provenance, debt repaid first, limits and refusals writing nothing, replays answering the
original, and races that never overdraw."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members.models import Member
from points.exceptions import (
    AccountFrozen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidRecipient,
    NotAnEmployee,
    NotOrganizationAdmin,
    TransferLimitExceeded,
    TransfersDisabled,
)
from points.ledger import Idempotency
from points.models import Account, Entry, Lot, Posting, PostingKind, Wallet
from points.organizations import organization_balance
from points.services import points_spend, posting_reverse, wallet_freeze
from points.transfers import member_transfer, organization_distribute
from tests.concurrency import errors_of, results_of, run_together
from tests.factories import (
    BusinessUnitFactory,
    OrganizationFactory,
    enrol_member,
    fund,
    fund_organization,
    organization_admin,
)

pytestmark = pytest.mark.django_db


def key(name: str) -> Idempotency:
    return Idempotency(scope="test", key=name)


@pytest.fixture
def company(bu):
    organization = OrganizationFactory(name="Acme")
    fund_organization(organization, 1000, bu)
    return organization


@pytest.fixture
def admin(company):
    return organization_admin(company)


@pytest.fixture
def employee(company):
    return enrol_member(organization=company)


def test_a_distribution_moves_the_lots_with_their_expiry_and_issuer(company, admin, employee, bu, ledger_sound):
    other = BusinessUnitFactory()
    fund_organization(company, 500, other)
    source_lots = {lot.business_unit_id: lot for lot in Lot.objects.filter(wallet__organization=company)}
    result = organization_distribute(admin=admin, member_id=employee.pk, points=1200, idempotency=key("d1"))
    assert (result.sent.kind, result.sent.points, result.received.points) == (PostingKind.TRANSFER, -1200, 1200)
    assert result.source.organization_id == company.pk and result.target.member_id == employee.pk
    carried = {lot.business_unit_id: lot for lot in Lot.objects.filter(wallet__member=employee)}
    assert {issuer: lot.amount for issuer, lot in carried.items()} == {bu.pk: 1000, other.pk: 200}
    for issuer, lot in carried.items():
        assert (lot.expires_at, lot.earned_at, lot.merchant_id) == (
            source_lots[issuer].expires_at, source_lots[issuer].earned_at, source_lots[issuer].merchant_id)
    legs = Entry.objects.filter(account=Account.TRANSFER).values_list("business_unit_id", "amount")
    assert sorted(legs) == sorted([(bu.pk, 1000), (bu.pk, -1000), (other.pk, 200), (other.pk, -200)])
    assert organization_balance(organization=company).total == 300
    assert Wallet.objects.get(member=employee).balance == 1200
    ledger_sound()


def test_a_replay_answers_the_distribution_and_another_request_under_its_key_conflicts(company, admin, employee):
    first = organization_distribute(admin=admin, member_id=employee.pk, points=100, idempotency=key("d1"))
    again = organization_distribute(admin=admin, member_id=employee.pk, points=100, idempotency=key("d1"))
    assert again.replayed and (again.sent.pk, again.received.pk) == (first.sent.pk, first.received.pk)
    with pytest.raises(IdempotencyConflict):
        organization_distribute(admin=admin, member_id=employee.pk, points=200, idempotency=key("d1"))
    assert Posting.objects.filter(kind=PostingKind.TRANSFER).count() == 2


def test_only_admins_distribute_to_their_own_employees_and_never_more_than_held(company, admin, employee, ledger_sound):
    with pytest.raises(NotOrganizationAdmin):
        organization_distribute(admin=employee, member_id=admin.pk, points=10)
    stranger = enrol_member()
    with pytest.raises(NotAnEmployee):
        organization_distribute(admin=admin, member_id=stranger.pk, points=10)
    with pytest.raises(InsufficientPoints):
        organization_distribute(admin=admin, member_id=employee.pk, points=1001)
    assert not Posting.objects.filter(kind=PostingKind.TRANSFER).exists()
    ledger_sound()


def test_received_points_repay_the_receivers_debt_first(bu, company, admin, employee, ledger_sound):
    earned = fund(employee, 300, bu)
    from points.services import points_spend
    points_spend(member_id=employee.pk, points=300, business_unit=bu, idempotency=key("s"))
    posting_reverse(posting_id=earned.pk, business_unit=bu, idempotency=key("r"))  # 300 of debt
    assert Wallet.objects.get(member=employee).debt == 300
    organization_distribute(admin=admin, member_id=employee.pk, points=500, idempotency=key("d"))
    wallet = Wallet.objects.get(member=employee)
    assert (wallet.debt, wallet.balance) == (0, 200)
    assert Lot.objects.filter(wallet=wallet, remaining__gt=0).values_list("remaining", flat=True).get() == 200
    ledger_sound()


def test_member_transfers_are_off_by_default(bu):
    sender, recipient = enrol_member(), enrol_member()
    fund(sender, 100, bu)
    with pytest.raises(TransfersDisabled):
        member_transfer(sender=sender, recipient_phone=recipient.phone, points=10)


def test_member_transfers_within_the_daily_limit(settings, bu, ledger_sound):
    settings.POINTS_MEMBER_TRANSFERS_ENABLED = True
    settings.POINTS_MEMBER_TRANSFER_DAILY_LIMIT = 500
    sender, recipient = enrol_member(), enrol_member()
    fund(sender, 1000, bu)
    member_transfer(sender=sender, recipient_phone=recipient.phone, points=300, idempotency=key("t1"))
    with pytest.raises(TransferLimitExceeded) as refused:
        member_transfer(sender=sender, recipient_phone=recipient.phone, points=201, idempotency=key("t2"))
    assert refused.value.extra == {"limit": 500, "used": 300, "requested": 201}
    member_transfer(sender=sender, recipient_phone=recipient.phone, points=200, idempotency=key("t2"))
    with pytest.raises(InvalidRecipient):
        member_transfer(sender=sender, recipient_phone=sender.phone, points=1)
    assert (Wallet.objects.get(member=sender).balance, Wallet.objects.get(member=recipient).balance) == (500, 500)
    ledger_sound()


def test_a_frozen_sender_is_refused_and_pending_points_do_not_move(settings, bu, ledger_sound):
    settings.POINTS_MEMBER_TRANSFERS_ENABLED = True
    sender, recipient = enrol_member(), enrol_member()
    fund(sender, 100, bu)
    Lot.objects.filter(wallet__member=sender).update(available_at=timezone.now() + timedelta(days=1))
    with pytest.raises(InsufficientPoints):
        member_transfer(sender=sender, recipient_phone=recipient.phone, points=10)
    wallet_freeze(member_id=sender.pk, reason="review")
    with pytest.raises(AccountFrozen):
        member_transfer(sender=sender, recipient_phone=recipient.phone, points=10)
    assert not Posting.objects.filter(kind=PostingKind.TRANSFER).exists()
    ledger_sound()


@pytest.mark.django_db(transaction=True)
def test_concurrent_distributions_never_overdraw_the_organization(bu, ledger_sound):
    company = OrganizationFactory()
    fund_organization(company, 1000, bu)
    admin = organization_admin(company)
    employees = [enrol_member(organization=company) for _ in range(4)]
    calls = [
        (lambda index=index: organization_distribute(
            admin=admin, member_id=employees[index % 4].pk, points=150, idempotency=key(f"race-{index}")))
        for index in range(10)
    ]
    outcomes = run_together(calls)
    assert len(results_of(outcomes)) == 6  # 6 x 150 = 900 of the 1000
    assert all(isinstance(error, InsufficientPoints) for error in errors_of(outcomes))
    assert organization_balance(organization=company).total == 100
    assert sum(Wallet.objects.filter(member__in=employees).values_list("balance", flat=True)) == 900
    ledger_sound()


@pytest.mark.django_db(transaction=True)
def test_crossing_member_transfers_neither_overdraw_nor_deadlock(settings, bu, ledger_sound):
    settings.POINTS_MEMBER_TRANSFERS_ENABLED = True
    settings.POINTS_MEMBER_TRANSFER_DAILY_LIMIT = 10_000
    alice, bob = enrol_member(), enrol_member()
    fund(alice, 500, bu)
    fund(bob, 500, bu)
    alice, bob = Member.objects.get(pk=alice.pk), Member.objects.get(pk=bob.pk)
    calls = [
        (lambda index=index: member_transfer(
            sender=alice if index % 2 else bob, recipient_phone=(bob if index % 2 else alice).phone, points=200,
            idempotency=key(f"cross-{index}")))
        for index in range(12)
    ]
    outcomes = run_together(calls)
    assert all(isinstance(error, InsufficientPoints) for error in errors_of(outcomes))
    balances = Wallet.objects.filter(member__in=[alice, bob]).values_list("balance", flat=True)
    assert sum(balances) == 1000 and min(balances) >= 0
    ledger_sound()

"""A refund of a purchase whose points already expired: the expired part is reclaimed from the
issuer's breakage, never charged to the member as debt; settlement shows a breakage reversal."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from points.exceptions import ReversalExceedsOriginal
from points.expiry import expiry_run_batch
from points.models import Account, Entry, Wallet
from points.services import points_spend, posting_reverse
from settlement.models import ClearingLine, LineKind
from settlement.selectors import compute_lines, period_of, reconcile
from tests.factories import enrol_member
from tests.settlement.helpers import earn, units

pytestmark = pytest.mark.django_db


def expire_everything():
    expiry_run_batch(now=timezone.now() + timedelta(days=800))


def test_a_refund_of_expired_points_is_reclaimed_from_breakage_not_debt(ledger_sound):
    hotel, _mall, _park = units()
    member = enrol_member()
    earned = earn(member, hotel, 100)
    expire_everything()
    refund = posting_reverse(posting_id=earned.pk, business_unit=hotel).posting
    wallet = Wallet.objects.get(member=member)
    assert (wallet.balance, wallet.debt, refund.points) == (0, 0, 0)
    assert sorted(Entry.objects.filter(posting=refund).values_list("account", "amount")) == [
        (Account.EXPIRY, -100), (Account.ISSUANCE, 100)]
    assert sorted(ClearingLine.objects.filter(posting=refund).values_list("kind", "points", "amount_cny")) == [
        ("breakage_reversal", -100, Decimal("-2.00")), ("reclaim", 100, Decimal("2.00"))]
    with pytest.raises(ReversalExceedsOriginal):
        posting_reverse(posting_id=earned.pk, points=1, business_unit=hotel)
    ledger_sound()


def test_only_what_the_member_spent_becomes_debt(ledger_sound):
    hotel, mall, _park = units()
    member = enrol_member()
    earned = earn(member, hotel, 100)
    points_spend(member_id=member.pk, business_unit=mall, points=30)
    expire_everything()  # 70 expire
    refund = posting_reverse(posting_id=earned.pk, business_unit=hotel).posting
    wallet = Wallet.objects.get(member=member)
    assert (wallet.balance, wallet.debt, refund.points) == (0, 30, -30)
    assert Entry.objects.get(posting=refund, account=Account.EXPIRY).amount == -70
    lines = {line.kind: (line.points, line.amount_cny) for line in compute_lines(period=period_of(timezone.now()))
             if line.payer_id == hotel.pk}
    assert lines[LineKind.BREAKAGE] == (70, Decimal("1.40"))
    assert lines[LineKind.BREAKAGE_REVERSAL] == (70, Decimal("1.40"))
    assert lines[LineKind.RECLAIM] == (70, Decimal("1.40"))  # 70 from breakage; the 30 spent are debt
    assert reconcile(period=period_of(timezone.now())).problems == []
    ledger_sound()


def test_the_member_keeps_other_points_when_the_refunded_ones_expired(ledger_sound):
    hotel, _mall, _park = units()
    member = enrol_member()
    earned = earn(member, hotel, 100)
    expire_everything()
    earn(member, hotel, 50)  # earned later, valid
    posting_reverse(posting_id=earned.pk, points=60, business_unit=hotel)
    posting_reverse(posting_id=earned.pk, points=40, business_unit=hotel)
    wallet = Wallet.objects.get(member=member)
    assert (wallet.balance, wallet.debt) == (50, 0)
    assert sum(Entry.objects.filter(posting__reverses=earned, account=Account.EXPIRY).values_list("amount", flat=True)) == -100
    ledger_sound()

"""The ledger reads settlement stands on: a business unit's system accounts over a period and
the issuers of the lots a posting consumed."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from points.earning import points_earn
from points.models import Account, Posting
from points.selectors import business_unit_account_totals, posting_issuers
from points.services import points_spend, posting_reverse
from tests.factories import BusinessUnitFactory

pytestmark = pytest.mark.django_db


def test_a_redemption_names_the_issuers_of_the_lots_it_consumed(bu, other_bu, member, ledger_sound):
    points_earn(member_id=member.pk, business_unit=other_bu, points=70, occurred_at=timezone.now() - timedelta(days=2))
    points_earn(member_id=member.pk, business_unit=bu, points=100)
    spend = points_spend(member_id=member.pk, points=120, business_unit=bu).posting
    hotel_first = posting_issuers(posting_id=spend.pk)
    assert hotel_first == {other_bu.pk: -70, bu.pk: -50}, "earliest expiry first: the hotel's older lot"
    cancel = posting_reverse(posting_id=spend.pk, points=60).posting
    assert posting_issuers(posting_id=cancel.pk) == {bu.pk: 50, other_bu.pk: 10}, "latest-expiring lot back first"
    ledger_sound()


def test_account_totals_of_a_period_come_from_the_entries_booked_in_it(bu, member):
    park = BusinessUnitFactory(code="park")
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("300"))
    points_spend(member_id=member.pk, points=50, business_unit=bu)
    points_spend(member_id=member.pk, points=20, business_unit=park)
    now = timezone.now()
    totals = business_unit_account_totals(business_unit_id=bu.pk, start=now - timedelta(hours=1), end=now + timedelta(hours=1))
    assert totals == {Account.ISSUANCE: -300, Account.REDEMPTION: 50}
    assert business_unit_account_totals(business_unit_id=park.pk, start=now - timedelta(hours=1),
                                        end=now + timedelta(hours=1)) == {Account.REDEMPTION: 20}
    later = now + timedelta(hours=1)
    assert business_unit_account_totals(business_unit_id=bu.pk, start=later, end=later + timedelta(days=1)) == {}
    assert Posting.objects.count() == 3

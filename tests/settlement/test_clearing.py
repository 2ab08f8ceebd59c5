"""Clearing lines written at posting time: hand-computed scenarios."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from points.expiry import expiry_run_batch
from points.ledger import Idempotency
from points.services import points_spend, posting_reverse
from points.timeutils import local_date
from settlement.models import ClearingKind, ClearingLine, ClearingRate
from tests.factories import enrol_member
from tests.settlement.helpers import earn, units

pytestmark = pytest.mark.django_db


def lines_of(posting):
    return sorted(
        (line.kind, line.issuer.code, line.redeemer.code if line.redeemer else None, line.points, line.rate_cny,
         line.amount_cny)
        for line in ClearingLine.objects.filter(posting=posting).select_related("issuer", "redeemer")
    )


def test_hotel_earned_mall_spent_is_owed_by_the_hotel(ledger_sound):
    hotel, mall, _park = units()
    member = enrol_member(name="Wang Fang")
    earned = earn(member, hotel, 1000)
    spend = points_spend(member_id=member.pk, business_unit=mall, points=300).posting
    # 300 points of the hotel at its 0.02 CNY: the hotel owes the mall 6.00
    assert lines_of(spend) == [("redemption", "hotel", "mall", 300, Decimal("0.020000"), Decimal("6.00"))]
    assert not ClearingLine.objects.filter(posting=earned).exists()  # an earn clears nothing
    ledger_sound()


def test_a_spend_across_three_issuers_splits_by_lot(ledger_sound):
    hotel, mall, park = units()
    member = enrol_member()
    earn(member, hotel, 100)
    earn(member, park, 100)
    earn(member, mall, 100)
    spend = points_spend(member_id=member.pk, business_unit=mall, points=250).posting
    # earliest earned first: hotel 100 x 0.02, park 100 x 0.015, mall 50 x 0.01 (the mall's own)
    assert lines_of(spend) == [
        ("redemption", "hotel", "mall", 100, Decimal("0.020000"), Decimal("2.00")),
        ("redemption", "mall", "mall", 50, Decimal("0.010000"), Decimal("0.50")),
        ("redemption", "park", "mall", 100, Decimal("0.015000"), Decimal("1.50")),
    ]
    ledger_sound()


def test_a_cancel_reverses_exactly_what_its_spend_cleared_at_the_frozen_rate(ledger_sound):
    hotel, mall, park = units()
    member = enrol_member()
    earn(member, hotel, 100)
    earn(member, park, 101)
    spend = points_spend(member_id=member.pk, business_unit=mall, points=151).posting
    # the park's clearing value changes after the spend: the cancel still uses the frozen one
    ClearingRate.objects.create(business_unit=park, value_cny=Decimal("0.5"), effective_from=local_date(timezone.now()))
    cancel = posting_reverse(posting_id=spend.pk, business_unit=mall).posting
    assert cancel.kind == "cancel"
    spent = lines_of(spend)
    assert spent == [
        ("redemption", "hotel", "mall", 100, Decimal("0.020000"), Decimal("2.00")),
        ("redemption", "park", "mall", 51, Decimal("0.015000"), Decimal("0.77")),  # 0.765 half up
    ]
    assert lines_of(cancel) == [("reversal", issuer, redeemer, -points, rate, -amount)
                                for _kind, issuer, redeemer, points, rate, amount in spent]
    ledger_sound()


def test_a_clearing_rate_in_force_replaces_the_point_value():
    hotel, mall, _park = units()
    ClearingRate.objects.create(business_unit=hotel, value_cny=Decimal("0.018"),
                                effective_from=local_date(timezone.now()) - timedelta(days=3))
    ClearingRate.objects.create(business_unit=hotel, value_cny=Decimal("0.5"),
                                effective_from=local_date(timezone.now()) + timedelta(days=1))  # not yet
    member = enrol_member()
    earn(member, hotel, 1000)
    spend = points_spend(member_id=member.pk, business_unit=mall, points=1000).posting
    assert lines_of(spend) == [("redemption", "hotel", "mall", 1000, Decimal("0.018000"), Decimal("18.00"))]


def test_expiry_is_breakage_per_issuing_bu(ledger_sound):
    hotel, mall, _park = units()
    member = enrol_member()
    earn(member, hotel, 70)
    earn(member, mall, 30)
    points_spend(member_id=member.pk, business_unit=mall, points=20)  # hotel's, earliest earned
    written, _cursor = expiry_run_batch(now=timezone.now() + timedelta(days=800))
    assert written == 1
    expiry = ClearingLine.objects.get(kind=ClearingKind.BREAKAGE, issuer=hotel).posting
    assert lines_of(expiry) == [
        ("breakage", "hotel", None, 50, Decimal("0.020000"), Decimal("1.00")),
        ("breakage", "mall", None, 30, Decimal("0.010000"), Decimal("0.30")),
    ]
    ledger_sound()


def test_a_refund_of_an_earn_is_a_reclaim_not_a_redemption(ledger_sound):
    hotel, _mall, _park = units()
    member = enrol_member()
    earned = earn(member, hotel, 100)
    refund = posting_reverse(posting_id=earned.pk, points=40, business_unit=hotel).posting
    assert refund.kind == "refund"
    assert lines_of(refund) == [("reclaim", "hotel", "hotel", 40, Decimal("0.020000"), Decimal("0.80"))]
    ledger_sound()


def test_the_hook_adds_one_insert_to_a_spend():
    hotel, mall, _park = units()
    member = enrol_member()
    earn(member, hotel, 100)
    with CaptureQueriesContext(connection) as queries:
        points_spend(member_id=member.pk, business_unit=mall, points=30, idempotency=Idempotency(scope="pos", key="s"))
    mine = [query["sql"] for query in queries if "settlement_" in query["sql"]]
    assert len(mine) == 1 and mine[0].lstrip().startswith("INSERT INTO settlement_clearingline")
    assert ClearingLine.objects.get().points == 30

"""Redemptions on a statement split by business unit into mall orders, payments and plain
spends, read from what each spend posting carries (mall registers its channels in points'
registry: points never imports mall), and reconciled by verify_statements."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from mall.models_payments import BusinessUnitPaymentSettings
from mall.services import order_place
from mall.services_payments import payment_authorize, payment_capture
from members.notifications.models import NotificationLog
from members.services import member_update
from points.earning import points_earn
from points.ledger import Idempotency, hold_capture, hold_place
from points.models import Statement
from points.services import points_spend
from points.statements.periods import period_parse
from points.statements.selectors import period_differences, statement_figures
from points.statements.services import statements_generate_batch
from tests.factories import BusinessUnitFactory, ItemFactory, enrol_member
from tests.statements.conftest import shanghai

pytestmark = pytest.mark.django_db

MARCH = period_parse("2026-03")


def test_redeemed_by_business_unit_split_into_mall_orders_payments_and_spends(clock, bu):
    hotel = BusinessUnitFactory(code="hotel", name="Harbour Hotel", point_value_cny=Decimal("0.01"))
    BusinessUnitPaymentSettings.objects.create(business_unit=hotel, accepts_points=True, min_unit=100,
                                               max_share_percent=100, cap_points=20000)
    clock.set(shanghai(2026, 3, 2, 10))
    member = enrol_member(name="Han Meimei", email="han@example.com")
    member_update(member=member, consent_email=True, language="en")
    points_earn(member_id=member.pk, business_unit=bu, points=5000)
    item = ItemFactory(business_unit=bu, price_points=700)
    order_place(member_id=member.pk, item_id=item.pk, idempotency_key="order-1")
    payment = payment_authorize(
        business_unit=hotel, merchant=None, partner_key=None, idempotency=Idempotency(scope="test", key="pay-1"),
        bill_no="B-1", bill_amount=Decimal("100.00"), member_id=member.pk, points=1200,
    ).payment
    payment_capture(payment_id=payment.pk, business_unit=hotel, idempotency=Idempotency(scope="test", key="cap-1"))
    hold = hold_place(member_id=member.pk, points=300, business_unit=hotel, purpose="pos_bill").hold
    hold_capture(hold_id=hold.pk, points=300)
    points_spend(member_id=member.pk, points=50, business_unit=bu)

    clock.set(MARCH.end + timedelta(hours=4))
    statements_generate_batch(period=MARCH)

    statement = Statement.objects.get(member=member)
    assert statement.redeemed_by_business_unit_and_channel == {
        bu.code: {"mall_order": 700, "spend": 50}, "hotel": {"payment": 1500},
    }
    assert statement.redeemed_by_business_unit == {bu.code: 750, "hotel": 1500}
    assert statement.redeemed == 2250 and statement.closing_balance == 5000 - 2250
    email = NotificationLog.objects.get(key=f"statement:{member.pk}:2026-03:email")
    assert "Harbour Hotel 1500 (mall orders 0, payments 1500, other 0)" in email.body_text
    assert "(mall orders 700, payments 0, other 50)" in email.body_text
    clock.stop()
    call_command("verify_statements", "--period", "2026-03")


def test_a_statement_stored_before_the_split_still_reconciles(clock, bu):
    """Statements generated before the split was recorded hold null there: verify_statements
    checks everything else and does not call them wrong; a wrong split is reported."""
    clock.set(shanghai(2026, 3, 2, 10))
    older, wrong = enrol_member(), enrol_member()
    for member in (older, wrong):
        points_earn(member_id=member.pk, business_unit=bu, points=500)
        points_spend(member_id=member.pk, points=100, business_unit=bu)
    clock.set(MARCH.end + timedelta(hours=4))
    figures = statement_figures(member_ids=[older.pk, wrong.pk], period=MARCH)
    for member, split in ((older, None), (wrong, {bu.code: {"mall_order": 100}})):
        Statement.objects.create(
            member=member, period=MARCH.name, period_start=MARCH.start, period_end=MARCH.end,
            **{**figures[member.pk].model_fields(), "redeemed_by_business_unit_and_channel": split},
        )
    assert period_differences(period=MARCH, member_ids=[older.pk, wrong.pk]) == [
        f"statement 2026-03 of member {wrong.pk}: redeemed_by_business_unit_and_channel is "
        f"{{'{bu.code}': {{'mall_order': 100}}}}, the ledger says {{'{bu.code}': {{'spend': 100}}}}"
    ]

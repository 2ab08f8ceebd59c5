"""A merchant co-funding an earning rule owes the BU its share of the points' cost; the breakage
of co-funded points is reported; the co-funding terms cannot change once the rule exists."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, InternalError, ProgrammingError, transaction
from django.utils import timezone

from points.earning import points_earn
from points.expiry import expiry_run_batch
from points.models import EarningRule, EventType
from settlement.models import LineKind
from settlement.selectors import compute_lines, period_of, reconcile
from tests.factories import EarningRuleFactory, MerchantFactory, enrol_member
from tests.settlement.helpers import units


def co_funded_lines():
    return sorted(
        (line.kind, line.payer.code, line.merchant.code, line.points, line.amount_cny)
        for line in compute_lines(period=period_of(timezone.now()))
        if line.kind in (LineKind.CO_FUNDING, LineKind.CO_FUNDED_BREAKAGE)
    )


@pytest.mark.django_db
def test_a_co_funded_rule_is_owed_by_its_merchant_and_its_breakage_reported(ledger_sound):
    hotel, _mall, _park = units()
    spa = MerchantFactory(business_unit=hotel, code="spa")
    EarningRuleFactory(code="spa-bonus", points=300, co_funding_merchant=spa, co_funding_share=Decimal("0.5"))
    member = enrol_member()
    earned = points_earn(member_id=member.pk, business_unit=hotel, amount_cny=Decimal("100"),
                         event_type=EventType.PURCHASE).posting
    bonus = next(item["points"] for item in earned.explanation if item["rule"] == "spa-bonus")
    assert bonus == 300
    # 300 points x 0.02 CNY x 0.5 = 3.00 owed by the spa to the hotel
    assert co_funded_lines() == [("co_funding", "hotel", "spa", 300, Decimal("3.00"))]
    expiry_run_batch(now=timezone.now() + timedelta(days=800))
    share = Decimal(300) / Decimal(earned.points)  # the co-funded fraction of each expired lot
    expired_co_funded = Decimal(earned.points) * share
    assert co_funded_lines() == [
        ("co_funded_breakage", "hotel", "spa", int(expired_co_funded), Decimal("3.00")),
        ("co_funding", "hotel", "spa", 300, Decimal("3.00")),
    ]
    assert reconcile(period=period_of(timezone.now())).problems == []
    ledger_sound()


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_to_change_a_rules_co_funding():
    hotel, _mall, _park = units()
    spa = MerchantFactory(business_unit=hotel, code="spa")
    rule = EarningRuleFactory(co_funding_merchant=spa, co_funding_share=Decimal("0.25"))
    with pytest.raises((InternalError, ProgrammingError)), transaction.atomic():
        EarningRule.objects.filter(pk=rule.pk).update(co_funding_share=Decimal("0.10"))
    EarningRule.objects.filter(pk=rule.pk).update(name="renamed")  # other fields stay editable
    with pytest.raises(IntegrityError), transaction.atomic():
        EarningRuleFactory(co_funding_share=Decimal("0.5"))  # a share without a merchant
    assert EarningRule.objects.get(pk=rule.pk).co_funding_share == Decimal("0.2500")

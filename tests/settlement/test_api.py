"""GET /api/v1/settlement/statements/: a BU's key reads its own closed statements."""

from decimal import Decimal

import pytest
from dateutil.relativedelta import relativedelta
from django.utils import timezone
from rest_framework.test import APIClient

from points.services import points_spend
from settlement.selectors import period_of
from settlement.services import settlement_run_close, settlement_run_compute
from tests.factories import enrol_member
from tests.settlement.helpers import earn, units

pytestmark = pytest.mark.django_db


def client_of(partner_key, unit):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {partner_key(unit)}")
    return client


def test_a_key_reads_its_own_closed_statements_only(partner_key):
    hotel, mall, park = units()
    member = enrol_member()
    earn(member, hotel, 500)
    points_spend(member_id=member.pk, business_unit=mall, points=200)
    month = period_of(timezone.now())
    run = settlement_run_compute(period=month)
    url = "/api/v1/settlement/statements/"
    assert client_of(partner_key, mall).get(url).json()["results"] == []  # a draft is not shown
    settlement_run_close(run_id=run.pk, now=timezone.now() + relativedelta(months=2))

    mall_lines = client_of(partner_key, mall).get(url, {"period": f"{month:%Y-%m}"}).json()["results"]
    assert [(line["kind"], line["payer"], line["payee"], line["amount_cny"]) for line in mall_lines] == [
        ("clearing", "hotel", "mall", "4.00"),
    ]
    assert mall_lines[0]["period"] == f"{month:%Y-%m}" and mall_lines[0]["source_count"] == 1
    hotel_kinds = sorted(line["kind"] for line in client_of(partner_key, hotel).get(url).json()["results"])
    assert hotel_kinds == ["clearing", "issuance", "redemption"]
    assert client_of(partner_key, park).get(url).json()["results"] == []
    other_month = month - relativedelta(months=1)
    assert client_of(partner_key, mall).get(url, {"period": f"{other_month:%Y-%m}"}).json()["results"] == []
    assert Decimal(mall_lines[0]["amount_cny"]) == Decimal("4.00")


def test_a_bad_period_is_a_400_naming_the_field(partner_key):
    _hotel, mall, _park = units()
    response = client_of(partner_key, mall).get("/api/v1/settlement/statements/", {"period": "2026-13"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "period" in response.json()["fields"]


def test_without_a_key_it_is_refused():
    assert APIClient().get("/api/v1/settlement/statements/").status_code in (401, 403)

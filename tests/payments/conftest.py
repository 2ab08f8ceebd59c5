"""Fixtures of the payments tests: a restaurant that takes points (100 points = 1 CNY, in units
of 100, at most half a bill, at most 20,000 points a payment), its tills, a member with points."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from mall.models_payments import BusinessUnitPaymentSettings
from members.models import BusinessUnitKind, PartnerKey
from members.services import member_token_issue
from points.earning import points_earn
from tests.factories import BusinessUnitFactory, enrol_member


@pytest.fixture
def restaurant(db):
    bu = BusinessUnitFactory(code="bistro", name="Harbour Bistro", point_value_cny=Decimal("0.01"))
    BusinessUnitPaymentSettings.objects.create(
        business_unit=bu, accepts_points=True, min_unit=100, max_share_percent=50, cap_points=20000,
    )
    return bu


@pytest.fixture
def payer(db, restaurant):
    """A member with 10,000 points (100 CNY at the restaurant)."""
    member = enrol_member(name="Han Meimei")
    points_earn(member_id=member.pk, business_unit=restaurant, points=10000, reason="welcome")
    return member


def partner_client(business_unit, *, without_presence: bool = False, merchant=None) -> APIClient:
    _key_object, key = PartnerKey.objects.create_key(name=f"{business_unit.code} till", business_unit=business_unit,
                                                     merchant=merchant, may_spend_without_presence=without_presence)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def till(restaurant):
    """A till of the restaurant: a key created after payments, so it needs the member's pay code."""
    return partner_client(restaurant)


@pytest.fixture
def parking(restaurant):
    """A key of the restaurant allowed to spend by member id (a stored authorisation)."""
    return partner_client(restaurant, without_presence=True)


def member_client(member) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {member_token_issue(member=member)}")
    return client


@pytest.fixture
def pay_code():
    """A fresh pay code of a member, through the API."""

    def make(member) -> str:
        response = member_client(member).get("/api/v1/me/pay-code/")
        assert response.status_code == 200, response.content
        return response.json()["code"]

    return make


@pytest.fixture
def property_bu(db):
    bu = BusinessUnitFactory(code="harbour-property", name="Harbour Property", kind=BusinessUnitKind.PROPERTY)
    BusinessUnitPaymentSettings.objects.create(business_unit=bu, accepts_points=True, min_unit=100, max_share_percent=30)
    return bu

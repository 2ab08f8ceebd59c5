"""Tier endpoints: progress numbers and text, who may read whose tier, the schema."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from members.services import member_token_issue
from points.earning import points_earn
from tests.factories import enrol_member
from tests.factories import ladder
from tiers.models import QualificationBasis
from tiers.services import tier_evaluate


@pytest.fixture
def partner(bu, partner_key):
    """A partner of `bu`, reading in English."""
    client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {partner_key(bu)}")
    return client


def as_member(member):
    client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {member_token_issue(member=member)}")
    return client


def test_partner_sees_points_to_next_tier(partner, bu, member):
    ladder()
    points_earn(member_id=member.pk, business_unit=bu, points=880)
    tier_evaluate(member=member)
    response = partner.get(f"/api/v1/members/{member.pk}/tier/")
    assert response.status_code == 200
    body = response.json()
    assert (body["unit"], body["qualifying_value"], body["remaining"]) == ("points", "880", "120")
    assert (body["tier"]["code"], body["next_tier"]["code"]) == ("member", "silver")
    assert body["progress_text"] == "120 points to Silver"
    assert body["manual_until"] is None and body["downgrade_due_at"] is None


def test_spend_programme_shows_cny_to_next_tier(partner, bu, member):
    ladder(basis=QualificationBasis.SPEND)
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("4649.50"))
    tier_evaluate(member=member)
    body = partner.get(f"/api/v1/members/{member.pk}/tier/").json()
    assert (body["unit"], body["qualifying_value"], body["remaining"]) == ("CNY", "4649.50", "350.50")
    assert (body["tier"]["code"], body["next_tier"]["code"]) == ("silver", "gold")
    assert body["progress_text"] == "¥350.50 to Gold"


def test_top_tier_has_no_next(partner, bu, member):
    ladder()
    points_earn(member_id=member.pk, business_unit=bu, points=6000)
    tier_evaluate(member=member)
    body = partner.get(f"/api/v1/members/{member.pk}/tier/").json()
    assert (body["tier"]["code"], body["next_tier"], body["remaining"]) == ("gold", None, None)
    assert body["progress_text"] == "Top tier reached"


def test_member_sees_only_their_own_tier(bu, member):
    ladder()
    other = enrol_member(name="Han Meimei")
    points_earn(member_id=other.pk, business_unit=bu, points=5000)
    tier_evaluate(member=other)
    client = as_member(member)
    mine = client.get("/api/v1/me/tier/")
    assert mine.status_code == 200
    assert mine.json()["tier"]["code"] == "member"
    assert client.get(f"/api/v1/members/{other.pk}/tier/").status_code == 403


def test_partner_cannot_use_the_member_endpoint_and_anonymous_is_refused(partner, member):
    ladder()
    assert partner.get("/api/v1/me/tier/").status_code == 403
    anonymous = APIClient().get(f"/api/v1/members/{member.pk}/tier/")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"


def test_unknown_member_and_missing_programme_are_clear_errors(partner, member):
    missing = partner.get("/api/v1/members/999999/tier/")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    no_programme = partner.get(f"/api/v1/members/{member.pk}/tier/")
    assert (no_programme.status_code, no_programme.json()["code"]) == (409, "no_tier_programme")


def test_schema_documents_both_tier_endpoints(db):
    schema = APIClient().get("/api/schema/?format=json").json()
    partner_op = schema["paths"]["/api/v1/members/{member_id}/tier/"]["get"]
    member_op = schema["paths"]["/api/v1/me/tier/"]["get"]
    assert (partner_op["security"], member_op["security"]) == ([{"PartnerApiKey": []}], [{"MemberBearer": []}])
    assert {"200", "401", "403", "404", "409"} <= set(partner_op["responses"])
    assert "TierProgressOutput" in schema["components"]["schemas"]

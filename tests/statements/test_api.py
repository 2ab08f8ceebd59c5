"""The member's statements API: own statements only, newest first and paginated, one month by
YYYY-MM, a stable error for a bad period, and all of it in the OpenAPI schema."""

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

from members.services import member_token_issue
from points.earning import points_earn
from points.statements.periods import period_parse
from points.statements.services import statements_generate_batch
from tests.factories import enrol_member
from tests.statements.conftest import shanghai

pytestmark = pytest.mark.django_db


def as_member(member) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {member_token_issue(member=member)}")
    return client


@pytest.fixture
def history(clock, bu):
    clock.set(shanghai(2026, 1, 5))
    member, other = enrol_member(), enrol_member()
    for month in (1, 2, 3):
        clock.set(shanghai(2026, month, 10))
        points_earn(member_id=member.pk, business_unit=bu, points=100 * month)
        points_earn(member_id=other.pk, business_unit=bu, points=7)
    for name in ("2026-01", "2026-02", "2026-03"):
        period = period_parse(name)
        clock.set(period.end)
        statements_generate_batch(period=period)
    clock.stop()
    return member, other


def test_the_list_is_mine_newest_first_and_paginated(history):
    member, _other = history
    response = as_member(member).get("/api/v1/me/statements/", {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and body["next"] is not None
    assert [(row["period"], row["opening_balance"], row["earned"], row["closing_balance"]) for row in body["results"]] == [
        ("2026-03", 300, 300, 600), ("2026-02", 100, 200, 300),
    ]
    assert as_member(member).get("/api/v1/me/statements/", {"page": 2, "page_size": 2}).json()["results"][0]["period"] == "2026-01"


def test_one_month_in_full(history):
    member, other = history
    response = as_member(member).get("/api/v1/me/statements/2026-02/")
    assert response.status_code == 200
    body = response.json()
    assert body["period"] == "2026-02" and body["period_start"] == "2026-02-01T00:00:00+08:00"
    assert (body["opening_balance"], body["earned"], body["closing_balance"], body["debt"]) == (100, 200, 300, 0)
    assert body["earned_by_business_unit"] == {"mall": 200} and body["transactions"] == 1
    assert as_member(other).get("/api/v1/me/statements/2026-02/").json()["closing_balance"] == 14


@pytest.mark.parametrize("period", ["2026-13", "2026-3", "march", "0000-01", "2026-03-01"])
def test_a_bad_period_is_400_with_a_code(history, period):
    member, _other = history
    response = as_member(member).get(f"/api/v1/me/statements/{period}/")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_period"


def test_a_month_without_a_statement_is_404_and_partners_are_refused(history, partner):
    member, _other = history
    response = as_member(member).get("/api/v1/me/statements/2025-12/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert partner.get("/api/v1/me/statements/").status_code == 403
    assert APIClient().get("/api/v1/me/statements/2026-01/").status_code == 401


def test_the_schema_documents_both_endpoints_and_the_period_error(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    schema = yaml.safe_load(path.read_text())
    listing = schema["paths"]["/api/v1/me/statements/"]["get"]
    detail = schema["paths"]["/api/v1/me/statements/{period}/"]["get"]
    assert listing["security"] == [{"MemberBearer": []}] and "page" in {p["name"] for p in listing["parameters"]}
    examples = detail["responses"]["400"]["content"]["application/json"]["examples"]
    assert [example["value"]["code"] for example in examples.values()] == ["invalid_period"]
    assert {"200", "401", "403", "404"} <= set(detail["responses"])
    component = schema["components"]["schemas"]["Statement"]["properties"]
    assert {"earned_by_source", "expiring_30_days", "tier", "debt_repaid"} <= set(component)

"""Partner API of the earning rules: POST /api/v1/events/ and POST /api/v1/rules/simulate/."""

from decimal import Decimal

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

from members.models import MerchantCategory
from members.services import member_token_issue
from points.models import EventType, Posting, RuleEffect, RuleScope
from tests.factories import MerchantFactory
from tests.factories import EarningRuleFactory

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events/"
SIMULATE = "/api/v1/rules/simulate/"


def post_event(client, key="evt-1", **body):
    return client.post(EVENTS, body, format="json", **({"HTTP_IDEMPOTENCY_KEY": key} if key else {}))


@pytest.fixture
def check_in_rule(db):
    return EarningRuleFactory(code="check-in", event_type=EventType.CHECK_IN, points=10, cap_per_member_day=10)


def test_event_credits_the_rules_points_and_replays(partner, member, check_in_rule, ledger_sound):
    response = post_event(partner, member=member.pk, event_type="check_in", reference="app-1")
    assert response.status_code == 201, response.data
    assert response.data["points"] == 10
    transaction = response.data["transaction"]
    assert (transaction["event_type"], transaction["receipt_no"]) == ("check_in", "app-1")
    assert transaction["explanation"] == [{"rule": "check-in", "name": "Check In", "effect": "fixed", "points": 10}]
    assert response.data["balance"]["total"] == 10

    replay = post_event(partner, member=member.pk, event_type="check_in", reference="app-1")
    assert (replay.status_code, replay.data["replayed"]) == (200, True)
    assert replay.data["transaction"]["id"] == transaction["id"]
    conflict = post_event(partner, member=member.pk, event_type="survey", reference="app-1")
    assert (conflict.status_code, conflict.data["code"]) == (409, "idempotency_conflict")
    assert Posting.objects.count() == 1
    ledger_sound()


def test_event_purchase_at_a_merchant_uses_its_category_rule(partner, bu, member):
    MerchantFactory(business_unit=bu, code="phones", category=MerchantCategory.ELECTRONICS)
    EarningRuleFactory(code="electronics-2x", scope=RuleScope.CATEGORY, merchant_category="electronics",
                       effect=RuleEffect.RATE, rate=Decimal("2"), points=None)
    response = post_event(partner, member=member.pk, event_type="purchase", amount="88.80", merchant="phones")
    assert response.status_code == 201, response.data
    assert response.data["points"] == 177
    assert response.data["transaction"]["merchant"] == "phones"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_type": "referral"}, "event_type"),
        ({"event_type": "lottery"}, "event_type"),
        ({"event_type": "purchase"}, "amount"),
        ({"event_type": "parking", "amount": "10.00", "merchant": "nowhere"}, "merchant"),
        ({"event_type": "parking", "amount": "-1"}, "amount"),
    ],
)
def test_invalid_events_are_refused_by_field_and_post_nothing(partner, member, body, field):
    response = post_event(partner, member=member.pk, **body)
    assert (response.status_code, response.data["code"]) == (400, "invalid")
    assert field in response.data["fields"]
    assert not Posting.objects.exists()


def test_event_needs_an_idempotency_key_and_a_partner(partner, member, check_in_rule):
    response = post_event(partner, key=None, member=member.pk, event_type="check_in")
    assert (response.status_code, response.data["code"]) == (400, "idempotency_key_required")
    as_member = APIClient()
    as_member.credentials(HTTP_AUTHORIZATION=f"Bearer {member_token_issue(member=member)}")
    refused = post_event(as_member, member=member.pk, event_type="check_in")
    assert (refused.status_code, refused.data["code"]) == (403, "permission_denied")
    assert not Posting.objects.exists()


def test_simulation_posts_nothing_and_equals_the_event_posted_next(partner, member, check_in_rule):
    EarningRuleFactory(code="app-bonus", event_type=EventType.CHECK_IN, points=5, expiry_months=1)
    body = {"member": member.pk, "event_type": "check_in", "occurred_at": "2026-11-20T09:00:00+08:00"}
    simulated = partner.post(SIMULATE, body, format="json")
    assert simulated.status_code == 200, simulated.data
    assert not Posting.objects.exists()
    assert simulated.data["points"] == 15
    assert [(lot["rule"], lot["points"]) for lot in simulated.data["lots"]] == [("app-bonus", 5), ("check-in", 10)]

    posted = post_event(partner, **body)
    assert posted.data["points"] == simulated.data["points"]
    assert posted.data["transaction"]["explanation"] == simulated.data["explanation"]

    again = partner.post(SIMULATE, body, format="json").data
    assert [line["rule"] for line in again["explanation"]] == ["app-bonus"], "check-in's daily cap is used up"


def test_simulation_of_an_unknown_member_is_not_found(partner):
    response = partner.post(SIMULATE, {"member": 999999, "event_type": "check_in"}, format="json")
    assert (response.status_code, response.data["code"]) == (404, "not_found")


def test_schema_documents_the_events_and_simulation(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    paths = yaml.safe_load(path.read_text())["paths"]
    events = paths["/api/v1/events/"]["post"]
    header = next(p for p in events["parameters"] if p["name"] == "Idempotency-Key")
    assert header["required"] is True
    assert {"200", "201", "400", "403", "409"} <= set(events["responses"])
    assert set(paths["/api/v1/rules/simulate/"]["post"]["responses"]) >= {"200", "400", "404"}

"""The API contract as a partner meets it: the schema validates and says what the API answers
(bodies, headers, every status), and the API answers what the schema says, never a 500.

The fuzzer (test_api_contract_fuzz) and the generated client (test_api_contract_client) try
the whole surface; these tests hold each promise the issue named, one by one."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from members.services import member_token_issue
from points.api import views as points_views
from points.models import Posting
from points.earning import points_earn
from tests.factories import MerchantFactory
from tests.factories import EarningRuleFactory

pytestmark = pytest.mark.django_db

EARN = "/api/v1/transactions/earn/"
BATCH = "/api/v1/transactions/earn/batch/"
EVENTS = "/api/v1/events/"
SPEND = "/api/v1/transactions/spend/"


@pytest.fixture(scope="module")
def schema(django_db_blocker, tmp_path_factory):
    path = tmp_path_factory.mktemp("schema") / "schema.json"
    with django_db_blocker.unblock():
        call_command("spectacular", "--format", "openapi-json", "--lang", "en", "--file", str(path))
    return json.loads(path.read_text())


def client_with(credentials):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=credentials)
    return client


def earn_body(member, **extra):
    return {"member": member.pk, "amount": "10.00", "merchant": "shop1", "receipt_no": "R-1", **extra}


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


# --- the schema ------------------------------------------------------------------------------


def test_the_schema_validates(schema):
    validate(schema)  # openapi-spec-validator: raises on any error (e.g. a default its own pattern refuses)
    assert schema["openapi"].startswith("3.0")


def test_request_bodies_are_json_only(schema):
    bodies = {name: list(operation["requestBody"]["content"]) for name, operation in operations(schema)
              if "requestBody" in operation}
    assert len(bodies) >= 9
    assert {name: types for name, types in bodies.items() if types != ["application/json"]} == {}


def test_every_400_is_documented_with_fields_and_every_409_with_the_ledgers_facts(schema):
    def body_schema(response):
        return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]

    components = schema["components"]["schemas"]
    for name, operation in operations(schema):
        if "400" in operation["responses"]:
            assert body_schema(operation["responses"]["400"]) == "ValidationError", name
        conflicts = operation["responses"].get("409", {}).get("content", {}).get("application/json", {})
        if {"insufficient_points", "reversal_exceeds_original"} & set(conflicts.get("examples", {})):
            assert body_schema(operation["responses"]["409"]) == "ConflictError", name
    assert "fields" in components["ValidationError"]["required"]
    assert components["ValidationError"]["properties"]["fields"]["additionalProperties"]["items"]["type"] == "string"
    assert {"available", "requested", "reversible"} <= set(components["ConflictError"]["properties"])
    item_error = components["BatchItemError"]["properties"]["fields"]
    assert item_error["additionalProperties"] == {"type": "array", "items": {"type": "string"}}


def test_every_answer_documents_request_id_and_retry_guidance(schema):
    for name, operation in operations(schema):
        responses = operation["responses"]
        assert "5XX" in responses and "Idempotency-Key" in responses["5XX"]["description"], name
        assert all(response["headers"]["Request-Id"]["required"] for response in responses.values()), name
        if "requestBody" in operation:
            assert "415" in responses, name
        if "429" in responses:
            assert "Retry-After" in responses["429"]["headers"] and "retry" in responses["429"]["description"], name
        takes_key = any(parameter["name"] == "Idempotency-Key" for parameter in operation.get("parameters", []))
        for status in ("200", "201"):
            if takes_key and status in responses:
                assert responses[status]["headers"]["Idempotent-Replayed"]["required"] is True, name


def test_paginated_lists_document_their_404(schema):
    for path in ("/api/v1/members/", "/api/v1/me/transactions/", "/api/v1/members/{member_id}/transactions/"):
        operation = schema["paths"][path]["get"]
        assert "404" in operation["responses"], path
        page = next(parameter for parameter in operation["parameters"] if parameter["name"] == "page")
        assert page["schema"] == {"type": "integer", "minimum": 1}


def test_earns_and_events_name_the_member_by_id_card_or_phone(schema):
    for component in ("EarnRequest", "EventRequest", "EarnBatchItemRequest"):
        properties = schema["components"]["schemas"][component]
        assert {"member", "card_no", "phone"} <= set(properties["properties"]), component
        assert "member" not in properties.get("required", []), component
    transaction = schema["components"]["schemas"]["Transaction"]["properties"]
    assert {"event_type", "receipt_no"} <= set(transaction)


# --- pages -----------------------------------------------------------------------------------


def test_huge_page_numbers_are_404_not_500(partner, member):
    as_member = client_with(f"Bearer {member_token_issue(member=member)}")
    for client, url, params in [
        (partner, "/api/v1/members/", {"page": "148000455497073102422016", "phone": member.phone}),
        (partner, f"/api/v1/members/{member.pk}/transactions/", {"page": "243161824982158746066553405440",
                                                                 "page_size": "53319"}),
        (partner, f"/api/v1/members/{member.pk}/transactions/", {"page": "99", "kind": "earn"}),
        (as_member, "/api/v1/me/transactions/", {"page": "99"}),
    ]:
        response = client.get(url, params)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), (url, params)


# --- error bodies ----------------------------------------------------------------------------


def test_every_400_carries_fields(partner, merchant, member):
    broken = partner.post(EARN, "{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY="j")
    keyless = partner.post(EARN, earn_body(member), format="json")
    late = partner.post(EARN, earn_body(member, occurred_at="2001-01-01T00:00:00Z"), format="json",
                        HTTP_IDEMPOTENCY_KEY="late")
    invalid = partner.post(EARN, earn_body(member, amount="1.001"), format="json", HTTP_IDEMPOTENCY_KEY="inv",
                           HTTP_ACCEPT_LANGUAGE="en")
    answers = {response.json()["code"]: response.json()["fields"] for response in (broken, keyless, late, invalid)}
    assert answers == {"parse_error": {}, "idempotency_key_required": {}, "invalid_occurred_at": {},
                       "invalid": {"amount": ["Ensure that there are no more than 2 decimal places."]}}
    assert {broken.status_code, keyless.status_code, late.status_code, invalid.status_code} == {400}
    assert not Posting.objects.exists()


def test_insufficient_points_tells_available_and_requested(partner, bu, member):
    points_earn(member_id=member.pk, business_unit=bu, points=120)
    response = partner.post(SPEND, {"member": member.pk, "points": 500}, format="json", HTTP_IDEMPOTENCY_KEY="s")
    assert response.status_code == 409
    assert response.json() == {"code": "insufficient_points", "detail": response.json()["detail"],
                               "available": 120, "requested": 500}


def test_bulk_item_errors_are_flat_lists_of_strings(partner, merchant, member):
    items = [
        {"idempotency_key": "b-1", "member": member.pk, "amount": {"nested": ["x"]}, "receipt_no": ["a"]},
        {"idempotency_key": "b-2", "card_no": "0000000000000000", "amount": "5.00", "receipt_no": "r2"},
        {"idempotency_key": "b-3", "member": member.pk, "card_no": member.card_no, "amount": "5.00", "receipt_no": "r3"},
    ]
    results = partner.post(BATCH, {"items": items}, format="json").json()["results"]
    errors = [result["error"] for result in results]
    assert [error["code"] for error in errors] == ["invalid", "not_found", "invalid"]
    for error in errors:
        for messages in error.get("fields", {}).values():
            assert isinstance(messages, list) and all(isinstance(message, str) for message in messages), error
    assert set(errors[0]["fields"]) == {"amount", "receipt_no"}
    assert list(errors[2]["fields"]) == ["member"]


def test_an_unexpected_error_is_a_json_500_with_the_request_id(partner, merchant, member, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(points_views, "points_earn", broken)
    partner.raise_request_exception = False
    response = partner.post(EARN, earn_body(member), format="json", HTTP_IDEMPOTENCY_KEY="bug",
                            HTTP_REQUEST_ID="pos7-req-1")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "server_error"
    assert response["Request-Id"] == "pos7-req-1"
    assert any("pos7-req-1" in record.getMessage() for record in caplog.records)


# --- JSON only -------------------------------------------------------------------------------


def test_form_and_multipart_bodies_are_415(partner, merchant, member):
    for response in (
        partner.post(EARN, earn_body(member), format="multipart", HTTP_IDEMPOTENCY_KEY="m"),
        partner.post(EARN, "member=1&amount=10.00", content_type="application/x-www-form-urlencoded",
                     HTTP_IDEMPOTENCY_KEY="f"),
    ):
        assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type")
    assert not Posting.objects.exists()


def test_answers_are_json_whatever_the_accept_header(partner, member):
    response = partner.get(f"/api/v1/members/{member.pk}/balance/", HTTP_ACCEPT="text/html")
    assert (response.status_code, response["Content-Type"]) == (200, "application/json")
    assert response.json()["member"] == member.pk


# --- headers ---------------------------------------------------------------------------------


def test_writes_carry_request_id_and_idempotent_replayed(partner, merchant, member):
    first = partner.post(EARN, earn_body(member), format="json", HTTP_IDEMPOTENCY_KEY="h", HTTP_REQUEST_ID="pos7-1")
    again = partner.post(EARN, earn_body(member), format="json", HTTP_IDEMPOTENCY_KEY="h")
    assert (first.status_code, first["Idempotent-Replayed"], first["Request-Id"]) == (201, "false", "pos7-1")
    assert (again.status_code, again["Idempotent-Replayed"]) == (200, "true")
    assert len(again["Request-Id"]) == 32 and again["Request-Id"] != first["Request-Id"]
    refused = partner.post(EARN, earn_body(member), format="json", HTTP_X_REQUEST_ID="bad id with spaces")
    assert refused.status_code == 400 and len(refused["Request-Id"]) == 32
    assert "Idempotent-Replayed" not in refused
    unauthenticated = APIClient().get(f"/api/v1/members/{member.pk}/balance/", HTTP_X_REQUEST_ID="gw-9")
    assert (unauthenticated.status_code, unauthenticated["Request-Id"]) == (401, "gw-9")


# --- merchants -------------------------------------------------------------------------------


def test_a_scoped_key_naming_an_unknown_merchant_is_400_and_another_merchant_403(bu, merchant, member, partner_key):
    MerchantFactory(business_unit=bu, code="shop2")
    scoped = client_with(f"Api-Key {partner_key(bu, merchant=merchant)}")
    unknown = scoped.post(EARN, earn_body(member, merchant="nosuchshop"), format="json", HTTP_IDEMPOTENCY_KEY="u",
                          HTTP_ACCEPT_LANGUAGE="en")
    other = scoped.post(EARN, earn_body(member, merchant="shop2"), format="json", HTTP_IDEMPOTENCY_KEY="o")
    assert (unknown.status_code, unknown.json()) == (400, {
        "code": "invalid", "detail": "Invalid input.",
        "fields": {"merchant": ["No active merchant of this business unit has this code."]}})
    assert (other.status_code, other.json()["code"]) == (403, "merchant_not_permitted")
    simulated = scoped.post("/api/v1/rules/simulate/", {"member": member.pk, "event_type": "parking", "amount": "5.00",
                                                        "merchant": "nosuchshop"}, format="json")
    assert (simulated.status_code, list(simulated.json()["fields"])) == (400, ["merchant"])
    assert not Posting.objects.exists()


def test_a_blank_merchant_names_none_for_every_earning_endpoint(partner, bu, merchant, member, partner_key):
    plain = partner.post(EARN, earn_body(member, merchant=""), format="json", HTTP_IDEMPOTENCY_KEY="b1")
    event = partner.post(EVENTS, {"member": member.pk, "event_type": "parking", "amount": "5.00", "merchant": ""},
                         format="json", HTTP_IDEMPOTENCY_KEY="b2")
    scoped = client_with(f"Api-Key {partner_key(bu, merchant=merchant)}").post(
        EARN, earn_body(member, merchant=""), format="json", HTTP_IDEMPOTENCY_KEY="b3")
    assert [response.status_code for response in (plain, event, scoped)] == [201, 201, 201]
    assert [response.json()["transaction"]["merchant"] for response in (plain, event, scoped)] == [None, None, "shop1"]


# --- members by card or phone ----------------------------------------------------------------


def test_earns_and_events_take_a_card_number_or_a_phone(partner, merchant, member, ledger_sound):
    by_card_body = {**{key: value for key, value in earn_body(member).items() if key != "member"},
                    "card_no": member.card_no}
    by_card = partner.post(EARN, by_card_body, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    assert by_card.status_code == 201, by_card.json()
    assert by_card.json()["balance"]["member"] == member.pk
    # The same request naming the member by id is the same request: a replay.
    by_id = partner.post(EARN, earn_body(member), format="json", HTTP_IDEMPOTENCY_KEY="c1")
    assert (by_id.status_code, by_id.json()["transaction"]["id"]) == (200, by_card.json()["transaction"]["id"])
    event = partner.post(EVENTS, {"phone": member.phone, "event_type": "parking", "amount": "20.00",
                                  "merchant": "shop1", "reference": "P-1"}, format="json", HTTP_IDEMPOTENCY_KEY="c2")
    assert event.status_code == 201, event.json()
    assert (event.json()["balance"]["member"], event.json()["transaction"]["event_type"]) == (member.pk, "parking")
    simulated = partner.post("/api/v1/rules/simulate/", {"card_no": member.card_no, "event_type": "parking",
                                                         "amount": "20.00"}, format="json")
    assert simulated.status_code == 200 and simulated.json()["points"] == 20
    items = [{"idempotency_key": "c3", "phone": member.phone, "amount": "7.00", "merchant": "shop1", "receipt_no": "r3"}]
    batch = partner.post(BATCH, {"items": items}, format="json").json()
    assert [result["status"] for result in batch["results"]] == ["created"]
    assert Posting.objects.filter(wallet__member=member).count() == 3
    ledger_sound()


@pytest.mark.parametrize(("naming", "status", "code", "field"), [
    ({"card_no": "0000000000000001"}, 404, "not_found", None),
    ({"phone": "+8613900000000"}, 404, "not_found", None),
    ({}, 400, "invalid", "member"),
    ({"member": "self", "phone": "13800138000"}, 400, "invalid", "member"),
    ({"card_no": "12-34"}, 400, "invalid", "card_no"),
])
def test_a_member_named_wrongly_is_refused(partner, merchant, member, naming, status, code, field):
    naming = {key: (member.pk if value == "self" else value) for key, value in naming.items()}
    body = {"amount": "10.00", "merchant": "shop1", "receipt_no": "R", **naming}
    response = partner.post(EARN, body, format="json", HTTP_IDEMPOTENCY_KEY="w")
    assert (response.status_code, response.json()["code"]) == (status, code)
    if field:
        assert field in response.json()["fields"]
    assert not Posting.objects.exists()


# --- history ---------------------------------------------------------------------------------


def test_history_shows_event_type_and_reference(partner, bu, member):
    EarningRuleFactory(code="check-in", event_type="check_in", points=10)
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("8.00"), receipt_no="R-9")
    partner.post(EVENTS, {"member": member.pk, "event_type": "check_in", "reference": "app-1"}, format="json",
                 HTTP_IDEMPOTENCY_KEY="e")
    url = f"/api/v1/members/{member.pk}/transactions/"
    plain = partner.get(url).json()["results"]
    filtered = partner.get(url, {"occurred_before": (timezone.now() + timedelta(minutes=5)).isoformat()})
    assert [(row["event_type"], row["receipt_no"]) for row in plain] == [("check_in", "app-1"), ("purchase", "R-9")]
    assert filtered.json()["results"] == plain


def test_an_event_that_earns_nothing_answers_200_with_no_transaction_and_writes_nothing(partner, member):
    response = partner.post(EVENTS, {"member": member.pk, "event_type": "survey", "reference": "q-1"}, format="json",
                            HTTP_IDEMPOTENCY_KEY="nothing")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["transaction"], body["points"], body["replayed"]) == (None, 0, False)
    assert response["Idempotent-Replayed"] == "false"
    assert not Posting.objects.exists()


def test_a_path_no_route_matches_is_the_apis_json_404(partner, client):
    for path in ("/api/v1/holds/-1/", "/api/v1/holds/null/capture/", "/api/v1/no-such-endpoint/"):
        response = partner.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json" and response.json()["code"] == "not_found", path
        assert response["Request-Id"]
    assert "text/html" in client.get("/no-such-page/")["Content-Type"], "the console keeps Django's page"

"""Spending or holding by member id alone is for keys allowed to spend without the member
present: every other key (the default of a new key) is refused with 403 presence_required and
nothing moves."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from members.models import PartnerKey
from members.services import partner_key_presence_set
from points.earning import points_earn
from points.models import Hold, Posting, PostingKind

pytestmark = pytest.mark.django_db


def client_of(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def funded(member, bu):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("1000"))
    return member


def spend(client, member, key="s1"):
    return client.post("/api/v1/transactions/spend/", {"member": member.pk, "points": 100, "reason": "parking"},
                       format="json", HTTP_IDEMPOTENCY_KEY=key)


def hold(client, member, key="h1"):
    return client.post("/api/v1/holds/", {"member": member.pk, "points": 100, "purpose": "pos_bill"},
                       format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_new_key_needs_presence_and_may_neither_spend_nor_hold(funded, bu, ledger_sound):
    key_object, key = PartnerKey.objects.create_key(name="till", business_unit=bu)
    assert key_object.may_spend_without_presence is False
    client = client_of(key)
    for response in (spend(client, funded), hold(client, funded)):
        assert (response.status_code, response.json()["code"]) == (403, "presence_required")
    assert not Posting.objects.filter(kind=PostingKind.SPEND).exists() and not Hold.objects.exists()
    earned = client.post("/api/v1/transactions/earn/", {"member": funded.pk, "amount": "10.00", "receipt_no": "R-1"},
                         format="json", HTTP_IDEMPOTENCY_KEY="e1")
    assert earned.status_code == 201  # earning needs no presence
    ledger_sound()


def test_a_key_allowed_by_the_console_spends_and_holds_and_loses_it_when_revoked(funded, bu, ledger_sound):
    key_object, key = PartnerKey.objects.create_key(name="parking", business_unit=bu)
    partner_key_presence_set(key=key_object, may_spend_without_presence=True)
    client = client_of(key)
    assert spend(client, funded).status_code == 201
    assert hold(client, funded).status_code == 201
    partner_key_presence_set(key=key_object, may_spend_without_presence=False)  # the cached key follows the save
    assert spend(client, funded, key="s2").json()["code"] == "presence_required"
    assert Posting.objects.filter(kind=PostingKind.SPEND).count() == 1
    ledger_sound()


def test_the_schema_lists_presence_required_for_spend_and_holds(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/v1/transactions/spend/", "/api/v1/holds/"):
        forbidden = schema["paths"][path]["post"]["responses"]["403"]["content"]["application/json"]["examples"]
        assert "presence_required" in {example["summary"] for example in forbidden.values()}, path

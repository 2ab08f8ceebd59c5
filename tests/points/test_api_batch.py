"""Bulk earn: each item all-or-nothing on its own, reported per item, replayable."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from points.models import Posting, PostingKind
from points.earning import points_earn
from points.ledger import Idempotency
from points.services import points_spend, posting_reverse
from tests.factories import MerchantFactory, enrol_member

pytestmark = pytest.mark.django_db

BATCH = "/api/v1/transactions/earn/batch/"


def item(key, member, amount="10.00", **extra):
    return {"idempotency_key": key, "member": member.pk, "amount": amount, "merchant": "shop1", "receipt_no": key,
            **extra}


def test_batch_with_good_bad_and_replayed_items(partner, bu, other_bu, merchant, member, ledger_sound):
    other = enrol_member()
    MerchantFactory(business_unit=other_bu, code="hotelshop")
    first = partner.post("/api/v1/transactions/earn/", item("k-old", member, "20.00"), format="json",
                         HTTP_IDEMPOTENCY_KEY="k-old")
    assert first.status_code == 201

    items = [
        item("k-1", member, "12.34"),
        item("k-old", member, "20.00"),  # replays the single earn above
        item("k-2", other, "10.005"),  # 3 decimals
        {"idempotency_key": "k-3", "member": 987654321, "amount": "5.00", "merchant": "shop1", "receipt_no": "r"},
        item("k-4", member, merchant="hotelshop"),  # a merchant of another BU
        item("k-old", member, "21.00"),  # same key, another request
        "not an object",
        item("k-5", other, "7.00"),
    ]
    response = partner.post(BATCH, {"items": items}, format="json")
    assert response.status_code == 200, response.data
    results = response.data["results"]
    assert [r["status"] for r in results] == [
        "created", "replayed", "error", "error", "error", "error", "error", "created"
    ]
    assert [r["idempotency_key"] for r in results] == ["k-1", "k-old", "k-2", "k-3", "k-4", "k-old", None, "k-5"]
    assert (response.data["created"], response.data["replayed"], response.data["failed"]) == (2, 1, 5)

    assert results[0]["transaction"]["points"] == 12
    assert results[1]["transaction"]["id"] == first.data["transaction"]["id"]
    assert results[2]["error"]["code"] == "invalid" and "amount" in results[2]["error"]["fields"]
    assert results[3]["error"]["code"] == "not_found"
    assert results[4]["error"]["code"] == "invalid" and "merchant" in results[4]["error"]["fields"]
    assert results[5]["error"]["code"] == "idempotency_conflict"
    assert results[6]["error"]["code"] == "invalid"
    assert "transaction" not in results[2] and "error" not in results[0]

    assert Posting.objects.filter(kind=PostingKind.EARN).count() == 3
    member.wallet.refresh_from_db()
    other.wallet.refresh_from_db()
    assert (member.wallet.balance, other.wallet.balance) == (32, 7)

    again = partner.post(BATCH, {"items": items}, format="json")
    assert [r["status"] for r in again.data["results"]][:2] == ["replayed", "replayed"]
    assert again.data["results"][7]["status"] == "replayed"
    assert again.data["created"] == 0
    assert Posting.objects.filter(kind=PostingKind.EARN).count() == 3
    ledger_sound()


def test_batch_item_keys_share_the_single_earn_namespace(partner, bu, merchant, member):
    partner.post(BATCH, {"items": [item("k-1", member)]}, format="json")
    single = partner.post("/api/v1/transactions/earn/", item("k-1", member), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert single.status_code == 200
    assert single.data["replayed"] is True


def test_batch_merchant_scoped_key(bu, merchant, member, partner_key):
    shop2 = MerchantFactory(business_unit=bu, code="shop2")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {partner_key(bu, merchant=shop2)}")
    response = client.post(BATCH, {"items": [item("a", member, merchant=""), item("b", member)]}, format="json")
    assert [r["status"] for r in response.data["results"]] == ["created", "error"]
    assert response.data["results"][0]["transaction"]["merchant"] == "shop2"
    assert response.data["results"][1]["error"]["code"] == "merchant_not_permitted"


def test_batch_size_and_shape_are_checked(partner, merchant, member):
    too_many = partner.post(BATCH, {"items": [item(f"k{i}", member) for i in range(1001)]}, format="json")
    assert too_many.status_code == 400
    assert "items" in too_many.data["fields"]
    for body in ({}, {"items": []}, {"items": "x"}):
        response = partner.post(BATCH, body, format="json")
        assert response.status_code == 400
        assert "items" in response.data["fields"]
    assert not Posting.objects.exists()


def test_batch_of_a_thousand_items_is_accepted(partner, merchant, member):
    """The limit is inclusive; every item is reported (here each names an unknown merchant)."""
    items = [item(f"k{i}", member, merchant="gone") for i in range(1000)]
    response = partner.post(BATCH, {"items": items}, format="json")
    assert response.status_code == 200
    assert (len(response.data["results"]), response.data["failed"]) == (1000, 1000)
    assert response.data["results"][999]["idempotency_key"] == "k999"
    assert not Posting.objects.exists()


def test_batch_refund_debt_is_repaid_first(partner, bu, merchant, member, ledger_sound):
    """A member in debt after a refund repays it from a batch earn before points reach the wallet."""
    earned = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("50"),
                         idempotency=Idempotency(scope="t", key="e"))
    points_spend(member_id=member.pk, business_unit=bu, points=50)
    posting_reverse(posting_id=earned.posting.pk)
    response = partner.post(BATCH, {"items": [item("k", member, "80.00")]}, format="json")
    assert response.data["created"] == 1
    member.wallet.refresh_from_db()
    assert (member.wallet.debt, member.wallet.balance) == (0, 30)
    ledger_sound()

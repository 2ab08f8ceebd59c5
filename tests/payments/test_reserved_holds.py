"""A payment's hold is the payment's: the holds API (and the ledger's stand-alone hold functions)
refuse to capture or void a hold whose purpose an app above points reserves (points.policies),
with 409 hold_reserved; the payment then moves it as usual."""

import pytest
import yaml
from django.core.management import call_command

from mall.models_payments import Payment, PaymentStatus
from mall.services_payments import HOLD_PURPOSE
from points.exceptions import HoldReserved
from points.ledger import hold_capture, hold_void
from points.models import Hold, HoldStatus, Posting, PostingKind
from points.policies import hold_purpose_reserved
from tests.payments.conftest import partner_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def authorised(till, payer, pay_code):
    response = till.post("/api/v1/payments/", {
        "pay_code": pay_code(payer), "bill_no": "B-RES-1", "bill_amount": "100.00", "points": 2000,
    }, format="json", HTTP_IDEMPOTENCY_KEY="pay-res-1")
    assert response.status_code == 201, response.json()
    return Payment.objects.get(pk=response.json()["payment"]["id"])


def test_mall_reserves_the_payment_purpose():
    assert HOLD_PURPOSE == "payment" and hold_purpose_reserved("payment")
    assert not hold_purpose_reserved("pos_bill")


@pytest.mark.parametrize("move", ["capture", "void"])
def test_the_holds_api_refuses_to_move_a_payments_hold(restaurant, authorised, move, ledger_sound):
    holds_api = partner_client(restaurant, without_presence=True)
    response = holds_api.post(f"/api/v1/holds/{authorised.hold_id}/{move}/", {}, format="json",
                              HTTP_IDEMPOTENCY_KEY=f"holds-{move}")
    assert response.status_code == 409, response.json()
    assert response.json() == {"code": "hold_reserved", "detail": response.json()["detail"],
                               "hold": authorised.hold_id, "purpose": "payment"}
    assert Hold.objects.get(pk=authorised.hold_id).status == HoldStatus.HELD
    authorised.refresh_from_db()
    assert authorised.status == PaymentStatus.AUTHORIZED
    assert not Posting.objects.filter(kind=PostingKind.SPEND).exists()
    ledger_sound()


def test_the_payment_still_captures_its_hold_after_the_refusal(restaurant, till, authorised, ledger_sound):
    holds_api = partner_client(restaurant, without_presence=True)
    assert holds_api.post(f"/api/v1/holds/{authorised.hold_id}/capture/", {}, format="json",
                          HTTP_IDEMPOTENCY_KEY="h").status_code == 409
    captured = till.post(f"/api/v1/payments/{authorised.pk}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="cap")
    assert captured.status_code == 201, captured.json()
    assert captured.json()["payment"]["status"] == "captured"
    assert Hold.objects.get(pk=authorised.hold_id).status == HoldStatus.CAPTURED
    ledger_sound()


def test_another_business_units_key_still_finds_nothing(bu, authorised):
    stranger = partner_client(bu, without_presence=True)
    response = stranger.post(f"/api/v1/holds/{authorised.hold_id}/void/", {}, format="json")
    assert response.status_code == 404


def test_the_ledgers_stand_alone_moves_refuse_it_too(authorised):
    with pytest.raises(HoldReserved):
        hold_capture(hold_id=authorised.hold_id)
    with pytest.raises(HoldReserved):
        hold_void(hold_id=authorised.hold_id)
    assert Hold.objects.get(pk=authorised.hold_id).status == HoldStatus.HELD


def test_hold_reserved_is_in_the_schema_of_both_moves(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    paths = yaml.safe_load(path.read_text())["paths"]
    for url in ("/api/v1/holds/{hold_id}/capture/", "/api/v1/holds/{hold_id}/void/", "/api/v1/holds/"):
        examples = paths[url]["post"]["responses"]["409"]["content"]["application/json"]["examples"]
        assert "hold_reserved" in {example["value"]["code"] for example in examples.values()}, url

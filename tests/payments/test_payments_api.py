"""Payments with points over the partner API: quote, authorise, capture, void, refund, read;
limits, rounding, presence, idempotency and the stable error codes."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from mall.models_payments import BusinessUnitPaymentSettings, Payment, PaymentEvent, PaymentStatus
from points.models import Hold, HoldStatus, Posting, PostingKind, Wallet
from tests.factories import BusinessUnitFactory
from tests.payments.conftest import partner_client

pytestmark = pytest.mark.django_db


def authorise(client, key="pay-1", **body):
    return client.post("/api/v1/payments/", {"bill_no": "B-1", "bill_amount": "268.00", **body}, format="json",
                       HTTP_IDEMPOTENCY_KEY=key)


def capture(client, payment_id, key="cap-1", **body):
    return client.post(f"/api/v1/payments/{payment_id}/capture/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def refund(client, payment_id, key, **body):
    return client.post(f"/api/v1/payments/{payment_id}/refund/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def held(member) -> int:
    return Wallet.objects.get(member=member).held


def test_a_whole_till_session(till, payer, pay_code, ledger_sound):
    code = pay_code(payer)
    quote = till.post("/api/v1/payments/quote/", {"pay_code": code, "bill_no": "B-1", "bill_amount": "268.00"},
                      format="json")
    assert quote.status_code == 200, quote.json()
    assert quote.json()["max_points"] == 10000 and quote.json()["binding_limit"] == "available_points"
    assert quote.json()["max_amount_cny"] == "100.00"
    assert {row["limit"]: row["points"] for row in quote.json()["limits"]} == {
        "max_share": 13400, "cap_per_payment": 20000, "available_points": 10000}

    created = authorise(till, pay_code=code, points=8000)
    assert created.status_code == 201, created.json()
    payment = created.json()["payment"]
    assert (payment["status"], payment["points"], payment["amount_cny"]) == ("authorized", 8000, "80.00")
    assert (payment["point_value_cny"], payment["unit"], payment["max_share_percent"]) == ("0.010000", 100, 50)
    assert created.json()["balance"] == {"available": 2000, "held": 8000, "total": 10000}

    captured = capture(till, payment["id"], points=6000)
    assert captured.status_code == 201, captured.json()
    assert captured.json()["payment"]["status"] == "captured"
    assert captured.json()["payment"]["captured_cny"] == "60.00"
    assert captured.json()["payment"]["earnable_amount_cny"] == "208.00"  # the cash part of 268.00
    assert captured.json()["balance"] == {"available": 4000, "held": 0, "total": 4000}

    first = refund(till, payment["id"], "ref-1", points=1000)
    assert first.status_code == 201, first.json()
    assert first.json()["payment"]["status"] == "partially_refunded"
    assert first.json()["payment"]["refundable_points"] == 5000
    second = refund(till, payment["id"], "ref-2")
    assert second.json()["payment"]["status"] == "refunded"
    assert second.json()["balance"]["total"] == 10000
    events = [(e["from_status"], e["to_status"], e["points"]) for e in second.json()["payment"]["events"]]
    assert events == [("", "authorized", 8000), ("authorized", "captured", 6000),
                      ("captured", "partially_refunded", 1000), ("partially_refunded", "refunded", 5000)]
    kinds = list(Posting.objects.filter(wallet__member=payer).order_by("id").values_list("kind", "points"))
    assert kinds == [(PostingKind.EARN, 10000), (PostingKind.SPEND, -6000), (PostingKind.CANCEL, 1000),
                     (PostingKind.CANCEL, 5000)]
    assert till.get(f"/api/v1/payments/{payment['id']}/").json()["status"] == "refunded"
    ledger_sound()


def test_replays_by_key_and_by_bill_hold_once(till, payer, pay_code, ledger_sound):
    code = pay_code(payer)
    first = authorise(till, pay_code=code, points=3000)
    assert first.status_code == 201
    again = authorise(till, pay_code=code, points=3000)
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert again.json()["payment"]["id"] == first.json()["payment"]["id"]
    # The till lost the answer and retries the bill under a new key with a fresh code.
    retry = authorise(till, key="pay-2", pay_code=pay_code(payer), points=3000)
    assert (retry.status_code, retry.json()["payment"]["id"]) == (200, first.json()["payment"]["id"])
    assert held(payer) == 3000 and Hold.objects.count() == 1
    conflict = authorise(till, pay_code=code, points=4000)
    assert (conflict.status_code, conflict.json()["code"]) == (409, "idempotency_conflict")
    other = authorise(till, key="pay-3", pay_code=pay_code(payer), points=4000)
    assert (other.status_code, other.json()["code"]) == (409, "bill_already_paid")
    assert held(payer) == 3000 and Payment.objects.count() == 1
    ledger_sound()


@pytest.mark.parametrize("body, code", [
    ({"bill_amount": "0"}, "invalid"),
    ({"bill_amount": "0.00"}, "invalid"),
    ({"bill_amount": "-10.00"}, "invalid"),
    ({"bill_amount": "10.005"}, "invalid"),
    ({"bill_amount": str(10**12)}, "invalid"),
    ({"bill_amount": "abc"}, "invalid"),
    ({"points": 150}, "invalid_points_unit"),
    ({"points": 0}, "invalid"),
    ({"points": -100}, "invalid"),
    ({"amount_cny": "10.50"}, "invalid_points_unit"),  # 1050 points: not a multiple of 100
    ({"points": 13500}, "payment_limit_exceeded"),  # half of 268.00 is 13,400 points
    ({"bill_amount": "500.00", "points": 20100}, "payment_limit_exceeded"),  # the cap
    ({"points": 100, "amount_cny": "1.00"}, "invalid"),
    ({"pay_code": "12345"}, "invalid"),
    ({"bill_no": ""}, "invalid"),
])
def test_bad_input_is_a_400_with_a_code_and_holds_nothing(till, payer, pay_code, body, code, ledger_sound):
    request = {"pay_code": pay_code(payer), "points": 1000, **body}
    request = {name: value for name, value in request.items() if not (name == "points" and "amount_cny" in body
                                                                         and "points" not in body)}
    response = authorise(till, **request)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code
    assert held(payer) == 0 and not Payment.objects.exists() and not Hold.objects.exists()
    ledger_sound()


def test_the_limit_named_in_the_refusal(till, payer, pay_code):
    response = authorise(till, pay_code=pay_code(payer), points=13500)
    assert response.json()["limit"] == "max_share" and response.json()["max_points"] == 13400
    assert response.json()["max_amount_cny"] == "134.00"


def test_rounding_never_takes_points_for_value_not_delivered(till, payer, pay_code, restaurant, ledger_sound):
    # 200 points = 1 CNY: one point is half a fen, so points go in pairs; the BU asks for no unit.
    restaurant.point_value_cny = Decimal("0.005")
    restaurant.save()
    BusinessUnitPaymentSettings.objects.filter(business_unit=restaurant).update(min_unit=1, max_share_percent=100,
                                                                               cap_points=None)
    quote = till.post("/api/v1/payments/quote/", {"pay_code": pay_code(payer), "bill_no": "B-1", "bill_amount": "0.03"},
                      format="json").json()
    assert quote["unit"] == 2 and quote["max_points"] == 6 and quote["max_amount_cny"] == "0.03"
    odd = authorise(till, pay_code=pay_code(payer), points=5)
    assert (odd.status_code, odd.json()["code"]) == (400, "invalid_points_unit")
    paid = authorise(till, key="pay-2", pay_code=pay_code(payer), bill_amount="0.03", amount_cny="0.03")
    assert paid.status_code == 201, paid.json()
    assert (paid.json()["payment"]["points"], paid.json()["payment"]["amount_cny"]) == (6, "0.03")
    # A bill of 0.01 at half a fen a point, half of it payable: 0.005 CNY is no whole fen, so nothing.
    BusinessUnitPaymentSettings.objects.filter(business_unit=restaurant).update(max_share_percent=50)
    quote = till.post("/api/v1/payments/quote/", {"pay_code": pay_code(payer), "bill_no": "B-9", "bill_amount": "0.01"},
                      format="json").json()
    assert (quote["max_points"], quote["max_amount_cny"], quote["binding_limit"]) == (0, "0.00", "max_share")
    ledger_sound()


def test_presence_required_for_new_keys_and_allowed_keys_pay_by_member_id(till, parking, payer, ledger_sound):
    refused = authorise(till, member=payer.pk, points=1000)
    assert (refused.status_code, refused.json()["code"]) == (403, "presence_required")
    assert held(payer) == 0
    allowed = authorise(parking, member=payer.pk, points=1000)
    assert allowed.status_code == 201, allowed.json()
    assert allowed.json()["payment"]["presence"] == "member_id"
    ledger_sound()


def test_points_not_accepted(payer, pay_code):
    hotel = BusinessUnitFactory(code="no-points-hotel")
    response = authorise(partner_client(hotel), pay_code=pay_code(payer), points=1000)
    assert (response.status_code, response.json()["code"]) == (409, "points_not_accepted")
    BusinessUnitPaymentSettings.objects.create(business_unit=hotel, accepts_points=False)
    response = authorise(partner_client(hotel), pay_code=pay_code(payer), points=1000)
    assert response.json()["code"] == "points_not_accepted"
    assert held(payer) == 0


def test_more_than_available_is_refused_and_the_code_still_works(till, payer, pay_code, ledger_sound):
    code = pay_code(payer)
    refused = authorise(till, pay_code=code, bill_amount="500.00", points=12000)
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_points")
    assert held(payer) == 0
    paid = authorise(till, pay_code=code, bill_amount="500.00", points=10000)  # same key: judged afresh
    assert paid.status_code == 201, paid.json()
    ledger_sound()


def test_the_terms_are_frozen_at_authorisation(till, payer, pay_code, restaurant, ledger_sound):
    payment = authorise(till, pay_code=pay_code(payer), points=5000).json()["payment"]
    restaurant.point_value_cny = Decimal("0.02")
    restaurant.save()
    BusinessUnitPaymentSettings.objects.filter(business_unit=restaurant).update(min_unit=1000, max_share_percent=10)
    captured = capture(till, payment["id"]).json()["payment"]
    assert (captured["captured_points"], captured["captured_cny"], captured["unit"]) == (5000, "50.00", 100)
    refunded = refund(till, payment["id"], "r1", points=100).json()["payment"]
    assert refunded["refunded_cny"] == "1.00"
    ledger_sound()


def test_capture_rules(till, payer, pay_code, ledger_sound):
    payment = authorise(till, pay_code=pay_code(payer), points=5000).json()["payment"]
    too_much = capture(till, payment["id"], points=5100)
    assert (too_much.status_code, too_much.json()["code"]) == (409, "capture_exceeds_authorization")
    odd = capture(till, payment["id"], points=150)
    assert (odd.status_code, odd.json()["code"]) == (400, "invalid_points_unit")
    assert capture(till, payment["id"], points=3000).status_code == 201
    replay = capture(till, payment["id"], points=3000)
    assert (replay.status_code, replay.json()["replayed"]) == (200, True)
    again = capture(till, payment["id"], key="cap-2", points=3000)
    assert (again.status_code, again.json()["code"], again.json()["status"]) == (409, "payment_resolved", "captured")
    void = till.post(f"/api/v1/payments/{payment['id']}/void/", {}, format="json")
    assert (void.status_code, void.json()["code"]) == (409, "payment_resolved")
    assert Wallet.objects.get(member=payer).balance == 7000
    ledger_sound()


def test_void_then_capture_and_the_bill_is_free_again(till, payer, pay_code, ledger_sound):
    payment = authorise(till, pay_code=pay_code(payer), points=5000).json()["payment"]
    void = till.post(f"/api/v1/payments/{payment['id']}/void/", {}, format="json")
    assert (void.status_code, void.json()["payment"]["status"]) == (200, "voided")
    assert void.json()["balance"]["held"] == 0
    again = till.post(f"/api/v1/payments/{payment['id']}/void/", {}, format="json")
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    late = capture(till, payment["id"])
    assert (late.status_code, late.json()["code"], late.json()["status"]) == (409, "payment_resolved", "voided")
    second = authorise(till, key="pay-2", pay_code=pay_code(payer), points=2000)
    assert second.status_code == 201 and second.json()["payment"]["id"] != payment["id"]
    ledger_sound()


def test_an_expired_authorisation_reads_expired_and_cannot_be_captured(till, payer, pay_code, ledger_sound):
    payment = authorise(till, pay_code=pay_code(payer), points=5000).json()["payment"]
    past = timezone.now() - timedelta(seconds=1)
    Hold.objects.filter(pk=payment["hold"]).update(expires_at=past)
    assert till.get(f"/api/v1/payments/{payment['id']}/").json()["status"] == "expired"
    late = capture(till, payment["id"])
    assert (late.status_code, late.json()["code"]) == (409, "payment_expired")
    assert Payment.objects.get(pk=payment["id"]).status == PaymentStatus.EXPIRED  # written by the refused capture
    assert Hold.objects.get(pk=payment["hold"]).status == HoldStatus.EXPIRED
    assert held(payer) == 0 and Wallet.objects.get(member=payer).balance == 10000
    void = till.post(f"/api/v1/payments/{payment['id']}/void/", {}, format="json")
    assert (void.status_code, void.json()["code"]) == (409, "payment_expired")
    # The bill may be paid again.
    assert authorise(till, key="pay-2", pay_code=pay_code(payer), points=5000).status_code == 201
    ledger_sound()


def test_a_swept_hold_makes_the_payment_expired(till, payer, pay_code, ledger_sound):
    from points.ledger import holds_release_expired

    payment = authorise(till, pay_code=pay_code(payer), points=5000).json()["payment"]
    released, _more = holds_release_expired(now=timezone.now() + timedelta(days=1))
    assert released == 1
    assert till.get(f"/api/v1/payments/{payment['id']}/").json()["status"] == "expired"
    assert capture(till, payment["id"]).json()["code"] == "payment_expired"
    assert not Posting.objects.filter(kind=PostingKind.SPEND).exists()
    ledger_sound()


def test_partial_refunds_never_exceed_the_capture(till, payer, pay_code, ledger_sound):
    payment = authorise(till, pay_code=pay_code(payer), points=5000).json()["payment"]
    not_yet = refund(till, payment["id"], "r0")
    assert (not_yet.status_code, not_yet.json()["code"]) == (409, "payment_not_captured")
    capture(till, payment["id"], points=4000)
    odd = refund(till, payment["id"], "r1", points=1050)
    assert (odd.status_code, odd.json()["code"]) == (400, "invalid_points_unit")
    assert refund(till, payment["id"], "r1", points=1000).status_code == 201
    assert refund(till, payment["id"], "r1", points=1000).json()["replayed"] is True
    over = refund(till, payment["id"], "r2", points=3100)
    assert (over.status_code, over.json()["code"], over.json()["refundable"]) == (409, "refund_exceeds_capture", 3000)
    assert refund(till, payment["id"], "r3", points=3000).status_code == 201
    done = refund(till, payment["id"], "r4", points=100)
    assert (done.status_code, done.json()["code"]) == (409, "refund_exceeds_capture")
    stored = Payment.objects.get(pk=payment["id"])
    assert (stored.refunded_points, stored.captured_points, stored.refunded_cny) == (4000, 4000, Decimal("40.00"))
    cancelled = sum(Posting.objects.filter(kind=PostingKind.CANCEL).values_list("points", flat=True))
    assert cancelled == 4000 and Wallet.objects.get(member=payer).balance == 10000
    ledger_sound()


def test_another_business_units_payment_is_not_found(till, payer, pay_code):
    payment = authorise(till, pay_code=pay_code(payer), points=1000).json()["payment"]
    stranger = partner_client(BusinessUnitFactory(code="elsewhere"))
    assert stranger.get(f"/api/v1/payments/{payment['id']}/").status_code == 404
    assert capture(stranger, payment["id"]).status_code == 404
    assert stranger.post(f"/api/v1/payments/{payment['id']}/void/", {}, format="json").status_code == 404
    assert held(payer) == 1000


def test_members_cannot_call_the_partner_endpoints_and_see_their_payments(till, payer, pay_code):
    from tests.payments.conftest import member_client

    authorise(till, pay_code=pay_code(payer), points=1000)
    client = member_client(payer)
    assert authorise(client, pay_code=pay_code(payer), points=1000).status_code == 403
    mine = client.get("/api/v1/me/payments/")
    assert mine.status_code == 200 and [p["points"] for p in mine.json()] == [1000]


def test_every_move_has_an_event_and_events_are_append_only(till, payer, pay_code):
    from django.db import transaction
    from django.db.utils import DatabaseError

    payment = authorise(till, pay_code=pay_code(payer), points=1000).json()["payment"]
    capture(till, payment["id"])
    assert PaymentEvent.objects.filter(payment_id=payment["id"]).count() == 2
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        PaymentEvent.objects.filter(payment_id=payment["id"]).update(points=1)


def test_payments_are_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ["/api/v1/payments/", "/api/v1/payments/quote/", "/api/v1/payments/{payment_id}/",
                 "/api/v1/payments/{payment_id}/capture/", "/api/v1/payments/{payment_id}/void/",
                 "/api/v1/payments/{payment_id}/refund/", "/api/v1/me/pay-code/", "/api/v1/property/bills/"]:
        assert path in schema["paths"], path
    authorise_op = schema["paths"]["/api/v1/payments/"]["post"]
    documented = {example["value"]["code"] for response in authorise_op["responses"].values()
                  for example in response.get("content", {}).get("application/json", {}).get("examples", {}).values()
                  if "code" in example.get("value", {})}
    assert {"pay_code_invalid", "invalid_points_unit", "payment_limit_exceeded", "points_not_accepted",
            "presence_required", "bill_already_paid", "insufficient_points"} <= documented


def test_settling_lapsed_payments_writes_their_expired_move(till, payer, pay_code, ledger_sound):
    from mall.services_payments import payments_settle_lapsed

    lapsed = authorise(till, pay_code=pay_code(payer), points=1000).json()["payment"]
    live = authorise(till, key="pay-2", bill_no="B-2", pay_code=pay_code(payer), points=2000).json()["payment"]
    Hold.objects.filter(pk=lapsed["hold"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert payments_settle_lapsed() == (1, False)
    assert payments_settle_lapsed() == (0, False)
    assert dict(Payment.objects.values_list("id", "status")) == {lapsed["id"]: PaymentStatus.EXPIRED,
                                                                 live["id"]: PaymentStatus.AUTHORIZED}
    assert Hold.objects.get(pk=lapsed["hold"]).status == HoldStatus.EXPIRED
    assert held(payer) == 2000
    ledger_sound()

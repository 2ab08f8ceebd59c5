"""The member's pay code: 18 digits, 60 seconds, single use, stored hashed, shown as QR and barcode."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from mall.exceptions_payments import PayCodeInvalid
from mall.models_payments import PayCode, Payment
from mall.services_payments import payment_authorize
from members.models import PartnerKey
from points.ledger import Idempotency
from points.models import Hold, Wallet
from points.selectors import ledger_problems
from tests.payments.conftest import member_client

WAIT_SECONDS = 60


def authorise(till, code, key="pay-1", bill_no="B-1", points=1000):
    return till.post("/api/v1/payments/", {"pay_code": code, "bill_no": bill_no, "bill_amount": "100.00",
                                           "points": points}, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_the_code_is_18_digits_for_60_seconds_stored_hashed_with_images(payer):
    before = timezone.now()
    response = member_client(payer).get("/api/v1/me/pay-code/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert len(body["code"]) == 18 and body["code"].isdigit() and body["expires_in"] == 60
    assert "<svg" in body["qr_svg"] and "<svg" in body["barcode_svg"]
    stored = PayCode.objects.get(member=payer)
    assert body["code"] not in stored.code_hash and len(stored.code_hash) == 64
    assert timedelta(seconds=59) < stored.expires_at - before <= timedelta(seconds=61)
    assert member_client(payer).get("/api/v1/me/pay-code/").json()["code"] != body["code"]


@pytest.mark.django_db
def test_only_members_get_a_code(till):
    assert till.get("/api/v1/me/pay-code/").status_code == 403


@pytest.mark.django_db
def test_a_code_used_twice_is_refused_and_holds_nothing_more(till, payer, pay_code, ledger_sound):
    code = pay_code(payer)
    assert authorise(till, code).status_code == 201
    second = authorise(till, code, key="pay-2", bill_no="B-2")
    assert (second.status_code, second.json()["code"]) == (400, "pay_code_invalid")
    assert Wallet.objects.get(member=payer).held == 1000 and Payment.objects.count() == 1
    ledger_sound()


@pytest.mark.django_db
def test_a_code_after_60_seconds_is_refused(till, payer, pay_code):
    code = pay_code(payer)
    PayCode.objects.filter(member=payer).update(expires_at=timezone.now() - timedelta(milliseconds=1))
    response = authorise(till, code)
    assert (response.status_code, response.json()["code"]) == (400, "pay_code_invalid")
    quote = till.post("/api/v1/payments/quote/", {"pay_code": code, "bill_no": "B-1", "bill_amount": "100.00"},
                      format="json")
    assert quote.json()["code"] == "pay_code_invalid"
    assert not Hold.objects.exists()


@pytest.mark.django_db
def test_a_wrong_code_is_refused_and_a_quote_does_not_use_the_code(till, payer, pay_code):
    code = pay_code(payer)
    assert authorise(till, "8" * 18).json()["code"] == "pay_code_invalid"
    quote = till.post("/api/v1/payments/quote/", {"pay_code": code, "bill_no": "B-1", "bill_amount": "100.00"},
                      format="json")
    assert quote.status_code == 200 and quote.json()["member"] == payer.pk
    assert PayCode.objects.get(member=payer).used_at is None
    assert authorise(till, code).status_code == 201


@pytest.mark.django_db(transaction=True)
def test_twenty_tills_presenting_one_code_at_once_one_succeeds(restaurant, payer):
    from mall.services_payments import pay_code_issue

    key_object, _key = PartnerKey.objects.create_key(name="till", business_unit=restaurant)
    code = pay_code_issue(member=payer).code
    barrier = threading.Barrier(20)
    outcomes = [None] * 20

    def worker(index):
        try:
            connection.ensure_connection()
            barrier.wait(timeout=WAIT_SECONDS)
            outcomes[index] = (True, payment_authorize(
                business_unit=restaurant, merchant=None, partner_key=key_object,
                idempotency=Idempotency(scope="partner:till", key=f"k{index}"), bill_no=f"B-{index}",
                bill_amount=__import__("decimal").Decimal("100.00"), pay_code=code, points=1000,
            ))
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcomes[index] = (False, exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_SECONDS)
    assert not any(thread.is_alive() for thread in threads)
    wins = [value for ok, value in outcomes if ok]
    losses = [value for ok, value in outcomes if not ok]
    assert len(wins) == 1 and not wins[0].replayed
    assert len(losses) == 19 and all(isinstance(exc, PayCodeInvalid) for exc in losses), losses
    assert Wallet.objects.get(member=payer).held == 1000 and Payment.objects.count() == 1
    assert ledger_problems() == {}


def test_codes_are_limited_per_member_with_a_429_throttled(monkeypatch, payer):
    from members.throttles import MemberScopedRateThrottle
    from tests.factories import enrol_member

    monkeypatch.setattr(MemberScopedRateThrottle, "THROTTLE_RATES", {"pay_code": "3/min"})
    client = member_client(payer)
    answers = [client.get("/api/v1/me/pay-code/") for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["code"] == "throttled" and int(answers[-1]["Retry-After"]) > 0
    assert PayCode.objects.filter(member=payer).count() == 3  # the refused request drew no code
    assert member_client(enrol_member()).get("/api/v1/me/pay-code/").status_code == 200  # per member


def test_the_schema_lists_throttled_for_the_pay_code(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "429" in schema["paths"]["/api/v1/me/pay-code/"]["get"]["responses"]

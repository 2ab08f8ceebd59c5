"""The bill's purchase earn names its payment with points: it earns on the cash part only
(unless the business unit's points part earns), and only for the member's captured payment."""

import pytest

from mall.models_payments import BusinessUnitPaymentSettings
from points.models import Posting, PostingKind
from tests.factories import enrol_member

pytestmark = pytest.mark.django_db


def paid(till, pay_code, payer, *, points=6000, capture=True) -> int:
    created = till.post("/api/v1/payments/", {"pay_code": pay_code(payer), "bill_no": "B-7", "bill_amount": "268.00",
                                              "points": points}, format="json", HTTP_IDEMPOTENCY_KEY="pay")
    payment_id = created.json()["payment"]["id"]
    if capture:
        till.post(f"/api/v1/payments/{payment_id}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="cap")
    return payment_id


def earn(till, payer, key="earn", **body):
    return till.post("/api/v1/transactions/earn/", {"member": payer.pk, "amount": "268.00", "receipt_no": "B-7", **body},
                     format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_the_earn_counts_the_cash_part_only(till, payer, pay_code, ledger_sound):
    payment_id = paid(till, pay_code, payer)
    response = earn(till, payer, payment=payment_id)
    assert response.status_code == 201, response.json()
    assert (response.json()["transaction"]["amount"], response.json()["points"]) == ("208.00", 208)
    ledger_sound()


def test_the_whole_bill_earns_when_the_points_part_earns(till, payer, pay_code, restaurant):
    BusinessUnitPaymentSettings.objects.filter(business_unit=restaurant).update(points_part_earns=True)
    payment_id = paid(till, pay_code, payer)
    assert earn(till, payer, payment=payment_id).json()["points"] == 268


def test_the_payment_must_be_the_members_captured_one_of_this_bill(till, parking, payer, pay_code):
    open_payment = paid(till, pay_code, payer, capture=False)
    cases = [
        (till, payer, {"payment": open_payment}, 409, "payment_not_captured"),
        (till, enrol_member(), {"payment": open_payment}, 409, "payment_member_mismatch"),
        (till, payer, {"payment": open_payment, "amount": "300.00"}, 409, "payment_not_captured"),
        (till, payer, {"payment": 999999}, 404, "not_found"),
    ]
    for number, (client, member, body, status, code) in enumerate(cases):
        response = earn(client, member, key=f"e{number}", **body)
        assert (response.status_code, response.json()["code"]) == (status, code), body
    till.post(f"/api/v1/payments/{open_payment}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="cap")
    mismatch = earn(till, payer, key="e9", payment=open_payment, amount="300.00")
    assert (mismatch.status_code, mismatch.json()["code"]) == (400, "bill_amount_mismatch")
    assert not Posting.objects.filter(kind=PostingKind.EARN, receipt_no="B-7").exists()


def refund(till, payment_id, points, key="refund"):
    response = till.post(f"/api/v1/payments/{payment_id}/refund/", {"points": points}, format="json",
                         HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.json()
    return response.json()["payment"]


def test_a_refund_of_points_before_the_earn_leaves_the_cash_parts_earn_unchanged(till, payer, pay_code, ledger_sound):
    """The 208.00 paid in cash stay paid: giving 1,000 points back is no cash, and earns nothing."""
    payment_id = paid(till, pay_code, payer)
    assert refund(till, payment_id, 1000)["earnable_amount_cny"] == "208.00"
    response = earn(till, payer, payment=payment_id)
    assert (response.json()["transaction"]["amount"], response.json()["points"]) == ("208.00", 208)
    ledger_sound()


def test_a_refund_of_points_after_the_earn_takes_nothing_of_it(till, payer, pay_code, ledger_sound):
    payment_id = paid(till, pay_code, payer)
    earned = earn(till, payer, payment=payment_id).json()
    refund(till, payment_id, 6000)
    assert not Posting.objects.filter(kind=PostingKind.REFUND).exists(), "the earn is not reversed"
    assert Posting.objects.get(pk=earned["transaction"]["id"]).points == 208
    ledger_sound()


def test_cash_given_back_is_the_reversal_of_the_purchase_earn_and_leaves_the_payment(till, payer, pay_code,
                                                                                    ledger_sound):
    """A dish paid in cash returned: 50.00 of the earn is reversed; the points part stays paid."""
    payment_id = paid(till, pay_code, payer)
    earned = earn(till, payer, payment=payment_id).json()
    reversed_ = till.post(f"/api/v1/transactions/{earned['transaction']['id']}/reverse/", {"points": 50},
                          format="json", HTTP_IDEMPOTENCY_KEY="cash-back")
    assert reversed_.status_code == 201, reversed_.json()
    payment = till.get(f"/api/v1/payments/{payment_id}/").json()
    assert (payment["status"], payment["captured_points"], payment["refunded_points"]) == ("captured", 6000, 0)
    ledger_sound()

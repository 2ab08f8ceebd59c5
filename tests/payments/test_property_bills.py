"""Property bills: posted idempotently by the property system, paid in part with points through
the payment flow, seen by the member with what points paid."""

import pytest

from mall.models_payments import Payment, PropertyBill
from points.models import Wallet
from tests.factories import OrganizationFactory, enrol_member, fund_organization, organization_admin
from tests.payments.conftest import member_client, partner_client

pytestmark = pytest.mark.django_db

BILL = {"bill_no": "PF-2026-05-1808", "unit": "T2-1808", "period": "2026-05", "amount_cny": "3280.00"}


@pytest.fixture
def property_system(property_bu):
    return partner_client(property_bu)


def post_bill(client, **body):
    return client.post("/api/v1/property/bills/", {**BILL, **body}, format="json")


def test_a_bill_is_posted_once_on_its_number(property_system, payer):
    first = post_bill(property_system, payer_member=payer.pk)
    assert first.status_code == 201, first.json()
    again = post_bill(property_system, payer_member=payer.pk)
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    changed = post_bill(property_system, payer_member=payer.pk, amount_cny="3300.00")
    assert (changed.status_code, changed.json()["code"]) == (409, "property_bill_conflict")
    assert PropertyBill.objects.count() == 1


@pytest.mark.parametrize("body", [{"amount_cny": "0"}, {"amount_cny": "1.001"}, {"amount_cny": "-5"}, {},
                                  {"payer_organization": "x", "payer_member": 1}])
def test_bad_bills_are_refused(property_system, payer, body):
    response = post_bill(property_system, **body)
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert not PropertyBill.objects.exists()


def test_only_a_property_business_unit_posts_bills(till, payer):
    response = post_bill(till, payer_member=payer.pk)
    assert (response.status_code, response.json()["code"]) == (403, "not_property_business_unit")


def test_a_bill_paid_in_part_with_points(property_system, property_bu, payer, pay_code, ledger_sound):
    from points.earning import points_earn

    points_earn(member_id=payer.pk, business_unit=property_bu, points=200000, reason="bills")
    post_bill(property_system, payer_member=payer.pk)
    pay = dict(bill_no=BILL["bill_no"], pay_code=pay_code(payer))
    quote = property_system.post("/api/v1/payments/quote/", pay, format="json").json()
    assert (quote["max_points"], quote["binding_limit"], quote["bill_amount"]) == (98400, "max_share", "3280.00")
    wrong = property_system.post("/api/v1/payments/", {**pay, "bill_amount": "100.00", "points": 1000},
                                 format="json", HTTP_IDEMPOTENCY_KEY="k0")
    assert (wrong.status_code, wrong.json()["code"]) == (400, "bill_amount_mismatch")
    too_much = property_system.post("/api/v1/payments/", {**pay, "points": 98500}, format="json",
                                    HTTP_IDEMPOTENCY_KEY="k1")
    assert (too_much.status_code, too_much.json()["code"]) == (400, "payment_limit_exceeded")
    paid = property_system.post("/api/v1/payments/", {**pay, "points": 50000}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    assert paid.status_code == 201, paid.json()
    assert paid.json()["payment"]["property_bill"] == BILL["bill_no"]
    payment_id = paid.json()["payment"]["id"]
    property_system.post(f"/api/v1/payments/{payment_id}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    property_system.post(f"/api/v1/payments/{payment_id}/refund/", {"points": 10000}, format="json",
                         HTTP_IDEMPOTENCY_KEY="r1")
    bills = member_client(payer).get("/api/v1/me/property-bills/").json()
    assert [(b["bill_no"], b["points_paid"], b["points_paid_cny"]) for b in bills] == [
        (BILL["bill_no"], 40000, "400.00")]
    ledger_sound()


def test_only_the_payer_pays_the_bill(property_system, payer, pay_code):
    post_bill(property_system, payer_member=payer.pk)
    neighbour = enrol_member(name="Neighbour")
    response = property_system.post("/api/v1/payments/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(neighbour),
                                                          "points": 100}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert (response.status_code, response.json()["code"]) == (409, "bill_payer_mismatch")
    assert not Payment.objects.exists() and Wallet.objects.get(member=neighbour).held == 0


def test_an_organizations_bill_takes_no_points_of_a_member_who_is_not_its_admin(property_system, payer, pay_code):
    company = OrganizationFactory(code="blue-ocean")
    employee = enrol_member(organization=company)
    assert post_bill(property_system, payer_organization=company.code).status_code == 201
    for member in (payer, employee):
        response = property_system.post("/api/v1/payments/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(member),
                                                              "points": 100}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
        assert response.json()["code"] == "bill_payer_mismatch"
    assert not Payment.objects.exists()


def test_an_admin_pays_the_organizations_bill_from_its_wallet_and_the_bill_earns_into_it(
    property_system, property_bu, pay_code, ledger_sound,
):
    company = OrganizationFactory(code="blue-ocean")
    fund_organization(company, 200000, property_bu)
    admin = organization_admin(company)
    post_bill(property_system, payer_organization=company.code)
    paid = property_system.post("/api/v1/payments/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(admin),
                                                      "points": 50000}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert paid.status_code == 201, paid.json()
    organization_wallet = Wallet.objects.get(organization=company)
    assert organization_wallet.held == 50000 and Wallet.objects.get(member=admin).held == 0
    assert paid.json()["balance"] == {"available": 150000, "held": 50000, "total": 200000}, "the wallet that pays"
    payment_id = paid.json()["payment"]["id"]
    pending = property_system.post(f"/api/v1/property/bills/{BILL['bill_no']}/earn/")
    assert (pending.status_code, pending.json()["code"]) == (409, "payment_pending")
    captured = property_system.post(f"/api/v1/payments/{payment_id}/capture/", {}, format="json",
                                    HTTP_IDEMPOTENCY_KEY="c1")
    assert captured.status_code == 201, captured.json()
    earned = property_system.post(f"/api/v1/property/bills/{BILL['bill_no']}/earn/")
    assert earned.status_code == 201, earned.json()
    # 3280.00 less the 500.00 paid with points earns at the BU's rate of 1 point per CNY
    assert (earned.json()["earned_by"], earned.json()["amount_cny"], earned.json()["points"]) == (
        "organization", "2780.00", 2780)
    again = property_system.post(f"/api/v1/property/bills/{BILL['bill_no']}/earn/")
    assert again.status_code == 200 and again.json()["replayed"] is True
    organization_wallet.refresh_from_db()
    assert (organization_wallet.balance, organization_wallet.held) == (200000 - 50000 + 2780, 0)
    ledger_sound()


def test_a_members_bill_earns_its_cash_part_into_the_members_wallet(property_system, property_bu, payer, pay_code):
    from points.earning import points_earn

    points_earn(member_id=payer.pk, business_unit=property_bu, points=100000, reason="bills")
    post_bill(property_system, payer_member=payer.pk)
    paid = property_system.post("/api/v1/payments/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(payer),
                                                      "points": 28000}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    property_system.post(f"/api/v1/payments/{paid.json()['payment']['id']}/capture/", {}, format="json",
                         HTTP_IDEMPOTENCY_KEY="c1")
    earned = property_system.post(f"/api/v1/property/bills/{BILL['bill_no']}/earn/").json()
    assert (earned["earned_by"], earned["amount_cny"], earned["points"]) == ("member", "3000.00", 3000)


def test_the_quote_of_an_organizations_bill_counts_the_organization_wallets_available_points(
    property_system, property_bu, pay_code,
):
    from points.earning import points_earn

    company = OrganizationFactory(code="blue-ocean")
    fund_organization(company, 30000, property_bu)
    admin = organization_admin(company)
    points_earn(member_id=admin.pk, business_unit=property_bu, points=90000, reason="the admin's own")
    post_bill(property_system, payer_organization=company.code)
    quote = property_system.post("/api/v1/payments/quote/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(admin)},
                                 format="json")
    assert quote.status_code == 200, quote.json()
    body = quote.json()
    assert (body["organization"], body["member"]) == ("blue-ocean", admin.pk)
    assert (body["max_points"], body["binding_limit"]) == (30000, "available_points")
    assert {limit["limit"]: limit["points"] for limit in body["limits"]}["available_points"] == 30000
    held = property_system.post("/api/v1/payments/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(admin),
                                                      "points": 10000}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert held.status_code == 201, held.json()
    again = property_system.post("/api/v1/payments/quote/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(admin)},
                                 format="json").json()
    assert (again["max_points"], again["max_amount_cny"]) == (20000, "200.00"), "the held points are not available"


def test_the_quote_of_a_members_own_bill_names_no_organization(property_system, property_bu, payer, pay_code):
    post_bill(property_system, payer_member=payer.pk)
    quote = property_system.post("/api/v1/payments/quote/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(payer)},
                                 format="json").json()
    assert (quote["organization"], quote["binding_limit"], quote["max_points"]) == (None, "available_points", 10000)


def test_an_employee_who_is_not_an_admin_gets_no_quote_for_the_organizations_bill(property_system, pay_code):
    company = OrganizationFactory(code="blue-ocean")
    employee = enrol_member(organization=company)
    post_bill(property_system, payer_organization=company.code)
    quote = property_system.post("/api/v1/payments/quote/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(employee)},
                                 format="json")
    assert (quote.status_code, quote.json()["code"]) == (409, "bill_payer_mismatch")


def test_a_property_bills_earn_is_its_cash_part_whatever_the_points_refunded(property_system, property_bu, payer,
                                                                            pay_code):
    from points.earning import points_earn

    points_earn(member_id=payer.pk, business_unit=property_bu, points=100000, reason="bills")
    post_bill(property_system, payer_member=payer.pk)
    paid = property_system.post("/api/v1/payments/", {"bill_no": BILL["bill_no"], "pay_code": pay_code(payer),
                                                      "points": 28000}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    payment_id = paid.json()["payment"]["id"]
    property_system.post(f"/api/v1/payments/{payment_id}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    property_system.post(f"/api/v1/payments/{payment_id}/refund/", {"points": 8000}, format="json",
                         HTTP_IDEMPOTENCY_KEY="r1")
    earned = property_system.post(f"/api/v1/property/bills/{BILL['bill_no']}/earn/").json()
    assert (earned["amount_cny"], earned["points"]) == ("3000.00", 3000)
    bills = member_client(payer).get("/api/v1/me/property-bills/").json()
    assert [(b["points_paid"], b["points_paid_cny"]) for b in bills] == [(20000, "200.00")], "what points paid, kept"

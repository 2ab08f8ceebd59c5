"""The members' API of transfers: an administrator's organization wallet and distributions,
and member-to-member transfers behind the group's setting, with their stable error codes."""

import pytest

from points.models import Posting, PostingKind
from tests.factories import OrganizationFactory, enrol_member, fund, fund_organization, organization_admin
from tests.payments.conftest import member_client as signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def company(bu):
    organization = OrganizationFactory(code="acme", name="Acme")
    fund_organization(organization, 2000, bu)
    return organization


def test_an_admin_sees_the_wallet_and_distributes_to_an_employee(company, ledger_sound):
    admin, employee = organization_admin(company), enrol_member(organization=company)
    client = signed_in(admin)
    seen = client.get("/api/v1/me/organization/").json()
    assert (seen["code"], seen["balance"]["available"]) == ("acme", 2000)
    body = {"member": employee.pk, "points": 500, "reason": "team award"}
    first = client.post("/api/v1/me/organization/distributions/", body, format="json", HTTP_IDEMPOTENCY_KEY="d-1")
    assert first.status_code == 201, first.json()
    assert (first.json()["points"], first.json()["transaction"]["points"], first.json()["balance"]["total"]) == (
        500, -500, 1500)
    again = client.post("/api/v1/me/organization/distributions/", body, format="json", HTTP_IDEMPOTENCY_KEY="d-1")
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert signed_in(employee).get("/api/v1/me/balance/").json()["available"] == 500
    assert Posting.objects.filter(kind=PostingKind.TRANSFER).count() == 2
    ledger_sound()


def test_distribution_refusals_have_stable_codes(company):
    admin, employee = organization_admin(company), enrol_member(organization=company)
    stranger = enrol_member()
    distribute = signed_in(admin).post
    cases = [
        (signed_in(employee).post, {"member": admin.pk, "points": 1}, 403, "not_organization_admin"),
        (distribute, {"member": stranger.pk, "points": 1}, 409, "not_an_employee"),
        (distribute, {"member": employee.pk, "points": 2001}, 409, "insufficient_points"),
        (distribute, {"member": employee.pk, "points": 0}, 400, "invalid"),
    ]
    for number, (post, body, status, code) in enumerate(cases):
        response = post("/api/v1/me/organization/distributions/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"k{number}")
        assert (response.status_code, response.json()["code"]) == (status, code), body
    assert signed_in(employee).get("/api/v1/me/organization/").json()["code"] == "not_organization_admin"
    assert not Posting.objects.filter(kind=PostingKind.TRANSFER).exists()


def test_member_transfers_answer_disabled_until_the_group_offers_them(settings, bu, ledger_sound):
    sender, recipient = enrol_member(), enrol_member()
    fund(sender, 1000, bu)
    client = signed_in(sender)
    body = {"recipient_phone": recipient.phone, "points": 300}
    refused = client.post("/api/v1/me/transfers/", body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    assert (refused.status_code, refused.json()["code"]) == (403, "transfers_disabled")
    settings.POINTS_MEMBER_TRANSFERS_ENABLED = True
    settings.POINTS_MEMBER_TRANSFER_DAILY_LIMIT = 500
    sent = client.post("/api/v1/me/transfers/", body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    assert sent.status_code == 201 and sent.json()["balance"]["available"] == 700
    over = client.post("/api/v1/me/transfers/", body, format="json", HTTP_IDEMPOTENCY_KEY="t-2")
    assert (over.status_code, over.json()["code"], over.json()["used"]) == (409, "transfer_limit_exceeded", 300)
    unknown = client.post("/api/v1/me/transfers/", {"recipient_phone": "100", "points": 1}, format="json",
                          HTTP_IDEMPOTENCY_KEY="t-3")
    assert (unknown.status_code, list(unknown.json()["fields"])) == (400, ["recipient_phone"])
    ledger_sound()

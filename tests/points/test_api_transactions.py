"""Partner API: enrolment and look-up, balance, earn / spend / reverse, idempotency, scoping
and validation. Every refused request is checked to have posted nothing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from members.models import Member, PartnerKey
from members.services import member_token_issue
from points.models import Posting, PostingKind
from points.earning import points_earn
from points.services import wallet_freeze
from tests.factories import MerchantFactory, OrganizationFactory, enrol_member

pytestmark = pytest.mark.django_db

EARN = "/api/v1/transactions/earn/"
SPEND = "/api/v1/transactions/spend/"


def reverse_url(posting_id):
    return f"/api/v1/transactions/{posting_id}/reverse/"


def earn(client, member, key="earn-1", amount="100.00", merchant="shop1", **extra):
    body = {"member": member.pk, "amount": amount, "merchant": merchant, "receipt_no": "R-1", **extra}
    return client.post(EARN, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def spend(client, member, points, key="spend-1", **extra):
    return client.post(SPEND, {"member": member.pk, "points": points, **extra}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def balance_total(member):
    member.wallet.refresh_from_db()
    return member.wallet.balance


def client_with(credentials):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=credentials)
    return client


# --- members -------------------------------------------------------------------------------


def test_enrol_then_look_up_by_phone_and_card(partner, bu):
    organization = OrganizationFactory(code="acme")
    response = partner.post(
        "/api/v1/members/",
        {"phone": "13912345678", "name": "Han Meimei", "birthday": "1991-02-03", "organization": "acme",
         "consent_sms": True},
        format="json",
    )
    assert response.status_code == 201, response.data
    member = Member.objects.get(pk=response.data["id"])
    assert (member.organization, member.enrolled_business_unit, member.consent_sms) == (organization, bu, True)
    assert response.data["organization"] == "acme"
    assert len(response.data["card_no"]) == 16
    assert member.wallet.balance == 0

    by_phone = partner.get("/api/v1/members/", {"phone": "13912345678"})
    assert by_phone.status_code == 200
    assert [m["id"] for m in by_phone.data["results"]] == [member.pk]
    by_card = partner.get("/api/v1/members/", {"card_no": member.card_no})
    assert [m["id"] for m in by_card.data["results"]] == [member.pk]
    assert partner.get("/api/v1/members/", {"phone": "13900000000"}).data["count"] == 0


def test_enrol_refuses_a_phone_twice(partner):
    assert partner.post("/api/v1/members/", {"phone": "13912345678"}, format="json").status_code == 201
    again = partner.post("/api/v1/members/", {"phone": "13912345678", "name": "Other"}, format="json")
    assert again.status_code == 409
    assert again.data["code"] == "phone_already_enrolled"
    assert Member.objects.filter(phone="13912345678").count() == 1


def test_enrol_validation_names_the_field(partner):
    response = partner.post(
        "/api/v1/members/", {"phone": "call me", "email": "nope", "organization": "nowhere"}, format="json"
    )
    assert response.status_code == 400
    assert response.data["code"] == "invalid"
    assert set(response.data["fields"]) == {"phone", "email", "organization"}
    assert not Member.objects.exists()


def test_enrol_with_unknown_referral_code(partner):
    response = partner.post("/api/v1/members/", {"phone": "13912345678", "referral_code": "ZZZZ9999"}, format="json")
    assert response.status_code == 400
    assert response.data["code"] == "invalid_referral_code"
    assert not Member.objects.exists()


def test_members_are_never_listed_without_a_lookup(partner, member):
    response = partner.get("/api/v1/members/")
    assert response.status_code == 400
    assert response.data["code"] == "invalid"
    assert "non_field_errors" in response.data["fields"]


# --- balance -------------------------------------------------------------------------------


def test_balance_shows_states_and_expiry(partner, bu, other_bu, member, partner_key):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("120.00"))
    other_bu.pending_days = 7
    other_bu.save()
    points_earn(member_id=member.pk, business_unit=other_bu, points=30)

    response = partner.get(f"/api/v1/members/{member.pk}/balance/")
    assert response.status_code == 200
    body = response.data
    assert (body["member"], body["total"], body["available"], body["pending"], body["frozen"], body["debt"]) == (
        member.pk, 150, 120, 30, 0, 0
    )
    assert sum(row["points"] for row in body["expiring"]) == 150

    # members are group-wide: a partner of another BU reads the same balance
    other = client_with(f"Api-Key {partner_key(other_bu)}")
    assert other.get(f"/api/v1/members/{member.pk}/balance/").data["total"] == 150


def test_balance_of_unknown_member_is_not_found(partner):
    response = partner.get("/api/v1/members/999999/balance/")
    assert response.status_code == 404
    assert response.data["code"] == "not_found"


# --- earn, spend, reverse ------------------------------------------------------------------


def test_earn_posts_and_answers_with_posting_and_balance(partner, bu, merchant, member, ledger_sound):
    response = earn(partner, member, amount="88.80")
    assert response.status_code == 201, response.data
    body = response.data
    assert body["replayed"] is False
    assert body["points"] == 88
    transaction = body["transaction"]
    assert (transaction["kind"], transaction["points"], transaction["business_unit"], transaction["merchant"]) == (
        "earn", 88, "mall", "shop1"
    )
    assert transaction["amount"] == "88.80"
    assert transaction["receipt_no"] == "R-1"
    assert [(step["rule"], step["effect"], step["points"]) for step in transaction["explanation"]] == [
        ("base_rate", "rate", 88)
    ]
    assert body["balance"]["available"] == 88
    assert Posting.objects.get().pk == transaction["id"]
    ledger_sound()


def test_earn_replay_returns_the_original_and_moves_nothing(partner, merchant, member, ledger_sound):
    first = earn(partner, member, key="pos-1")
    again = earn(partner, member, key="pos-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.data["replayed"] is True
    assert again.data["transaction"]["id"] == first.data["transaction"]["id"]
    assert again.data["balance"] == first.data["balance"]
    assert balance_total(member) == 100
    assert Posting.objects.count() == 1
    ledger_sound()


def test_same_key_with_another_request_is_a_conflict(partner, merchant, member):
    assert earn(partner, member, key="pos-1").status_code == 201
    conflict = earn(partner, member, key="pos-1", amount="100.01")
    assert conflict.status_code == 409
    assert conflict.data["code"] == "idempotency_conflict"
    assert Posting.objects.count() == 1
    assert balance_total(member) == 100


def test_keys_are_per_partner(partner, bu, merchant, member, partner_key):
    """Two partner keys may use the same Idempotency-Key without seeing each other's postings."""
    other = client_with(f"Api-Key {partner_key(bu)}")
    assert earn(partner, member, key="k").status_code == 201
    assert earn(other, member, key="k").status_code == 201
    assert balance_total(member) == 200


@pytest.mark.parametrize("header", [None, "", "   ", "x" * 129, "key\x00", "tab\tkey"])
def test_writes_require_an_idempotency_key(partner, merchant, member, header):
    extra = {} if header is None else {"HTTP_IDEMPOTENCY_KEY": header}
    body = {"member": member.pk, "amount": "10.00", "merchant": "shop1", "receipt_no": "R"}
    for url, data in [(EARN, body), (SPEND, {"member": member.pk, "points": 1})]:
        response = partner.post(url, data, format="json", **extra)
        assert response.status_code == 400
        assert response.data["code"] == "idempotency_key_required"
    assert not Posting.objects.exists()


def test_spend_and_insufficient_points(partner, merchant, member, ledger_sound):
    earn(partner, member, amount="50.00")
    too_much = spend(partner, member, 51, key="s-1")
    assert too_much.status_code == 409
    assert too_much.data["code"] == "insufficient_points"
    assert (too_much.data["available"], too_much.data["requested"]) == (50, 51)
    assert not Posting.objects.filter(kind=PostingKind.SPEND).exists()

    # the refused key was not stored: the same retry succeeds once affordable
    ok = spend(partner, member, 20, key="s-2", reason="parking")
    assert ok.status_code == 201
    assert (ok.data["points"], ok.data["transaction"]["kind"], ok.data["balance"]["available"]) == (-20, "spend", 30)
    assert balance_total(member) == 30
    ledger_sound()


def test_spend_from_a_frozen_account_is_refused(partner, merchant, member, operator):
    earn(partner, member)
    wallet_freeze(member_id=member.pk, reason="fraud check", actor=operator)
    response = spend(partner, member, 10)
    assert response.status_code == 409
    assert response.data["code"] == "account_frozen"
    assert not Posting.objects.filter(kind=PostingKind.SPEND).exists()
    assert balance_total(member) == 100


def test_reverse_earn_in_part_then_in_full(partner, merchant, member, ledger_sound):
    earned = earn(partner, member).data["transaction"]["id"]
    partial = partner.post(reverse_url(earned), {"points": 30, "reason": "one item returned"}, format="json",
                           HTTP_IDEMPOTENCY_KEY="r-1")
    assert partial.status_code == 201, partial.data
    assert (partial.data["transaction"]["kind"], partial.data["points"]) == ("refund", -30)
    assert partial.data["transaction"]["reverses"] == earned
    rest = partner.post(reverse_url(earned), {}, format="json", HTTP_IDEMPOTENCY_KEY="r-2")
    assert rest.status_code == 201
    assert rest.data["points"] == -70
    assert rest.data["balance"]["total"] == 0
    too_far = partner.post(reverse_url(earned), {"points": 1}, format="json", HTTP_IDEMPOTENCY_KEY="r-3")
    assert too_far.status_code == 409
    assert too_far.data["code"] == "reversal_exceeds_original"
    assert Posting.objects.filter(kind=PostingKind.REFUND).count() == 2
    ledger_sound()


def test_reverse_spend_gives_points_back_and_replays(partner, merchant, member, ledger_sound):
    earn(partner, member)
    spent = spend(partner, member, 40).data["transaction"]["id"]
    cancel = partner.post(reverse_url(spent), {}, format="json", HTTP_IDEMPOTENCY_KEY="c-1")
    assert cancel.status_code == 201
    assert (cancel.data["transaction"]["kind"], cancel.data["points"]) == ("cancel", 40)
    replay = partner.post(reverse_url(spent), {}, format="json", HTTP_IDEMPOTENCY_KEY="c-1")
    assert replay.status_code == 200
    assert replay.data["transaction"]["id"] == cancel.data["transaction"]["id"]
    assert balance_total(member) == 100
    ledger_sound()


def test_refund_after_spending_records_debt(partner, merchant, member, ledger_sound):
    earned = earn(partner, member).data["transaction"]["id"]
    spend(partner, member, 80)
    refund = partner.post(reverse_url(earned), {}, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
    assert refund.status_code == 201
    assert (refund.data["balance"]["total"], refund.data["balance"]["debt"]) == (0, 80)
    ledger_sound()


# --- history -------------------------------------------------------------------------------


def test_history_is_paginated_and_filterable(partner, merchant, member):
    earn(partner, member, key="e-1")
    earn(partner, member, key="e-2", amount="5.00")
    spend(partner, member, 10)
    url = f"/api/v1/members/{member.pk}/transactions/"
    everything = partner.get(url)
    assert everything.status_code == 200
    assert everything.data["count"] == 3
    assert [row["kind"] for row in partner.get(url, {"kind": "earn"}).data["results"]] == ["earn", "earn"]
    assert partner.get(url, {"page_size": 2}).data["next"] is not None
    future = (timezone.now() + timedelta(minutes=10)).isoformat()
    assert partner.get(url, {"occurred_after": future}).data["count"] == 0
    assert partner.get(url, {"occurred_before": future, "business_unit": "mall"}).data["count"] == 3
    bad = partner.get(url, {"kind": "gift", "occurred_after": "yesterday"})
    assert bad.status_code == 400
    assert set(bad.data["fields"]) == {"kind", "occurred_after"}


# --- scoping -------------------------------------------------------------------------------


def test_without_credentials_every_endpoint_refuses(member):
    anonymous = APIClient()
    for method, url in [
        ("get", "/api/v1/members/?phone=1"), ("get", f"/api/v1/members/{member.pk}/balance/"),
        ("get", f"/api/v1/members/{member.pk}/transactions/"), ("post", EARN), ("post", SPEND),
        ("post", reverse_url(1)), ("post", "/api/v1/transactions/earn/batch/"), ("get", "/api/v1/me/"),
    ]:
        response = getattr(anonymous, method)(url)
        assert response.status_code == 401, url
        assert response.data["code"] == "not_authenticated"
    wrong = client_with("Api-Key not.a-key")
    assert wrong.get(f"/api/v1/members/{member.pk}/balance/").data["code"] == "authentication_failed"


def test_partner_of_another_bu_cannot_see_or_reverse_postings(partner, other_bu, merchant, member, partner_key,
                                                              ledger_sound):
    earned = earn(partner, member).data["transaction"]["id"]
    hotel = client_with(f"Api-Key {partner_key(other_bu)}")
    history = hotel.get(f"/api/v1/members/{member.pk}/transactions/")
    assert history.status_code == 200
    assert history.data["count"] == 0
    assert hotel.get(f"/api/v1/members/{member.pk}/transactions/", {"business_unit": "mall"}).data["count"] == 0

    refused = hotel.post(reverse_url(earned), {}, format="json", HTTP_IDEMPOTENCY_KEY="steal")
    assert refused.status_code == 404
    assert refused.data["code"] == "not_found"
    assert Posting.objects.count() == 1
    assert balance_total(member) == 100
    ledger_sound()


def test_merchant_scoped_key_books_to_its_merchant_only(bu, merchant, member, partner_key):
    other_merchant = MerchantFactory(business_unit=bu, code="shop2")
    shop2 = client_with(f"Api-Key {partner_key(bu, merchant=other_merchant)}")

    refused = earn(shop2, member, key="x", merchant="shop1")
    assert refused.status_code == 403
    assert refused.data["code"] == "merchant_not_permitted"
    assert not Posting.objects.exists()

    implicit = earn(shop2, member, key="y", merchant="")
    assert implicit.status_code == 201, implicit.data
    assert implicit.data["transaction"]["merchant"] == "shop2"

    shop1 = client_with(f"Api-Key {partner_key(bu, merchant=merchant)}")
    other_merchants = shop1.post(reverse_url(implicit.data["transaction"]["id"]), {}, format="json",
                                 HTTP_IDEMPOTENCY_KEY="r")
    assert other_merchants.status_code == 403
    assert other_merchants.data["code"] == "merchant_not_permitted"
    assert Posting.objects.count() == 1


def test_member_token_cannot_use_partner_endpoints(merchant, member):
    as_member = client_with(f"Bearer {member_token_issue(member=member)}")
    for response in [
        as_member.get(f"/api/v1/members/{member.pk}/balance/"),
        earn(as_member, member),
        as_member.post("/api/v1/members/", {"phone": "13912345678"}, format="json"),
    ]:
        assert response.status_code == 403
        assert response.data["code"] == "permission_denied"
    assert not Posting.objects.exists()


def test_partner_key_cannot_use_member_endpoints(partner):
    for url in ["/api/v1/me/", "/api/v1/me/balance/", "/api/v1/me/transactions/"]:
        response = partner.get(url)
        assert response.status_code == 403
        assert response.data["code"] == "permission_denied"


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "-5.00"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "10.001"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "1e400"}, "amount"),
        ({"merchant": "nosuchshop"}, "merchant"),
        ({"member": 2**64}, "member"),
        ({"member": "abc"}, "member"),
        ({"receipt_no": ""}, "receipt_no"),
        ({"occurred_at": "last tuesday"}, "occurred_at"),
    ],
)
def test_earn_validation_names_the_field(partner, merchant, member, body, field):
    response = partner.post(
        EARN, {"member": member.pk, "amount": "10.00", "merchant": "shop1", "receipt_no": "R", **body},
        format="json", HTTP_IDEMPOTENCY_KEY="v",
    )
    assert response.status_code == 400, response.data
    assert response.data["code"] == "invalid"
    assert field in response.data["fields"]
    assert not Posting.objects.exists()


@pytest.mark.parametrize(("points", "field"), [(0, "points"), (-3, "points"), (1.5, "points"), (2**63, "points")])
def test_spend_validation_names_the_field(partner, member, points, field):
    response = spend(partner, member, points)
    assert response.status_code == 400
    assert field in response.data["fields"]
    assert not Posting.objects.exists()


def test_unknown_member_is_not_found(partner, merchant):
    response = partner.post(
        EARN, {"member": 987654321, "amount": "10.00", "merchant": "shop1", "receipt_no": "R"}, format="json",
        HTTP_IDEMPOTENCY_KEY="u",
    )
    assert response.status_code == 404
    assert response.data["code"] == "not_found"
    assert partner.post(reverse_url(2**62), {}, format="json", HTTP_IDEMPOTENCY_KEY="u2").status_code == 404
    assert not Posting.objects.exists()


def test_malformed_json_and_future_dates_are_refused(partner, merchant, member):
    broken = partner.post(EARN, "{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY="j")
    assert broken.status_code == 400
    assert broken.data["code"] == "parse_error"
    future = (timezone.now() + timedelta(days=2)).isoformat()
    late = earn(partner, member, key="f", occurred_at=future)
    assert late.status_code == 400
    assert late.data["code"] == "invalid_occurred_at"
    listed = partner.post(EARN, [1, 2], format="json", HTTP_IDEMPOTENCY_KEY="l")
    assert listed.status_code == 400
    assert not Posting.objects.exists()


def test_earn_for_a_closed_member_is_refused(partner, merchant):
    closed = enrol_member(name="Gone")
    Member.objects.filter(pk=closed.pk).update(status="closed")
    response = earn(partner, closed)
    assert response.status_code == 409
    assert response.data["code"] == "member_inactive"
    assert not Posting.objects.exists()


def _edit_key(prefix: str, **fields) -> None:
    """As an operator's edit in the console: a model save, which the key cache sees at once."""
    api_key = PartnerKey.objects.get(prefix=prefix)
    for name, value in fields.items():
        setattr(api_key, name, value)
    api_key.save()


def test_revoked_expired_and_inactive_keys_are_refused(bu, member, partner_key):
    key = partner_key(bu)
    client = client_with(f"Api-Key {key}")
    url = f"/api/v1/members/{member.pk}/balance/"
    assert client.get(url).status_code == 200

    prefix = key.partition(".")[0]
    _edit_key(prefix, expiry_date=timezone.now() - timedelta(seconds=1))
    assert client.get(url).data["code"] == "authentication_failed"
    _edit_key(prefix, expiry_date=None, revoked=True)
    assert client.get(url).data["code"] == "authentication_failed"
    client = client_with(f"Api-Key {partner_key(bu)}")
    assert client.get(url).status_code == 200
    bu.is_active = False
    bu.save()
    response = client.get(url)
    assert response.status_code == 401
    assert response.data["code"] == "authentication_failed"
    assert client_with(f"Api-Key {prefix}.wrong-secret").get(url).status_code == 401

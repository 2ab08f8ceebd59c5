"""The read endpoints: a member's balance and history answer as documented, in as few
statements as the answer needs (the page before its count, the wallet found with the page)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.serializers import Serializer
from rest_framework.test import APIClient

from config.middleware import BrowserAuthenticationMiddleware, BrowserMessageMiddleware, BrowserSessionMiddleware
from members.services import member_token_issue
from points.api.serializers import BalanceSerializer, TransactionSerializer
from points.models import EventType, Posting, Wallet
from points.selectors import member_balance, wallet_balance
from points.earning import points_earn
from points.services import points_spend, posting_reverse, wallet_freeze
from tests.factories import MerchantFactory, enrol_member

pytestmark = pytest.mark.django_db


def as_json(data) -> bytes:
    """The body as sent: tells 150 from Decimal("150") and keeps the keys' order."""
    return JSONRenderer().render(data)


def client_of(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def history_url(member):
    return f"/api/v1/members/{member.pk}/transactions/"


def ledger_statements(queries) -> list[str]:
    """The statements of a request that read the ledger (not the caller's credentials)."""
    return [q["sql"] for q in queries if re.search(r"\bpoints_", q["sql"])]


def earn_points(member, bu, points, **extra):
    return points_earn(member_id=member.pk, business_unit=bu, points=points, **extra).posting


# --- balance -------------------------------------------------------------------------------


def test_member_balance_equals_the_wallet_balance_in_every_state(bu, other_bu, member):
    assert member_balance(member_id=member.pk) == wallet_balance(wallet=member.wallet)  # no lots at all
    earn_points(member, bu, 120)
    other_bu.pending_days = 7
    other_bu.expiry_months = 1
    other_bu.save()
    earn_points(member, other_bu, 30)
    points_spend(member_id=member.pk, points=20, business_unit=bu)
    for now in [timezone.now(), timezone.now() + timedelta(days=10), timezone.now() + timedelta(days=60)]:
        wallet = Wallet.objects.get(member=member)
        assert member_balance(member_id=member.pk, now=now) == wallet_balance(wallet=wallet, now=now)

    # 60 days on, the hotel's 30 points are past expiry and the mall's 100 still spendable
    later = member_balance(member_id=member.pk, now=timezone.now() + timedelta(days=60))
    numbers = [later.total, later.available, later.pending, later.frozen, later.expired_unswept, later.debt]
    assert all(type(number) is int for number in numbers + [row["points"] for row in later.expiring])
    assert (later.total, later.available, later.pending, later.expired_unswept) == (130, 100, 0, 30)
    wallet_freeze(member_id=member.pk, reason="checking a complaint")
    now = timezone.now()
    frozen = member_balance(member_id=member.pk, now=now)
    assert (frozen.available, frozen.frozen, frozen.pending) == (0, 100, 30)
    assert frozen == wallet_balance(wallet=Wallet.objects.get(member=member), now=now)


def test_member_balance_of_a_member_without_wallet_is_none(db):
    assert member_balance(member_id=987654321) is None


def test_balance_representation_is_drfs_field_by_field(bu, other_bu, member):
    other_bu.pending_days = 3
    other_bu.expiry_months = 1
    other_bu.save()
    earn_points(member, bu, 120)
    earn_points(member, other_bu, 30)
    serializer = BalanceSerializer()
    for member_id, expiry_dates in [(member.pk, 2), (enrol_member(name="New").pk, 0)]:
        body = {"member": member_id, **vars(member_balance(member_id=member_id))}
        written_out = serializer.to_representation(body)
        assert as_json(written_out) == as_json(Serializer.to_representation(serializer, body))
        assert len(written_out["expiring"]) == expiry_dates


def test_balance_reads_the_ledger_in_one_statement(partner, bu, member):
    earn_points(member, bu, 50)
    with CaptureQueriesContext(connection) as queries:
        response = partner.get(f"/api/v1/members/{member.pk}/balance/")
    assert response.status_code == 200
    assert (response.data["total"], response.data["available"]) == (50, 50)
    assert len(ledger_statements(queries)) == 1


def test_member_reads_own_balance_and_history(bu, member):
    earn_points(member, bu, 40)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {member_token_issue(member=member)}")
    balance = client.get("/api/v1/me/balance/")
    assert (balance.status_code, balance.data["member"], balance.data["available"]) == (200, member.pk, 40)
    history = client.get("/api/v1/me/transactions/")
    assert (history.data["count"], history.data["results"][0]["points"]) == (1, 40)


# --- history -------------------------------------------------------------------------------


def test_history_rows_show_every_documented_field(partner, bu, member):
    shop = MerchantFactory(business_unit=bu, code="shop9")
    earned = points_earn(member_id=member.pk, business_unit=bu, merchant=shop, amount_cny=Decimal("12.50"),
                         receipt_no="R-77").posting
    refund = posting_reverse(posting_id=earned.pk, points=5, reason="one item back", business_unit=bu).posting
    rows = partner.get(history_url(member)).data["results"]
    assert [row["id"] for row in rows] == [refund.pk, earned.pk]
    assert rows[0] | {"occurred_at": None, "created_at": None} == {
        "id": refund.pk, "kind": "refund", "points": -5, "business_unit": "mall", "merchant": "shop9",
        "amount": None, "event_type": "", "receipt_no": "", "reason": "one item back", "occurred_at": None,
        "created_at": None, "explanation": [], "reverses": earned.pk,
    }
    assert (rows[1]["amount"], rows[1]["event_type"], rows[1]["receipt_no"], rows[1]["reverses"], rows[1]["kind"]) == (
        "12.50", "purchase", "R-77", None, "earn")
    assert rows[1]["explanation"][0]["points"] == 12
    assert rows[1]["occurred_at"] == timezone.localtime(earned.occurred_at).isoformat()


def test_history_of_an_unknown_member_is_not_found(partner):
    for params in [{}, {"kind": "earn"}, {"page": 2}]:
        response = partner.get("/api/v1/members/987654321/transactions/", params)
        assert response.status_code == 404, params
        assert response.data["code"] == "not_found"


def test_short_history_is_one_statement_without_count(partner, bu, member):
    for points in (10, 20, 30):
        earn_points(member, bu, points)
    with CaptureQueriesContext(connection) as queries:
        response = partner.get(history_url(member))
    assert (response.data["count"], response.data["next"], response.data["previous"]) == (3, None, None)
    assert [row["points"] for row in response.data["results"]] == [30, 20, 10]
    statements = ledger_statements(queries)
    assert len(statements) == 1
    assert "COUNT(" not in statements[0]


def test_empty_history_of_a_known_member_is_an_empty_page(partner, member):
    response = partner.get(history_url(member))
    assert (response.status_code, response.data["count"], response.data["results"]) == (200, 0, [])


def test_history_pages_count_exactly(partner, bu, member):
    for points in range(1, 6):
        earn_points(member, bu, points)
    url = history_url(member)

    full = partner.get(url, {"page_size": 2})
    assert (full.data["count"], [row["points"] for row in full.data["results"]]) == (5, [5, 4])
    assert full.data["next"].endswith("page=2&page_size=2") and full.data["previous"] is None
    middle = partner.get(url, {"page_size": 2, "page": 2})
    assert (middle.data["count"], middle.data["next"] is not None, middle.data["previous"] is not None) == (5, True, True)
    last = partner.get(url, {"page_size": 2, "page": 3})
    assert (last.data["count"], [row["points"] for row in last.data["results"]], last.data["next"]) == (5, [1], None)
    by_name = partner.get(url, {"page_size": 2, "page": "last"})
    assert by_name.data["results"] == last.data["results"]
    exact = partner.get(url, {"page_size": 5})
    assert (exact.data["count"], exact.data["next"]) == (5, None)

    for page in ["4", str(2**80), "9" * 5000]:  # past the last, however far: never an offset the database refuses
        response = partner.get(url, {"page_size": 2, "page": page})
        assert (response.status_code, response.data["code"]) == (404, "not_found"), page
    for page in ["0", "-1", "abc", "1.5", ""]:
        response = partner.get(url, {"page_size": 2, "page": page})
        assert (response.status_code, response.data["code"], list(response.data["fields"])) == (400, "invalid", ["page"])
    assert partner.get(url, {"page_size": 5, "page": 2}).status_code == 404


def test_history_filters_apply_with_pagination(partner, bu, member):
    earn_points(member, bu, 10)
    points_spend(member_id=member.pk, points=3, business_unit=bu)
    url = history_url(member)
    spent = partner.get(url, {"kind": "spend", "page_size": 1})
    assert (spent.data["count"], spent.data["results"][0]["points"]) == (1, -3)
    assert partner.get(url, {"kind": "earn", "page": 2}).status_code == 404
    assert partner.get(url, {"kind": "refund"}).data == {"count": 0, "next": None, "previous": None, "results": []}


def test_plain_sql_history_equals_the_filtered_queryset(bu, other_bu, member, partner_key):
    """Unfiltered pages are read in plain SQL, filtered ones through the ORM: a filter that keeps
    everything must answer the same pages, at one business unit and at all of them."""
    shop = MerchantFactory(business_unit=bu, code="shop9")
    same_instant = timezone.now() - timedelta(hours=1)
    earned = points_earn(member_id=member.pk, business_unit=bu, merchant=shop, amount_cny=Decimal("30.00"),
                         receipt_no="R-1", occurred_at=same_instant).posting
    earn_points(member, bu, 7, occurred_at=same_instant)
    earn_points(member, other_bu, 5)
    points_spend(member_id=member.pk, points=4, business_unit=bu, merchant=shop)
    posting_reverse(posting_id=earned.pk, points=10, business_unit=bu)
    earn_points(enrol_member(name="Someone else"), bu, 99)
    as_member = APIClient()
    as_member.credentials(HTTP_AUTHORIZATION=f"Bearer {member_token_issue(member=member)}")
    everything = (timezone.now() + timedelta(minutes=5)).isoformat()
    for client, url, rows in [(client_of(partner_key(bu)), history_url(member), 4),
                              (as_member, "/api/v1/me/transactions/", 5)]:
        for params in [{}, {"page_size": 2}, {"page_size": 2, "page": 2}, {"page_size": 2, "page": "last"}]:
            plain = client.get(url, params)
            filtered = client.get(url, {**params, "occurred_before": everything})
            assert plain.status_code == filtered.status_code == 200
            assert plain.data["count"] == filtered.data["count"] == rows
            assert plain.data["results"] == filtered.data["results"], params
        assert {row["business_unit"] for row in client.get(url).data["results"]} <= {"mall", "hotel"}


def test_transaction_representation_is_drfs_field_by_field(bu, member):
    """The serializers write their representation out for speed: it must stay what DRF's generic
    loop over the declared fields gives, for every kind of posting and every empty field."""
    shop = MerchantFactory(business_unit=bu, code="shop9")
    earned = points_earn(member_id=member.pk, business_unit=bu, merchant=shop, amount_cny=Decimal("12.345"),
                         receipt_no="R-5", event_type=EventType.PURCHASE).posting
    spent = points_spend(member_id=member.pk, points=3, business_unit=bu, reason="parking").posting
    refund = posting_reverse(posting_id=earned.pk, points=2, business_unit=bu).posting
    group_wide = Posting(id=10**12, kind="adjust", points=-1, business_unit=None, merchant=None, amount_cny=None,
                         explanation=[{"rule": "manual", "points": -1, "extra": "kept"}],
                         occurred_at=timezone.now(), created_at=timezone.now())
    postings = [*Posting.objects.select_related("business_unit", "merchant"), group_wide]
    assert {posting.kind for posting in postings} == {"earn", "spend", "refund", "adjust"}
    assert spent in postings and refund in postings
    serializer = TransactionSerializer()
    for posting in postings:
        written_out = serializer.to_representation(posting)
        assert as_json(written_out) == as_json(Serializer.to_representation(serializer, posting)), posting.kind
    assert serializer.to_representation(earned)["event_type"] == "purchase"


def test_other_members_postings_stay_out_of_the_history(partner, bu, member):
    other = enrol_member(name="Han Meimei")
    earn_points(other, bu, 70)
    earn_points(member, bu, 10)
    response = partner.get(history_url(member))
    assert [row["points"] for row in response.data["results"]] == [10]


# --- middleware ----------------------------------------------------------------------------


def test_api_requests_skip_sessions_users_and_messages(partner, member, admin_client):
    seen = []
    handler = BrowserMessageMiddleware(lambda request: seen.append(request) or HttpResponse())
    chain = BrowserSessionMiddleware(BrowserAuthenticationMiddleware(handler))
    chain(RequestFactory().get(f"/api/v1/members/{member.pk}/balance/"))
    chain(RequestFactory().get("/admin/"))
    api, console = seen
    assert not any(hasattr(api, name) for name in ("session", "user", "_messages"))
    assert all(hasattr(console, name) for name in ("session", "user", "_messages"))

    response = partner.get(f"/api/v1/members/{member.pk}/balance/")
    assert response.status_code == 200
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert admin_client.get("/admin/").status_code == 200


@pytest.mark.parametrize(("language", "detail"), [("en", "Not found."), ("zh-hans", "未找到。")])
def test_api_errors_speak_the_callers_language(partner, language, detail):
    response = partner.get("/api/v1/members/987654321/balance/", HTTP_ACCEPT_LANGUAGE=language)
    assert (response.status_code, response.data["code"], response.data["detail"]) == (404, "not_found", detail)
    assert response["Content-Language"] == language

"""The partner API of holds: place, read, capture (all or part), void, with their errors."""

from datetime import timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from points.earning import points_earn
from points.models import Hold, HoldStatus, Posting, PostingKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def rich(member, bu):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("1000"))
    return member


def place(partner, member, key="h1", **body):
    return partner.post("/api/v1/holds/", {"member": member.pk, "points": 300, "purpose": "pos_bill", **body},
                        format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_place_replay_and_the_balance_shows_the_points_held(partner, rich, ledger_sound):
    first = place(partner, rich, reference="B-1")
    assert first.status_code == 201, first.json()
    body = first.json()
    assert (body["hold"]["status"], body["hold"]["points"], body["hold"]["reference"]) == ("held", 300, "B-1")
    assert (body["balance"]["held"], body["balance"]["available"], body["balance"]["total"]) == (300, 700, 1000)
    again = place(partner, rich, reference="B-1")
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["hold"]["id"] == body["hold"]["id"]
    assert Hold.objects.count() == 1
    conflict = place(partner, rich, reference="B-2")
    assert (conflict.status_code, conflict.json()["code"]) == (409, "idempotency_conflict")
    ledger_sound()


def test_more_than_available_is_refused_with_the_figures(partner, rich):
    response = place(partner, rich, points=1001)
    assert response.status_code == 409
    assert response.json() == {"code": "insufficient_points", "detail": response.json()["detail"],
                               "available": 1000, "requested": 1001}
    assert not Hold.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"points": 0}, "points"), ({"points": "ten"}, "points"), ({"purpose": ""}, "purpose"),
    ({"expires_in": 0}, "expires_in"), ({"expires_in": 10**7}, "expires_in"), ({"expires_in": 10**30}, "expires_in"),
    ({"reference": "x" * 65}, "reference"),
])
def test_bad_input_is_a_400_naming_the_field_and_holds_nothing(partner, rich, body, field):
    response = place(partner, rich, **body)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]
    assert not Hold.objects.exists()


def test_partial_capture_spends_part_and_releases_the_rest_once(partner, rich, ledger_sound):
    hold_id = place(partner, rich).json()["hold"]["id"]
    url = f"/api/v1/holds/{hold_id}/capture/"
    captured = partner.post(url, {"points": 120}, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    assert captured.status_code == 201, captured.json()
    body = captured.json()
    assert (body["hold"]["status"], body["hold"]["captured"], body["transaction"]["points"]) == ("captured", 120, -120)
    assert (body["balance"]["held"], body["balance"]["available"], body["balance"]["total"]) == (0, 880, 880)
    replay = partner.post(url, {"points": 120}, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    assert replay.status_code == 200 and replay.json()["transaction"]["id"] == body["transaction"]["id"]
    twice = partner.post(url, {"points": 10}, format="json", HTTP_IDEMPOTENCY_KEY="c2")
    assert (twice.status_code, twice.json()["code"]) == (409, "hold_resolved")
    assert Posting.objects.filter(kind=PostingKind.SPEND).count() == 1
    ledger_sound()


def test_capture_more_than_held_and_void_then_capture(partner, rich, ledger_sound):
    hold_id = place(partner, rich).json()["hold"]["id"]
    over = partner.post(f"/api/v1/holds/{hold_id}/capture/", {"points": 301}, format="json", HTTP_IDEMPOTENCY_KEY="c")
    assert over.json() == {"code": "capture_exceeds_hold", "detail": over.json()["detail"], "held": 300,
                           "requested": 301}
    voided = partner.post(f"/api/v1/holds/{hold_id}/void/", {}, format="json")
    assert voided.status_code == 200 and voided.json()["hold"]["status"] == "voided"
    assert voided.json()["balance"]["available"] == 1000
    again = partner.post(f"/api/v1/holds/{hold_id}/void/", {}, format="json")
    assert again.status_code == 200 and again.json()["replayed"] is True
    late = partner.post(f"/api/v1/holds/{hold_id}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="c3")
    assert (late.status_code, late.json()["code"]) == (409, "hold_resolved")
    ledger_sound()


def test_a_hold_past_its_expiry_reads_expired_and_cannot_be_captured(partner, rich, ledger_sound):
    hold_id = place(partner, rich).json()["hold"]["id"]
    Hold.objects.filter(pk=hold_id).update(expires_at=Hold.objects.get(pk=hold_id).created_at - timedelta(seconds=1))
    read = partner.get(f"/api/v1/holds/{hold_id}/")
    assert read.json()["status"] == "expired"
    balance = partner.get(f"/api/v1/members/{rich.pk}/balance/").json()
    assert (balance["held"], balance["available"]) == (0, 1000), "a read never shows an expired hold as held"
    capture = partner.post(f"/api/v1/holds/{hold_id}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="c")
    assert (capture.status_code, capture.json()["code"]) == (409, "hold_expired")
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.HELD, "the refusal wrote nothing; the sweep releases it"
    ledger_sound()


def test_another_business_units_hold_is_not_found(partner, rich, other_bu, partner_key):
    hold_id = place(partner, rich).json()["hold"]["id"]
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Api-Key {partner_key(other_bu)}")
    assert stranger.get(f"/api/v1/holds/{hold_id}/").status_code == 404
    capture = stranger.post(f"/api/v1/holds/{hold_id}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="x")
    assert capture.status_code == 404
    assert stranger.post(f"/api/v1/holds/{hold_id}/void/", {}, format="json").status_code == 404
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.HELD


def test_a_hold_placed_by_an_app_for_its_own_rows_is_not_the_holds_apis(partner, rich, bu):
    """A hold placed without a partner's key (an app's, of a purpose it does not reserve): the
    holds API neither shows nor moves it."""
    from points.ledger import hold_place

    app_hold = hold_place(member_id=rich.pk, points=100, business_unit=bu, purpose="kiosk").hold
    assert partner.get(f"/api/v1/holds/{app_hold.pk}/").status_code == 404
    capture = partner.post(f"/api/v1/holds/{app_hold.pk}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="x")
    assert capture.status_code == 404
    assert partner.post(f"/api/v1/holds/{app_hold.pk}/void/", {}, format="json").status_code == 404
    assert Hold.objects.get(pk=app_hold.pk).status == HoldStatus.HELD


def test_a_reserved_purpose_is_refused_when_placing_and_nothing_is_held(partner, rich):
    """`payment` is mall's (its AppConfig.ready registers it): a partner cannot place such a hold."""
    response = place(partner, rich, purpose="payment")
    assert response.status_code == 409, response.json()
    assert (response.json()["code"], response.json()["purpose"]) == ("hold_reserved", "payment")
    assert not Hold.objects.exists()

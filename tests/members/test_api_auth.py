"""Member sign-in (one-time code by SMS, bearer token, revocation) and the member endpoints."""

import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from members.models import MemberToken, OneTimeCode
from members.services import member_token_issue
from points.earning import points_earn
from points.services import points_spend
from tests.factories import enrol_member

pytestmark = pytest.mark.django_db

PHONE = "13700001111"


@pytest.fixture(autouse=True)
def sms_outbox(settings, tmp_path):
    """Codes go to a file; the client throttles start empty for every test."""
    settings.SMS_BACKEND = "members.sms.FileSmsBackend"
    settings.SMS_FILE_PATH = str(tmp_path / "sms" / "outbox.jsonl")
    settings.OTP_MAX_PER_PHONE_PER_HOUR = 3
    settings.OTP_MAX_ATTEMPTS = 3
    cache.clear()
    return tmp_path / "sms" / "outbox.jsonl"


def sent(outbox) -> list[dict]:
    return [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []


def last_code(outbox, phone=PHONE) -> str:
    message = [sms for sms in sent(outbox) if sms["phone"] == phone][-1]["message"]
    return re.search(r"\b(\d{6})\b", message).group(1)


def request_code(client, phone=PHONE):
    return client.post("/api/v1/auth/otp/", {"phone": phone}, format="json")


def sign_in(client, code, phone=PHONE):
    return client.post("/api/v1/auth/token/", {"phone": phone, "code": code}, format="json")


def bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_sign_in_with_a_code_then_use_and_revoke_the_token(sms_outbox):
    member = enrol_member(phone=PHONE, name="Wang Fang")
    client = APIClient()
    sent_response = request_code(client)
    assert sent_response.status_code == 202
    assert sent_response.data["expires_in"] == 300
    code = last_code(sms_outbox)
    stored = OneTimeCode.objects.get(phone=PHONE)
    assert code not in stored.code_hash

    signed_in = sign_in(client, code)
    assert signed_in.status_code == 200, signed_in.data
    assert signed_in.data["member"]["id"] == member.pk
    assert signed_in.data["expires_at"]
    token = signed_in.data["token"]
    assert not MemberToken.objects.filter(key_hash=token).exists()  # only the hash is stored

    as_member = bearer(token)
    assert as_member.get("/api/v1/me/").data["phone"] == PHONE

    assert sign_in(client, code).data["code"] == "invalid_code"  # single use

    assert as_member.post("/api/v1/auth/token/revoke/").status_code == 204
    refused = as_member.get("/api/v1/me/")
    assert refused.status_code == 401
    assert refused.data["code"] == "authentication_failed"


def test_unknown_phone_gets_the_same_answer_and_no_sms(sms_outbox):
    enrol_member(phone=PHONE)
    enrolled = request_code(APIClient())
    stranger = request_code(APIClient(), phone="13700009999")
    assert (enrolled.status_code, stranger.status_code) == (202, 202)
    assert enrolled.data == stranger.data
    assert [sms["phone"] for sms in sent(sms_outbox)] == [PHONE]
    assert sign_in(APIClient(), "123456", phone="13700009999").data["code"] == "invalid_code"


def test_codes_per_phone_are_rate_limited_for_every_phone(sms_outbox):
    enrol_member(phone=PHONE)
    client = APIClient()
    for phone in (PHONE, "13700009999"):  # an unknown phone is limited alike, so the limit reveals nothing
        assert [request_code(client, phone).status_code for _ in range(3)] == [202, 202, 202]
        limited = request_code(client, phone)
        assert limited.status_code == 429
        assert limited.data["code"] == "otp_rate_limited"
    assert len(sent(sms_outbox)) == 3
    assert OneTimeCode.objects.count() == 6

    # an hour later the phone may ask again
    OneTimeCode.objects.filter(phone=PHONE).update(created_at=timezone.now() - timedelta(hours=1, seconds=1))
    assert request_code(client).status_code == 202


def test_wrong_codes_burn_the_code(sms_outbox):
    enrol_member(phone=PHONE)
    client = APIClient()
    request_code(client)
    code = last_code(sms_outbox)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(3):
        response = sign_in(client, wrong)
        assert response.status_code == 400
        assert response.data["code"] == "invalid_code"
    assert OneTimeCode.objects.get().attempts == 3
    assert sign_in(client, code).data["code"] == "invalid_code"  # right code, but too late
    assert not MemberToken.objects.exists()


def test_expired_code_and_superseded_code_are_refused(sms_outbox, monkeypatch):
    codes = iter([111111, 222222, 333333])
    monkeypatch.setattr("members.services.secrets.randbelow", lambda _bound: next(codes))
    enrol_member(phone=PHONE)
    client = APIClient()
    request_code(client)
    assert last_code(sms_outbox) == "111111"
    OneTimeCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert sign_in(client, "111111").data["code"] == "invalid_code"

    request_code(client)
    request_code(client)
    assert last_code(sms_outbox) == "333333"
    assert sign_in(client, "222222").data["code"] == "invalid_code"  # only the latest code counts
    assert sign_in(client, "333333").status_code == 200


def test_malformed_sign_in_input_names_the_field():
    client = APIClient()
    assert set(request_code(client, phone="not a phone").data["fields"]) == {"phone"}
    response = sign_in(client, "12ab", phone="1370000")
    assert response.status_code == 400
    assert set(response.data["fields"]) == {"code"}
    assert not OneTimeCode.objects.exists()


def test_sign_in_endpoints_are_throttled_per_client(monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"otp": "10/min", "token": "2/min"})
    client = APIClient()
    statuses = [sign_in(client, "123456").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    assert sign_in(client, "123456").data["code"] == "throttled"


def test_expired_token_is_refused():
    member = enrol_member(phone=PHONE)
    token = member_token_issue(member=member)
    MemberToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(token).get("/api/v1/me/")
    assert response.status_code == 401


def test_member_sees_only_themself_across_business_units(bu, other_bu):
    me = enrol_member(phone=PHONE)
    someone_else = enrol_member()
    points_earn(member_id=me.pk, business_unit=bu, points=100)
    points_earn(member_id=me.pk, business_unit=other_bu, points=50)
    points_spend(member_id=me.pk, business_unit=other_bu, points=20)
    points_earn(member_id=someone_else.pk, business_unit=bu, points=999)

    client = bearer(member_token_issue(member=me))
    assert client.get("/api/v1/me/").data["id"] == me.pk
    balance = client.get("/api/v1/me/balance/").data
    assert (balance["member"], balance["total"], balance["available"]) == (me.pk, 130, 130)
    history = client.get("/api/v1/me/transactions/").data
    assert history["count"] == 3
    assert {row["business_unit"] for row in history["results"]} == {"mall", "hotel"}
    assert client.get("/api/v1/me/transactions/", {"kind": "spend"}).data["count"] == 1
    assert client.get("/api/v1/me/transactions/", {"business_unit": "hotel"}).data["count"] == 2

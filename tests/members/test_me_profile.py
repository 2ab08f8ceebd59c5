"""The member's language and consents through the API: set at enrolment by the partner, read
and changed by the member at /api/v1/me/ (what statements and reminders are sent by)."""

import pytest
from rest_framework.test import APIClient

from members.models import Member
from members.services import member_token_issue
from tests.factories import enrol_member

pytestmark = pytest.mark.django_db


def as_member(member) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {member_token_issue(member=member)}")
    return client


def test_enrolment_takes_language_and_email_consent(partner):
    response = partner.post("/api/v1/members/", {
        "phone": "13800138111", "email": "li@example.com", "consent_email": True, "consent_sms": True,
        "language": "en",
    }, format="json")
    assert response.status_code == 201, response.data
    assert (response.data["language"], response.data["consent_email"], response.data["consent_sms"]) == ("en", True, True)
    member = Member.objects.get(phone="13800138111")
    assert (member.language, member.consent_email, member.consent_marketing) == ("en", True, False)


def test_enrolment_defaults_to_chinese_and_no_consent(partner):
    response = partner.post("/api/v1/members/", {"phone": "13800138112"}, format="json")
    assert response.status_code == 201
    member = Member.objects.get(phone="13800138112")
    assert (member.language, member.consent_email, member.consent_sms) == ("zh-hans", False, False)


def test_enrolment_refuses_an_unknown_language(partner):
    response = partner.post("/api/v1/members/", {"phone": "13800138113", "language": "fr"}, format="json")
    assert response.status_code == 400
    assert response.data["code"] == "invalid" and "language" in response.data["fields"]
    assert not Member.objects.filter(phone="13800138113").exists()


def test_a_member_reads_and_changes_language_and_consents():
    member = enrol_member(email="han@example.com")
    client = as_member(member)
    assert client.get("/api/v1/me/").data["consent_email"] is False
    response = client.patch("/api/v1/me/", {"language": "en", "consent_email": True}, format="json")
    assert response.status_code == 200, response.data
    assert (response.data["language"], response.data["consent_email"], response.data["consent_sms"]) == ("en", True, False)
    member.refresh_from_db()
    assert (member.language, member.consent_email, member.consent_sms) == ("en", True, False)
    client.patch("/api/v1/me/", {"consent_email": False}, format="json")
    member.refresh_from_db()
    assert (member.language, member.consent_email) == ("en", False)


@pytest.mark.parametrize("body, field", [({"language": "fr"}, "language"), ({"consent_sms": "maybe"}, "consent_sms"),
                                          ({}, "non_field_errors")])
def test_a_bad_change_is_400_naming_the_field_and_changes_nothing(body, field):
    member = enrol_member()
    response = as_member(member).patch("/api/v1/me/", body, format="json")
    assert response.status_code == 400
    assert response.data["code"] == "invalid" and field in response.data["fields"]
    member.refresh_from_db()
    assert (member.language, member.consent_sms) == ("zh-hans", False)


def test_only_the_member_changes_their_profile(partner):
    assert partner.patch("/api/v1/me/", {"consent_email": True}, format="json").status_code in (401, 403)
    assert APIClient().patch("/api/v1/me/", {"consent_email": True}, format="json").status_code == 401

"""Member profile edits go through members.services.member_update, from the console too."""

import pytest
from django.urls import reverse

from members.exceptions import PhoneAlreadyEnrolled
from members.models import MemberStatus
from members.services import member_update
from tests.factories import enrol_member


def test_update_changes_profile_fields_only(member):
    card_no, referral_code = member.card_no, member.referral_code
    member_update(member=member, name="Han Meimei", consent_sms=True)
    member.refresh_from_db()
    assert (member.name, member.consent_sms) == ("Han Meimei", True)
    assert (member.card_no, member.referral_code) == (card_no, referral_code)
    with pytest.raises(ValueError):
        member_update(member=member, card_no="1")


def test_update_refuses_a_phone_enrolled_by_someone_else(member):
    other = enrol_member()
    with pytest.raises(PhoneAlreadyEnrolled):
        member_update(member=member, phone=other.phone)
    member.refresh_from_db()
    assert member.phone != other.phone


def test_console_edit_saves_through_the_service(client, operator, member, settings):
    settings.LANGUAGE_CODE = "en"
    client.force_login(operator)
    url = reverse("admin:members_member_change", args=[member.pk])
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update({"name": "Wei Ming", "email": "wei@example.com", "status": "suspended"})
    response = client.post(url, {key: value for key, value in data.items() if value is not False})
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.name, member.email, member.status) == ("Wei Ming", "wei@example.com", MemberStatus.SUSPENDED)

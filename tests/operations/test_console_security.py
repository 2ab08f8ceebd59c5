"""The console's sign-in: a second factor (TOTP) for the roles that move points, optional for
the others (the demo's admin); lockout after repeated failed sign-ins."""

import pytest
from django.contrib.auth.models import Group
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import OperatorFactory


@pytest.fixture(autouse=True)
def second_factor_on(settings):
    """The production default (tests/conftest.py turns it off for the rest of the suite)."""
    settings.CONSOLE_OTP_REQUIRED_GROUPS = ["operations", "finance", "risk review"]
    settings.LANGUAGE_CODE = "en"


def staff_in(group_name, **fields):
    user = OperatorFactory(username=f"staff-{group_name.replace(' ', '-')}", is_superuser=False, **fields)
    user.groups.add(Group.objects.get(name=group_name))
    return user


def code_for(device):
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


@pytest.mark.django_db
@pytest.mark.parametrize("group_name", ["operations", "finance", "risk review"])
def test_a_role_that_moves_points_without_a_device_is_sent_to_set_one_up(client, group_name):
    client.force_login(staff_in(group_name))
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/otp/setup/")
    assert client.get("/admin/points/posting/").status_code == 302


@pytest.mark.django_db
def test_setting_up_a_device_with_its_first_code_opens_the_console(client):
    user = staff_in("finance")
    client.force_login(user)
    page = client.get("/admin/otp/setup/?next=/admin/")
    assert page.status_code == 200
    assert b"<svg" in page.content
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    wrong = client.post("/admin/otp/setup/", {"otp_token": "000000" if code_for(device) != "000000" else "111111",
                                              "next": "/admin/"})
    assert wrong.status_code == 200 and client.get("/admin/").status_code == 302
    device.refresh_from_db()
    device.throttling_failure_count = 0  # the wrong code above started django-otp's throttle
    device.throttling_failure_timestamp = None
    device.save()
    done = client.post("/admin/otp/setup/", {"otp_token": code_for(device), "next": "/admin/"})
    assert (done.status_code, done["Location"]) == (302, "/admin/")
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_a_finance_user_with_a_device_gives_its_code_then_is_allowed(client):
    user = staff_in("finance")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    refused = client.get("/admin/")
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/otp/verify/")
    wrong = client.post("/admin/otp/verify/", {"otp_token": "12345x", "next": "/admin/"})
    assert wrong.status_code == 200 and client.get("/admin/").status_code == 302
    verified = client.post("/admin/otp/verify/", {"otp_token": code_for(device), "next": "/admin/"})
    assert (verified.status_code, verified["Location"]) == (302, "/admin/")
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_the_second_step_refuses_a_redirect_off_the_site(client):
    user = staff_in("operations")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    verified = client.post("/admin/otp/verify/", {"otp_token": code_for(device), "next": "https://evil.example/"})
    assert verified["Location"] == "/admin/"


@pytest.mark.django_db
def test_the_demo_admin_a_superuser_in_no_group_signs_in_with_a_password_only(client):
    admin = OperatorFactory(username="admin", is_superuser=True)
    admin.set_password("demo-pass-123")
    admin.save()
    signed_in = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": "demo-pass-123",
                                                           "next": "/admin/"})
    assert (signed_in.status_code, signed_in["Location"]) == (302, "/admin/")
    assert client.get("/admin/").status_code == 200
    assert not TOTPDevice.objects.filter(user=admin).exists()


@pytest.mark.django_db
def test_a_user_outside_the_roles_who_set_up_a_device_is_asked_for_it(client):
    user = OperatorFactory(username="merchant-lead", is_superuser=True)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    assert client.get("/admin/")["Location"].startswith("/admin/otp/verify/")


@pytest.mark.django_db
def test_the_second_step_pages_need_a_signed_in_staff_user(client):
    response = client.get("/admin/otp/setup/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_repeated_failed_sign_ins_lock_the_username_out(client, settings):
    from axes.models import AccessAttempt

    user = OperatorFactory(username="target", is_superuser=True)
    user.set_password("right-password-1")
    user.save()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        failed = client.post("/admin/login/", {"username": "target", "password": "wrong"})
        assert failed.status_code == 200  # the form again, with its error
    assert client.post("/admin/login/", {"username": "target", "password": "wrong"}).status_code == 429
    locked = client.post("/admin/login/", {"username": "target", "password": "right-password-1"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.get(username="target").failures_since_start >= settings.AXES_FAILURE_LIMIT


@pytest.mark.django_db
def test_a_successful_sign_in_is_recorded(client):
    from axes.models import AccessLog

    user = OperatorFactory(username="audited", is_superuser=True)
    user.set_password("right-password-1")
    user.save()
    assert client.post("/admin/login/", {"username": "audited", "password": "right-password-1"}).status_code == 302
    assert AccessLog.objects.filter(username="audited").count() == 1

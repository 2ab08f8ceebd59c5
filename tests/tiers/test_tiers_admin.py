"""Operator console for tiers: the "set tier by hand" action goes through the service."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from points.earning import points_earn
from points.timeutils import end_of_local_day, local_date
from tests.factories import OperatorFactory
from tests.factories import ladder
from tiers.models import MemberTier, TierChange, TierChangeKind
from tiers.services import tier_evaluate

CHANGELIST = "admin:tiers_membertier_changelist"


@pytest.fixture
def levels(db):
    return ladder()[1]


@pytest.fixture
def member_tier(bu, member, levels):
    points_earn(member_id=member.pk, business_unit=bu, points=1000)
    return tier_evaluate(member=member)


def logged_in(user):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def test_set_tier_by_hand_shows_a_form_then_calls_the_service(member_tier, levels, operator):
    client = logged_in(operator)
    selection = {"action": "set_manual_tier", "_selected_action": [member_tier.pk]}
    form_page = client.post(reverse(CHANGELIST), selection)
    assert form_page.status_code == 200
    assert b'name="reason"' in form_page.content

    ends_on = local_date(timezone.now()) + timedelta(days=30)
    done = client.post(reverse(CHANGELIST), {
        **selection, "apply": "1", "level": levels["gold"].pk, "ends_on": ends_on.isoformat(), "reason": "Press visit",
    })
    assert done.status_code == 302
    member_tier.refresh_from_db()
    assert (member_tier.override_level, member_tier.override_ends_at, member_tier.override_set_by) == (
        levels["gold"], end_of_local_day(ends_on), operator
    )
    change = TierChange.objects.get(kind=TierChangeKind.MANUAL)
    assert (change.actor, change.reason, change.to_level) == (operator, "Press visit", levels["gold"])


def test_set_tier_by_hand_needs_a_reason_and_a_future_date(member_tier, levels, operator):
    client = logged_in(operator)
    base = {"action": "set_manual_tier", "_selected_action": [member_tier.pk], "apply": "1", "level": levels["gold"].pk}
    no_reason = client.post(reverse(CHANGELIST), {**base, "ends_on": "2099-01-01", "reason": "  "})
    past = client.post(reverse(CHANGELIST), {**base, "ends_on": "2020-01-01", "reason": "why"})
    assert (no_reason.status_code, past.status_code) == (200, 200)
    assert not MemberTier.objects.filter(override_level__isnull=False).exists()
    assert not TierChange.objects.filter(kind=TierChangeKind.MANUAL).exists()


def test_set_tier_by_hand_needs_its_permission(member_tier, levels):
    clerk = OperatorFactory(username="clerk", is_superuser=False)
    clerk.user_permissions.add(Permission.objects.get(codename="view_membertier"),
                               Permission.objects.get(codename="change_membertier"))
    client = logged_in(clerk)
    assert client.get(reverse(CHANGELIST)).status_code == 200
    client.post(reverse(CHANGELIST), {
        "action": "set_manual_tier", "_selected_action": [member_tier.pk], "apply": "1",
        "level": levels["gold"].pk, "ends_on": "2099-01-01", "reason": "why",
    })
    member_tier.refresh_from_db()
    assert member_tier.override_level is None


def test_member_tier_page_shows_the_history_and_is_read_only(member_tier, operator):
    client = logged_in(operator)
    page = client.get(reverse("admin:tiers_membertier_change", args=[member_tier.pk]))
    assert page.status_code == 200
    assert b"Upgrade" in page.content and b"Silver" in page.content
    assert client.get(reverse("admin:tiers_membertier_add")).status_code == 403


def test_programme_pages_load(levels, operator):
    client = logged_in(operator)
    programme = levels["gold"].programme
    assert client.get(reverse("admin:tiers_tierprogramme_change", args=[programme.pk])).status_code == 200
    assert client.get(reverse("admin:tiers_tierlevel_changelist")).status_code == 200
    assert client.get(reverse("admin:tiers_tierchange_changelist")).status_code == 200


def test_operator_roles_hold_the_tier_permissions(db):
    operations = Group.objects.get(name="operations")
    finance = Group.objects.get(name="finance")
    assert operations.permissions.filter(codename="set_manual_tier").exists()
    assert not finance.permissions.filter(codename="set_manual_tier").exists()
    assert finance.permissions.filter(content_type__app_label="tiers", codename="view_membertier").exists()
    assert not Permission.objects.filter(group__in=[operations, finance], codename="change_membertier").exists()

"""The operator console: actions through the admin, read-only ledger, search, roles, exports."""

import re
from decimal import Decimal

import pytest
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.urls import reverse

from members.models import Member, PartnerKey
from points.models import Posting, PostingKind, WalletStatusChange
from points.earning import points_earn
from points.ledger import hold_capture, hold_place
from points.services import points_spend, posting_reverse, wallet_freeze
from tests.factories import OperatorFactory, enrol_member

CHANGELIST = reverse("admin:members_member_changelist")


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def console(client, operator):
    client.force_login(operator)
    return client


def staff_in(group_name):
    user = OperatorFactory(username=f"staff-{group_name.replace(' ', '-')}", is_superuser=False)
    user.groups.add(Group.objects.get(name=group_name))
    return user


def run_action(client, action, members, **form):
    """Open the action's intermediate form, then submit it with `form`; returns (page, response)."""
    selected = {"action": action, "_selected_action": [m.pk for m in members]}
    page = client.post(CHANGELIST, selected)
    assert page.status_code == 200, page.status_code
    token = re.search(r'name="token" value="([0-9a-f]+)"', page.content.decode()).group(1)
    response = client.post(CHANGELIST, {**selected, "apply": "1", "token": token, **form}, follow=True)
    return token, response


def levels(response):
    return [(m.level, str(m)) for m in response.context["messages"]]


def test_adjust_posts_one_posting_with_the_operator_as_actor(console, operator, member, bu, ledger_sound):
    token, response = run_action(console, "adjust_points", [member], points=150, business_unit=bu.pk,
                                 reason="goodwill for a parking fault")
    assert (messages.SUCCESS, "1 adjustment posted.") in levels(response)
    posting = Posting.objects.get(wallet__member=member)
    assert (posting.kind, posting.points, posting.actor, posting.business_unit) == (
        PostingKind.ADJUST, 150, operator, bu)
    assert posting.reason == "goodwill for a parking fault"
    assert (posting.idempotency_scope, posting.idempotency_key) == (
        "operator", f"adjust:{operator.pk}:{member.pk}:{token}")
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 150
    ledger_sound()


def test_resubmitting_the_same_adjustment_form_posts_once(console, member, bu):
    selected = {"action": "adjust_points", "_selected_action": [member.pk]}
    token, _ = run_action(console, "adjust_points", [member], points=80, business_unit=bu.pk, reason="r")
    again = console.post(CHANGELIST, {**selected, "apply": "1", "token": token, "points": 80,
                                      "business_unit": bu.pk, "reason": "r"}, follow=True)
    assert [level for level, _ in levels(again)] == [messages.WARNING]
    assert Posting.objects.filter(wallet__member=member).count() == 1


def test_refused_adjustment_shows_an_error_and_posts_nothing(console, member, bu):
    other = enrol_member(name="Han Meimei")
    points_earn(member_id=other.pk, business_unit=bu, points=500)
    _, response = run_action(console, "adjust_points", [member, other], points=-300, business_unit=bu.pk,
                             reason="clawback of a duplicated bonus")
    found = levels(response)
    assert (messages.ERROR, f"{member}: The member does not have enough available points.") in found
    assert (messages.SUCCESS, "1 adjustment posted.") in found
    assert not Posting.objects.filter(wallet__member=member).exists()
    other.wallet.refresh_from_db()
    assert other.wallet.balance == 200


def test_adjustment_form_refuses_zero_points_and_posts_nothing(console, member, bu):
    _, response = run_action(console, "adjust_points", [member], points=0, business_unit=bu.pk, reason="r")
    assert response.status_code == 200
    assert "Points must not be zero." in response.content.decode()
    assert not Posting.objects.exists()


def test_freeze_and_unfreeze_record_reason_and_operator(console, operator, member, bu):
    _, frozen = run_action(console, "freeze_wallets", [member], reason="suspected account sharing")
    assert (messages.SUCCESS, "1 account frozen.") in levels(frozen)
    member.wallet.refresh_from_db()
    assert (member.wallet.is_frozen, member.wallet.frozen_reason) == (True, "suspected account sharing")
    _, unfrozen = run_action(console, "unfreeze_wallets", [member], reason="cleared by risk review")
    assert (messages.SUCCESS, "1 account unfrozen.") in levels(unfrozen)
    member.wallet.refresh_from_db()
    assert member.wallet.is_frozen is False
    changes = list(WalletStatusChange.objects.filter(wallet=member.wallet).order_by("id").values_list(
        "frozen", "reason", "actor"))
    assert changes == [(True, "suspected account sharing", operator.pk), (False, "cleared by risk review", operator.pk)]


def test_freeze_without_a_reason_is_refused(console, member):
    _, response = run_action(console, "freeze_wallets", [member], reason="   ")
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    member.wallet.refresh_from_db()
    assert member.wallet.is_frozen is False


@pytest.mark.parametrize("model", ["posting", "entry", "lot", "lotmovement", "walletstatuschange"])
def test_ledger_admins_refuse_add_change_and_delete(console, member, bu, operator, model):
    posting = points_earn(member_id=member.pk, business_unit=bu, points=300).posting
    spend = points_spend(member_id=member.pk, business_unit=bu, points=100).posting
    wallet_freeze(member_id=member.pk, reason="check", actor=operator)
    objects = {
        "posting": posting, "entry": posting.entries.first(), "lot": posting.lots.first(),
        "lotmovement": spend.lot_movements.first(), "walletstatuschange": WalletStatusChange.objects.first(),
    }
    obj = objects[model]
    change_url = reverse(f"admin:points_{model}_change", args=[obj.pk])
    page = console.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert console.post(change_url, {}).status_code == 403
    assert console.post(reverse(f"admin:points_{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert console.get(reverse(f"admin:points_{model}_add")).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_member_search_by_phone_and_card_number(console, member):
    other = enrol_member(name="Han Meimei")
    by_phone = console.get(CHANGELIST, {"q": member.phone}).content.decode()
    assert member.card_no in by_phone and other.card_no not in by_phone
    by_card = console.get(CHANGELIST, {"q": other.card_no}).content.decode()
    assert other.card_no in by_card and member.card_no not in by_card


def test_member_page_shows_wallet_lots_and_linked_history(console, member, bu):
    earn = points_earn(member_id=member.pk, business_unit=bu, points=700, receipt_no="R-77").posting
    posting_reverse(posting_id=earn.pk, points=200, reason="returned")
    page = console.get(reverse("admin:members_member_change", args=[member.pk])).content.decode()
    assert reverse("admin:points_posting_change", args=[earn.pk]) in page
    assert "R-77" in page and "+700" in page and "-200" in page
    assert f"?wallet__id__exact={member.wallet.pk}" in page


def test_new_member_from_the_console_is_enrolled_with_a_wallet(console, operator):
    response = console.post(reverse("admin:members_member_add"), {"phone": "13712345678", "name": "Zhao Yun"})
    assert response.status_code == 302
    member = Member.objects.get(phone="13712345678")
    assert len(member.card_no) == 16 and member.wallet.balance == 0


def test_every_registered_changelist_renders(console, member, bu, operator):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("88.80"))
    points_spend(member_id=member.pk, business_unit=bu, points=10)
    hold = hold_place(member_id=member.pk, points=20, business_unit=bu, purpose="pos_bill").hold
    hold_capture(hold_id=hold.pk, points=5)
    wallet_freeze(member_id=member.pk, reason="check", actor=operator)
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert console.get(url).status_code == 200, url
    page = console.get(reverse("admin:points_hold_change", args=[hold.pk])).content.decode()
    assert "pos_bill" in page and "captured" in page.lower()


def test_roles_exist_and_only_operations_adjusts(client, member):
    assert set(Group.objects.values_list("name", flat=True)) >= {"operations", "finance", "risk review", "merchant staff"}
    client.force_login(staff_in("finance"))
    page = client.get(CHANGELIST).content.decode()
    assert 'value="adjust_points"' not in page and 'value="freeze_wallets"' not in page
    client.force_login(staff_in("operations"))
    page = client.get(CHANGELIST).content.decode()
    assert 'value="adjust_points"' in page and 'value="freeze_wallets"' in page
    client.force_login(staff_in("risk review"))
    page = client.get(CHANGELIST).content.decode()
    assert 'value="adjust_points"' not in page and 'value="freeze_wallets"' in page


def test_finance_exports_postings_and_others_may_not(client, member, bu):
    points_earn(member_id=member.pk, business_unit=bu, points=42, receipt_no="R-EXPORT")
    export_url = reverse("admin:points_posting_export")
    client.force_login(staff_in("operations"))
    assert client.get(export_url).status_code == 403
    client.force_login(staff_in("finance"))
    assert client.get(export_url).status_code == 200
    response = client.post(export_url, {"format": "0", "resource": "0", "postingresource_id": "on",
                                        "postingresource_receipt_no": "on", "postingresource_points": "on"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    header, row = response.content.decode().strip().splitlines()
    assert header.split(",") == ["id", "points", "receipt_no"] and row.endswith(",42,R-EXPORT")


def test_members_are_never_deleted_from_the_console(console, member):
    assert console.post(reverse("admin:members_member_delete", args=[member.pk]), {"post": "yes"}).status_code == 403
    assert 'value="delete_selected"' not in console.get(CHANGELIST).content.decode()
    assert Member.objects.filter(pk=member.pk).exists()


def test_posting_search_by_phone_card_or_receipt(console, member, bu):
    other = enrol_member(name="Han Meimei")
    mine = points_earn(member_id=member.pk, business_unit=bu, points=10, receipt_no="R-MINE").posting
    theirs = points_earn(member_id=other.pk, business_unit=bu, points=20, receipt_no="R-THEIRS").posting
    changelist = reverse("admin:points_posting_changelist")
    for query in (member.phone, member.card_no, "R-MINE"):
        page = console.get(changelist, {"q": query}).content.decode()
        assert reverse("admin:points_posting_change", args=[mine.pk]) in page, query
        assert reverse("admin:points_posting_change", args=[theirs.pk]) not in page, query


def test_partner_key_created_in_the_console_is_shown_once_and_authenticates(console, bu, merchant, other_bu):
    add_url = reverse("admin:members_partnerkey_add")
    refused = console.post(add_url, {"name": "POS", "business_unit": other_bu.pk, "merchant": merchant.pk})
    assert refused.status_code == 200 and not PartnerKey.objects.exists()
    response = console.post(add_url, {"name": "Mall POS", "business_unit": bu.pk, "merchant": merchant.pk},
                            follow=True)
    shown = [str(m) for m in response.context["messages"] if m.level == messages.WARNING]
    key = re.search(r"The API key for Mall POS is: (\S+)\. ", shown[0]).group(1)
    found = PartnerKey.objects.get_from_key(key)
    assert (found.business_unit, found.merchant) == (bu, merchant)
    assert key not in console.get(reverse("admin:members_partnerkey_change", args=[found.pk])).content.decode()

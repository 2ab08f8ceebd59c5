"""The risk console (rules refused when misconfigured, the review queue's actions and evidence,
freezes, the blacklist, adjustment requests and the dashboard), the database's own refusal of
bad rules, and the API: device and address recorded, 409 risk_blocked with a reference, and the
member's risk status."""

import re
from decimal import Decimal

import pytest
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.urls import NoReverseMatch, reverse
from rest_framework.test import APIClient

from members.services import member_token_issue
from points.models import Posting, PostingKind
from points.selectors import member_balance
from riskcontrol.models import (
    AdjustmentRequest,
    AdjustmentThreshold,
    BlacklistEntry,
    BlockedAttempt,
    CaseStatus,
    RequestStatus,
    RiskCase,
    RiskDeviceUse,
    RiskFreeze,
    RiskRule,
    RuleAction,
    RuleKind,
)
from riskcontrol.services import freeze_open
from tests.factories import enrol_member
from tests.riskcontrol.conftest import staff

pytestmark = pytest.mark.django_db

RULE_ADD = reverse("admin:riskcontrol_riskrule_add")
CASES = reverse("admin:riskcontrol_riskcase_changelist")
REQUESTS = reverse("admin:riskcontrol_adjustmentrequest_changelist")
MEMBERS = reverse("admin:members_member_changelist")


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


def levels(response):
    return [(m.level, str(m)) for m in response.context["messages"]]


def rule_form(**fields):
    data = {"code": "velocity", "name": "Velocity", "kind": RuleKind.EARN_COUNT, "threshold": "5",
            "window_minutes": "1440", "scope": "group", "action": RuleAction.BLOCK, "freeze_mode": "both",
            "is_active": "on"}
    return {**data, **fields}


@pytest.mark.parametrize("fields, error_field", [
    ({"threshold": "-1"}, "threshold"),
    ({"threshold": "0"}, "threshold"),
    ({"window_minutes": "0"}, "window_minutes"),
    ({"window_minutes": ""}, "window_minutes"),
    ({"threshold": "2.5"}, "threshold"),
    ({"kind": RuleKind.REFUND_RATIO, "threshold": "1.5"}, "threshold"),
    ({"kind": RuleKind.REDEMPTION_POINTS, "action": RuleAction.HOLD}, "action"),
    ({"scope": "business_unit"}, "business_unit"),
])
def test_the_rule_form_refuses_bad_configuration(client, reviewer, fields, error_field):
    client.force_login(reviewer)
    response = client.post(RULE_ADD, rule_form(**fields))
    assert response.status_code == 200
    assert error_field in response.context["adminform"].form.errors
    assert not RiskRule.objects.exists()


def test_the_rule_form_saves_a_good_rule_switched_on_now(client, reviewer):
    client.force_login(reviewer)
    response = client.post(RULE_ADD, rule_form())
    assert response.status_code == 302
    rule = RiskRule.objects.get()
    assert rule.is_active and rule.active_since is not None
    assert rule.history.count() == 1


@pytest.mark.parametrize("fields", [{"threshold": Decimal("-1")}, {"window_minutes": 0}, {"window_minutes": None}])
def test_the_database_refuses_bad_rules_whatever_the_path(fields):
    from django.utils import timezone

    values = {"code": "x", "name": "x", "kind": RuleKind.EARN_COUNT, "threshold": Decimal("5"), "window_minutes": 60,
              "action": RuleAction.BLOCK, "is_active": True, "active_since": timezone.now(), **fields}
    with pytest.raises(IntegrityError), transaction.atomic():
        RiskRule.objects.create(**values)


def run_action(client, url, action, rows, **form):
    selected = {"action": action, "_selected_action": [row.pk for row in rows]}
    page = client.post(url, selected)
    assert page.status_code == 200, page.status_code
    return client.post(url, {**selected, "apply": "1", **form}, follow=True)


@pytest.fixture
def held_cases(bu, earn, make_rule):
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.HOLD)
    make_rule(RuleKind.DEVICE_MEMBERS, 1, window_minutes=60, action=RuleAction.FLAG)
    members = [enrol_member() for _ in range(2)]
    for member in members:
        earn(member, bu, "800", device="dev-77")
    return list(RiskCase.objects.order_by("id"))


def test_the_review_queue_approves_in_bulk_with_a_reason(client, reviewer, held_cases):
    client.force_login(reviewer)
    response = run_action(client, CASES, "approve_cases", held_cases, reason="checked the receipts")
    assert (messages.SUCCESS, "2 cases approved.") in levels(response)
    for case in held_cases:
        case.refresh_from_db()
        assert (case.status, case.decided_by, case.decision_reason) == (CaseStatus.APPROVED, reviewer,
                                                                       "checked the receipts")
        assert member_balance(member_id=case.member_id).available == 800


def test_the_review_queue_rejects_and_reports_what_could_not_move(client, reviewer, held_cases):
    client.force_login(reviewer)
    run_action(client, CASES, "approve_cases", held_cases[:1], reason="fine")
    response = run_action(client, CASES, "reject_cases", held_cases, reason="forged receipts")
    found = levels(response)
    assert (messages.SUCCESS, "1 case rejected.") in found
    assert any(level == messages.ERROR and "already approved or rejected" in text for level, text in found)
    assert Posting.objects.filter(kind=PostingKind.REFUND).count() == 1


def test_a_decision_needs_a_reason(client, reviewer, held_cases):
    client.force_login(reviewer)
    response = run_action(client, CASES, "reject_cases", held_cases, reason="  ")
    assert "This field is required." in response.content.decode()
    assert RiskCase.objects.filter(status=CaseStatus.OPEN).count() == 2


def test_a_case_page_shows_evidence_timeline_and_the_other_members(client, reviewer, held_cases):
    client.force_login(reviewer)
    page = client.get(reverse("admin:riskcontrol_riskcase_change", args=[held_cases[1].pk])).content.decode()
    assert "earn_amount" in page and "amount_cny: 800" in page and "device_members" in page
    first_member = reverse("admin:members_member_change", args=[held_cases[0].member_id])
    assert f'<a href="{first_member}">#{held_cases[0].member_id}</a>' in page  # the other member on the device
    assert held_cases[1].reference in page and 'name="_save"' not in page
    assert reverse("admin:points_posting_change", args=[held_cases[1].posting_id]) in page


def test_operators_without_the_review_role_cannot_decide(client, held_cases):
    ops = staff("ops", "operations")
    client.force_login(ops)
    response = client.post(CASES, {"action": "approve_cases", "_selected_action": [held_cases[0].pk], "apply": "1",
                                   "reason": "x"}, follow=True)
    assert RiskCase.objects.get(pk=held_cases[0].pk).status == CaseStatus.OPEN
    assert response.status_code == 200


def test_the_dashboard_counts_cases_held_points_and_blocks(client, reviewer, held_cases, bu, earn, make_rule):
    from riskcontrol.exceptions import RiskBlocked

    make_rule(RuleKind.EARN_AMOUNT, 5000, action=RuleAction.BLOCK, code="huge")
    with pytest.raises(RiskBlocked):
        earn(enrol_member(), bu, "6000")
    client.force_login(reviewer)
    page = client.get(reverse("admin:riskcontrol_dashboard"))
    assert page.status_code == 200
    dashboard = page.context["dashboard"]
    assert (dashboard.open_cases, dashboard.held_points, dashboard.blocked_today) == (2, 1600, 1)
    today = dashboard.days[0]
    assert (today.cases, today.held, today.blocked) == (2, 1600, 1)
    assert dict(today.top_rules) == {held_cases[0].rule.code: 2, "huge": 1}


def test_freezes_are_opened_and_lifted_in_the_console(client, reviewer, member, bu):
    client.force_login(reviewer)
    response = client.post(reverse("admin:riskcontrol_riskfreeze_add"), {
        "member": member.pk, "mode": "spending", "reason": "chargeback"})
    assert response.status_code == 302
    freeze = RiskFreeze.objects.get()
    assert (freeze.actor, freeze.froze_wallet) == (reviewer, True)
    run_action(client, reverse("admin:riskcontrol_riskfreeze_changelist"), "lift_freezes", [freeze], reason="ok")
    freeze.refresh_from_db()
    assert freeze.lifted_by == reviewer
    member.wallet.refresh_from_db()
    assert not member.wallet.is_frozen


def test_blacklist_entries_are_added_and_removed_in_the_console(client, reviewer):
    client.force_login(reviewer)
    add = reverse("admin:riskcontrol_blacklistentry_add")
    assert client.post(add, {"kind": "device", "value": "emu-1", "action": "block", "reason": "farm"}).status_code == 302
    again = client.post(add, {"kind": "device", "value": "emu-1", "action": "block", "reason": "farm"})
    assert again.status_code == 200  # one live entry per value
    entry = BlacklistEntry.objects.get()
    run_action(client, reverse("admin:riskcontrol_blacklistentry_changelist"), "remove_entries", [entry], reason="x")
    entry.refresh_from_db()
    assert entry.removed_by == reviewer


@pytest.fixture
def limits(db):
    AdjustmentThreshold.objects.create(group=None, max_points=1000)


def adjust_in_console(client, member, bu, points, reason):
    selected = {"action": "adjust_points", "_selected_action": [member.pk]}
    page = client.post(MEMBERS, selected)
    token = re.search(r'name="token" value="([0-9a-f]+)"', page.content.decode()).group(1)
    return client.post(MEMBERS, {**selected, "apply": "1", "token": token, "points": points, "business_unit": bu.pk,
                                 "reason": reason}, follow=True)


def test_the_console_adjustment_above_the_limit_becomes_a_request_a_second_operator_approves(
        client, member, bu, limits):
    maker = staff("console-maker", "operations", "finance")  # may approve, but not their own
    checker = staff("console-checker", "finance")
    client.force_login(maker)
    response = adjust_in_console(client, member, bu, 5000, "goodwill: lost parking ticket")
    request = AdjustmentRequest.objects.get()
    assert any(level == messages.ERROR and f"request #{request.pk}" in text for level, text in levels(response))
    assert not Posting.objects.exists()
    run_action(client, REQUESTS, "approve_requests", [request], reason="mine")
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING
    # The change form is no path either: it is read-only, a POST is refused.
    change = reverse("admin:riskcontrol_adjustmentrequest_change", args=[request.pk])
    assert client.post(change, {"status": "approved", "checker": maker.pk}).status_code == 403
    assert client.get(reverse("admin:riskcontrol_adjustmentrequest_add")).status_code == 403
    with pytest.raises(NoReverseMatch):  # and no import of requests
        reverse("admin:riskcontrol_adjustmentrequest_import")
    client.force_login(checker)
    response = run_action(client, REQUESTS, "approve_requests", [request], reason="ticket 4411 checked")
    request.refresh_from_db()
    assert (request.status, request.checker, request.posting.actor) == (RequestStatus.EXECUTED, checker, maker)
    assert member_balance(member_id=member.pk).available == 5000


def purchase(member, amount, receipt, **extra):
    return {"member": member.pk, "amount": amount, "merchant": "shop1", "receipt_no": receipt, **extra}


def test_the_api_records_the_device_and_address_and_refuses_with_a_reference(partner, bu, merchant, member, make_rule):
    make_rule(RuleKind.DEVICE_MEMBERS, 5, window_minutes=60, action=RuleAction.FLAG)
    make_rule(RuleKind.EARN_AMOUNT, 500, action=RuleAction.BLOCK)
    ok = partner.post("/api/v1/transactions/earn/", purchase(member, "100.00", "R1", device_id="app-1"),
                      format="json", HTTP_IDEMPOTENCY_KEY="k1", REMOTE_ADDR="203.0.113.5")
    assert ok.status_code == 201, ok.json()
    assert RiskDeviceUse.objects.get(member=member).device.value == "app-1"  # a device_id field of the body
    refused = partner.post("/api/v1/transactions/earn/", purchase(member, "900.00", "R2"), format="json",
                           HTTP_IDEMPOTENCY_KEY="k2", HTTP_X_DEVICE_ID="app-2", REMOTE_ADDR="203.0.113.6")
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "risk_blocked" and body["reference"].startswith("RB-")
    assert "earn_amount" not in str(body)
    attempt = BlockedAttempt.objects.get(reference=body["reference"])
    assert (attempt.device_id, attempt.client_address, attempt.member) == ("app-2", "203.0.113.6", member)
    assert Posting.objects.count() == 1


def test_the_api_feeds_the_device_rule(partner, bu, merchant, make_rule):
    make_rule(RuleKind.DEVICE_MEMBERS, 1, window_minutes=60, action=RuleAction.FLAG)
    members = [enrol_member() for _ in range(2)]
    for n, member in enumerate(members):
        response = partner.post("/api/v1/transactions/earn/", purchase(member, "10.00", f"D{n}"), format="json",
                                HTTP_IDEMPOTENCY_KEY=f"d{n}", HTTP_X_DEVICE_ID="kiosk-3")
        assert response.status_code == 201
    assert RiskDeviceUse.objects.filter(device__value="kiosk-3").count() == 2
    assert RiskCase.objects.get().member == members[1]


def test_the_member_is_told_their_account_is_under_review_without_the_rule(member):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {member_token_issue(member=member)}")
    calm = client.get("/api/v1/me/risk-status/").json()
    assert calm["under_review"] is False
    freeze_open(member_id=member.pk, mode="spending", reason="rule velocity-5 fired")
    body = client.get("/api/v1/me/risk-status/").json()
    assert (body["under_review"], body["earning_paused"], body["spending_paused"]) == (True, False, True)
    assert "velocity" not in body["message"] and "under review" in body["message"]


def test_the_risk_status_endpoint_is_in_the_schema(tmp_path):
    import yaml
    from django.core.management import call_command

    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    operation = yaml.safe_load(path.read_text())["paths"]["/api/v1/me/risk-status/"]["get"]
    assert operation["security"] == [{"MemberBearer": []}]
    assert "200" in operation["responses"]


def test_the_demo_seeds_a_few_cases_once(tmp_path):
    from django.core.management import call_command

    call_command("seed_demo", members=8, credentials_out=tmp_path / "c.json")
    call_command("seed_risk_demo")
    cases = {case.rule.code: case for case in RiskCase.objects.select_related("rule")}
    assert set(cases) == {"big-purchase", "duplicate-receipt", "shared-device"}
    assert cases["big-purchase"].held_points == 6888 and cases["shared-device"].status == CaseStatus.APPROVED
    assert BlockedAttempt.objects.count() == 1
    assert AdjustmentRequest.objects.get().status == RequestStatus.PENDING
    call_command("seed_demo", members=8, credentials_out=tmp_path / "c.json")
    call_command("seed_risk_demo")
    assert RiskCase.objects.count() == 3 and BlockedAttempt.objects.count() == 1

"""The operator console: templates edited (checked when saved, started from the file they
replace), previewed for a chosen member without sending, the log read-only with a retry of
failed messages, the run report, statements read-only."""

import pytest
from django.core import mail
from django.urls import reverse

from members.notifications.models import NotificationLog, NotificationStatus, NotificationTemplate
from members.services import member_update
from points.earning import points_earn
from points.statements.periods import period_parse
from points.statements.services import statements_generate_batch
from tests.factories import enrol_member
from tests.statements.conftest import shanghai

pytestmark = pytest.mark.django_db


@pytest.fixture
def statement_member(clock, bu):
    clock.set(shanghai(2026, 3, 5))
    member = enrol_member(name="韩梅梅", email="han@example.com")
    member_update(member=member, consent_email=True)
    points_earn(member_id=member.pk, business_unit=bu, points=1234)
    clock.set(shanghai(2026, 4, 1, 4))
    statements_generate_batch(period=period_parse("2026-03"))
    clock.stop()
    return member


def test_a_new_template_starts_from_the_file_and_a_broken_one_is_refused(admin_client):
    url = reverse("admin:members_notificationtemplate_add")
    page = admin_client.get(url, {"kind": "statement", "channel": "sms", "language": "en"}).content.decode()
    assert "Points statement {{ period }}: balance {{ closing_balance }}" in page

    response = admin_client.post(url, {"kind": "statement", "channel": "sms", "language": "en",
                                       "body_text": "{% if closing_balance %}no end", "is_active": "on"})
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["body_text"]
    assert not NotificationTemplate.objects.exists()

    response = admin_client.post(url, {"kind": "statement", "channel": "sms", "language": "en",
                                       "body_text": "Balance {{ closing_balance }}", "is_active": "on"})
    assert response.status_code == 302
    assert NotificationTemplate.objects.get().body_text == "Balance {{ closing_balance }}"


def test_preview_renders_a_members_latest_statement_and_sends_nothing(admin_client, statement_member):
    url = reverse("admin:members_notificationtemplate_preview")
    response = admin_client.post(url, {"kind": "statement", "channel": "email", "member": statement_member.pk})
    page = response.content.decode()
    assert response.status_code == 200
    assert "您的 2026 年 3 月积分对账单" in page and "期末余额：1234" in page

    edited = admin_client.post(url, {"kind": "statement", "channel": "sms", "language": "en", "member": statement_member.pk,
                                     "body_text": "Hi {{ name }}, {{ closing_balance }} points"}).content.decode()
    assert "Hi 韩梅梅, 1234 points" in edited
    assert mail.outbox == []


def test_preview_without_a_message_uses_sample_figures(admin_client, member):
    url = reverse("admin:members_notificationtemplate_preview")
    page = admin_client.post(url, {"kind": "winback", "channel": "sms", "language": "en",
                                   "member": member.pk}).content.decode()
    assert "We miss you! 500 points are waiting for you." in page


def test_the_log_is_read_only_failed_ones_retry_and_the_report_counts(admin_client, statement_member, sends):
    failed = NotificationLog.objects.get(member=statement_member, channel="email")
    NotificationLog.objects.filter(pk=failed.pk).update(status=NotificationStatus.FAILED, error="SMTP down")
    skipped = NotificationLog.objects.get(member=statement_member, channel="sms")

    change = admin_client.get(reverse("admin:members_notificationlog_change", args=[failed.pk])).content.decode()
    assert 'name="_save"' not in change
    report = admin_client.get(reverse("admin:members_notificationlog_report")).content.decode()
    assert "statement:2026-03" in report
    assert "<td>0</td><td>1</td><td>1</td>\n      <td>1</td><td>0</td>" in report  # sent, consent, skipped, failed

    response = admin_client.post(reverse("admin:members_notificationlog_changelist"), {
        "action": "retry", "_selected_action": [failed.pk, skipped.pk],
    })
    assert response.status_code == 302
    failed.refresh_from_db()
    skipped.refresh_from_db()
    assert (failed.status, failed.error, skipped.status) == ("queued", "", "skipped")


def test_statements_are_read_only_in_the_console(admin_client, statement_member):
    statement = statement_member.statements.get()
    page = admin_client.get(reverse("admin:points_statement_change", args=[statement.pk])).content.decode()
    assert "1234" in page and 'name="_save"' not in page
    assert admin_client.get(reverse("admin:points_statement_add")).status_code == 403
    assert admin_client.post(reverse("admin:points_statement_delete", args=[statement.pk])).status_code == 403

"""Statement messages: channels by consent, the member's language, one message per key however
often the job runs, retries with backoff after a failed send, quiet hours, edited templates
and the run report."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail

from members.notifications.models import NotificationLog, NotificationStatus, NotificationTemplate, SkipReason
from members.notifications.selectors import logs_due, run_reports
from members.notifications.services import (
    NotificationFailed,
    notification_deliver,
    notifications_retry,
    sms_allowed_from,
)
from members.notifications.tasks import notification_send, notifications_dispatch_due
from members.services import member_update
from points.earning import points_earn
from points.models import Statement
from points.statements.periods import period_parse
from points.statements.services import statements_generate_batch
from tests.factories import enrol_member
from tests.statements.backends import Failing
from tests.statements.conftest import shanghai

pytestmark = pytest.mark.django_db

MARCH = period_parse("2026-03")
SMS_LOG = "tests.statements.backends.FailingSmsBackend"


@pytest.fixture(autouse=True)
def sms(settings):
    settings.SMS_BACKEND = SMS_LOG
    Failing.reset(0)
    return Failing


def member_with(clock, bu, *, points=1200, email="han@example.com", language="zh-hans", **consents):
    clock.set(shanghai(2026, 3, 5, 12))
    member = enrol_member(name="韩梅梅", email=email)
    member_update(member=member, language=language, **consents)
    points_earn(member_id=member.pk, business_unit=bu, points=points)
    return member


def generate(clock, capture, at=None):
    clock.set(at or shanghai(2026, 4, 1, 4))
    with capture(execute=True):
        return statements_generate_batch(period=MARCH)


def drain(sends):
    """Deliver every row handed to the send task, as a worker would."""
    results = [notification_deliver(log_id=log_id) for log_id in sends]
    sends.clear()
    return results


def test_a_statement_goes_by_email_and_sms_in_the_members_language(
    clock, bu, sends, sms, django_capture_on_commit_callbacks
):
    zh = member_with(clock, bu, consent_email=True, consent_sms=True)
    en = member_with(clock, bu, points=300, email="lilei@example.com", language="en", consent_email=True,
                     consent_sms=True)

    generate(clock, django_capture_on_commit_callbacks)
    assert len(sends) == 4
    assert drain(sends) == [NotificationStatus.DELIVERED] * 4

    by_recipient = {message.to[0]: message for message in mail.outbox}
    chinese, english = by_recipient["han@example.com"], by_recipient["lilei@example.com"]
    assert chinese.subject == "您的 2026 年 3 月积分对账单"
    assert "期末余额：1200" in chinese.body and "本期获得：+1200" in chinese.body
    html, mimetype = chinese.alternatives[0]
    assert mimetype == "text/html" and "<th align=\"right\">1200</th>" in html
    assert english.subject == "Your points statement for 2026-03"
    assert "Closing balance: 300" in english.body
    texts = dict(sms.sent)
    assert "期末余额 1200" in texts[zh.phone] and texts[zh.phone].endswith("/statements/2026-03")
    assert texts[en.phone].startswith("Points statement 2026-03: balance 300")
    logs = NotificationLog.objects.filter(member=zh).order_by("channel")
    assert [(log.channel, log.status, log.recipient) for log in logs] == [
        ("email", "delivered", "han@example.com"), ("sms", "delivered", zh.phone),
    ]
    assert logs[0].key == f"statement:{zh.pk}:2026-03:email" and logs[0].sent_at is not None


def test_no_consent_no_message_but_the_statement_is_stored(clock, bu, sends, django_capture_on_commit_callbacks):
    member = member_with(clock, bu)  # no consent at all
    addressless = member_with(clock, bu, email="", consent_email=True, consent_sms=False)

    generate(clock, django_capture_on_commit_callbacks)

    assert sends == [] and mail.outbox == []
    assert Statement.objects.filter(member__in=[member, addressless]).count() == 2
    assert sorted(NotificationLog.objects.values_list("member_id", "channel", "status", "skip_reason")) == sorted([
        (member.pk, "email", "skipped", SkipReason.NO_CONSENT), (member.pk, "sms", "skipped", SkipReason.NO_CONSENT),
        (addressless.pk, "email", "skipped", SkipReason.NO_ADDRESS),
        (addressless.pk, "sms", "skipped", SkipReason.NO_CONSENT),
    ])
    [report] = run_reports(runs=["statement:2026-03"])
    assert (report.sent, report.skipped_for_consent, report.skipped, report.failed) == (0, 3, 4, 0)


def test_running_the_job_again_sends_nothing_twice(clock, bu, sends, sms, django_capture_on_commit_callbacks):
    member = member_with(clock, bu, consent_email=True, consent_sms=True)
    generate(clock, django_capture_on_commit_callbacks)
    first = list(sends)
    drain(sends)

    generate(clock, django_capture_on_commit_callbacks, at=shanghai(2026, 4, 1, 5))
    assert sends == []  # nothing left queued
    assert [notification_deliver(log_id=log_id) for log_id in first] == [None, None]  # a duplicate task
    assert len(mail.outbox) == 1 and len(sms.sent) == 1
    assert NotificationLog.objects.filter(member=member).count() == 2


def test_a_failed_send_keeps_the_statement_and_is_retried_with_backoff(
    clock, bu, sends, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.statements.backends.FailingEmailBackend"
    member = member_with(clock, bu, consent_email=True)
    Failing.reset(2)
    generate(clock, django_capture_on_commit_callbacks)
    [log_id] = sends

    result = notification_send.apply(args=[log_id])  # fails twice, retried eagerly, then sent

    log = NotificationLog.objects.get(pk=log_id)
    assert result.get() == NotificationStatus.DELIVERED
    assert (log.status, log.attempts, log.error) == ("delivered", 3, "")
    assert len(mail.outbox) == 1 and Statement.objects.filter(member=member).exists()


def test_sends_give_up_after_the_retries_and_an_operator_retry_sends(
    clock, bu, sends, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.statements.backends.FailingEmailBackend"
    settings.NOTIFICATIONS_MAX_RETRIES = 2
    member_with(clock, bu, consent_email=True)
    Failing.reset(10)
    generate(clock, django_capture_on_commit_callbacks)
    [log_id] = sends

    assert notification_send.apply(args=[log_id]).get() == NotificationStatus.FAILED
    log = NotificationLog.objects.get(pk=log_id)
    assert (log.status, log.attempts) == ("failed", 3)
    assert log.error == "ConnectionRefusedError: SMTP server refused the connection"
    [report] = run_reports(runs=["statement:2026-03"])
    assert report.failed == 1 and report.sent == 0

    Failing.reset(0)
    sends.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_retry(log_ids=[log_id]) == [log_id]
    assert drain(sends) == [NotificationStatus.DELIVERED]
    assert len(mail.outbox) == 1


def test_the_sweep_picks_up_a_retry_that_was_lost(clock, bu, sends, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "tests.statements.backends.FailingEmailBackend"
    member_with(clock, bu, consent_email=True)
    Failing.reset(1)
    generate(clock, django_capture_on_commit_callbacks)
    [log_id] = sends
    with pytest.raises(NotificationFailed):
        notification_deliver(log_id=log_id)  # the retry this failure asked for never arrives
    handed = []
    with mock.patch.object(notification_send, "delay", side_effect=handed.append):
        clock.set(shanghai(2026, 4, 1, 4, 30))
        assert notifications_dispatch_due() == 0  # the retry may still come
        clock.set(shanghai(2026, 4, 1, 6))
        assert notifications_dispatch_due() == 1
    assert handed == [log_id]
    assert notification_deliver(log_id=log_id) == NotificationStatus.DELIVERED
    assert NotificationLog.objects.get(pk=log_id).attempts == 2 and len(mail.outbox) == 1


def test_backoff_doubles_up_to_a_cap(settings):
    from members.notifications.tasks import retry_delay

    settings.NOTIFICATIONS_RETRY_BACKOFF_SECONDS, settings.NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS = 60, 300
    assert [retry_delay(n) for n in range(5)] == [60, 120, 240, 300, 300]


def test_no_sms_in_quiet_hours_it_waits_for_the_morning(clock, bu, sends, sms, settings, django_capture_on_commit_callbacks):
    settings.NOTIFICATIONS_SMS_QUIET_HOURS = "21:00-08:00"
    member = member_with(clock, bu, consent_email=True, consent_sms=True)

    generate(clock, django_capture_on_commit_callbacks, at=shanghai(2026, 4, 1, 4))

    sms_log = NotificationLog.objects.get(member=member, channel="sms")
    assert (sms_log.status, sms_log.not_before) == ("queued", shanghai(2026, 4, 1, 8))
    assert drain(sends) == [NotificationStatus.DELIVERED]  # only the e-mail went at 04:00
    assert sms.sent == []
    assert logs_due(now=shanghai(2026, 4, 1, 7, 59), dispatched_before=shanghai(2026, 4, 1, 7), after_id=0, limit=10) == []

    clock.set(shanghai(2026, 4, 1, 8, 5))
    handed = []
    with mock.patch.object(notification_send, "delay", side_effect=handed.append):
        assert notifications_dispatch_due() == 1
        assert notifications_dispatch_due() == 0  # handed over: not again for a while
    assert handed == [sms_log.pk]
    assert notification_deliver(log_id=sms_log.pk) == NotificationStatus.DELIVERED
    assert len(sms.sent) == 1


def test_quiet_hours_windows(settings):
    settings.NOTIFICATIONS_SMS_QUIET_HOURS = "21:00-08:00"
    assert sms_allowed_from(shanghai(2026, 4, 1, 20, 59)) == shanghai(2026, 4, 1, 20, 59)
    assert sms_allowed_from(shanghai(2026, 4, 1, 21, 0)) == shanghai(2026, 4, 2, 8)
    assert sms_allowed_from(shanghai(2026, 4, 2, 3, 0)) == shanghai(2026, 4, 2, 8)
    assert sms_allowed_from(shanghai(2026, 4, 2, 8, 0)) == shanghai(2026, 4, 2, 8)
    settings.NOTIFICATIONS_SMS_QUIET_HOURS = "12:00-14:00"
    assert sms_allowed_from(shanghai(2026, 4, 2, 13, 0)) == shanghai(2026, 4, 2, 14)
    assert sms_allowed_from(shanghai(2026, 4, 2, 15, 0)) == shanghai(2026, 4, 2, 15)


def test_an_edited_template_is_used_and_a_broken_one_stops_nothing(
    clock, bu, sends, sms, django_capture_on_commit_callbacks
):
    NotificationTemplate.objects.create(kind="statement", channel="sms", language="zh-hans",
                                        body_text="【积分】{{ period }} 余额 {{ closing_balance }}")
    NotificationTemplate.objects.create(kind="statement", channel="email", language="zh-hans", subject="{% if period %}unclosed",
                                        body_text="x")
    member = member_with(clock, bu, consent_email=True, consent_sms=True)

    generate(clock, django_capture_on_commit_callbacks)

    assert drain(sends) == [NotificationStatus.DELIVERED]
    assert sms.sent == [(member.phone, "【积分】2026-03 余额 1200")]
    email = NotificationLog.objects.get(member=member, channel="email")
    assert email.status == "failed" and email.error.startswith("template:")
    assert Statement.objects.filter(member=member).exists()

    NotificationTemplate.objects.filter(channel="email").update(is_active=False)
    sends.clear()
    with django_capture_on_commit_callbacks(execute=True):
        notifications_retry(log_ids=[email.pk])
    assert drain(sends) == [NotificationStatus.DELIVERED]
    assert mail.outbox[0].subject == "您的 2026 年 3 月积分对账单"


def test_a_suspended_member_gets_nothing(clock, bu, sends, django_capture_on_commit_callbacks):
    member = member_with(clock, bu, consent_email=True, consent_sms=True)
    member_update(member=member, status="suspended")
    generate(clock, django_capture_on_commit_callbacks)
    assert sends == []
    assert set(NotificationLog.objects.values_list("skip_reason", flat=True)) == {SkipReason.INACTIVE}
    assert NotificationLog.objects.count() == 2
    assert timedelta(0) < shanghai(2026, 4, 1, 4) - Statement.objects.get().period_end

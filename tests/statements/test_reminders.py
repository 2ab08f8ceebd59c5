"""Expiry reminders, near-upgrade nudges and win-back: who gets one, what it says, once per
key however often the job runs, and nothing for points already spent or without consent."""

from datetime import date

import pytest

from members.notifications.models import NotificationLog
from members.services import member_update
from points.earning import points_earn
from points.services import points_spend
from points.statements.reminders import expiry_reminders_batch, upgrade_nudges_batch, winback_batch
from points.statements.tasks import send_expiry_reminders, send_winback
from tests.factories import enrol_member
from tests.statements.conftest import shanghai
from tests.factories import ladder

pytestmark = pytest.mark.django_db


def reachable(**consents):
    member = enrol_member(name="Li Lei", email="lilei@example.com")
    member_update(member=member, consent_email=True, consent_sms=True, **consents)
    return member


def sent(member, kind):
    return list(
        NotificationLog.objects.filter(member=member, kind=kind).order_by("key", "channel").values_list("key", "status")
    )


def test_expiry_reminders_30_and_7_days_before_once_each_and_not_for_spent_points(clock, bu, sends):
    bu.expiry_months = 1
    bu.save()
    clock.set(shanghai(2026, 3, 10, 12))
    keeps, spends = reachable(), reachable()
    for member in (keeps, spends):
        points_earn(member_id=member.pk, business_unit=bu, points=300)  # valid through 10 April
    clock.set(shanghai(2026, 3, 11, 9))
    first = expiry_reminders_batch(run_day=date(2026, 3, 11), offset=30)
    again = expiry_reminders_batch(run_day=date(2026, 3, 11), offset=30)
    assert (first.messages, first.queued) == (2, 4) and again.queued == 0

    clock.set(shanghai(2026, 3, 20))
    points_spend(member_id=spends.pk, points=300, business_unit=bu)
    clock.set(shanghai(2026, 4, 3, 9))
    expiry_reminders_batch(run_day=date(2026, 4, 3), offset=7)

    assert sent(keeps, "expiry_reminder") == [
        (f"expiry:{keeps.pk}:2026-04-10:30:email", "queued"), (f"expiry:{keeps.pk}:2026-04-10:30:sms", "queued"),
        (f"expiry:{keeps.pk}:2026-04-10:7:email", "queued"), (f"expiry:{keeps.pk}:2026-04-10:7:sms", "queued"),
    ]
    assert [key for key, _status in sent(spends, "expiry_reminder")] == [
        f"expiry:{spends.pk}:2026-04-10:30:email", f"expiry:{spends.pk}:2026-04-10:30:sms",
    ]
    seven = NotificationLog.objects.get(key=f"expiry:{keeps.pk}:2026-04-10:7:sms")
    assert "300 积分将于 2026-04-10 过期" in seven.body_text
    assert seven.context["points"] == 300


def test_an_expiry_reminder_counts_only_what_is_left(clock, bu, sends):
    bu.expiry_months = 1
    bu.save()
    clock.set(shanghai(2026, 3, 10, 12))
    member = reachable()
    member_update(member=member, language="en")
    points_earn(member_id=member.pk, business_unit=bu, points=300)
    points_spend(member_id=member.pk, points=120, business_unit=bu)
    clock.set(shanghai(2026, 4, 3, 9))
    send_expiry_reminders.apply(kwargs={"day": "2026-04-03", "offset": 7})
    email = NotificationLog.objects.get(member=member, kind="expiry_reminder", channel="email")
    assert email.subject == "180 of your points expire on 2026-04-10"


def test_near_upgrade_nudge_within_the_distance_once_a_month(clock, bu, sends, settings):
    settings.NOTIFICATIONS_UPGRADE_NUDGE_DISTANCE = 200
    ladder()  # Silver from 1,000 points, Gold from 5,000
    clock.set(shanghai(2026, 5, 6, 15))
    close, far, no_marketing = reachable(consent_marketing=True), reachable(consent_marketing=True), reachable()
    points_earn(member_id=close.pk, business_unit=bu, points=880)
    points_earn(member_id=far.pk, business_unit=bu, points=100)
    points_earn(member_id=no_marketing.pk, business_unit=bu, points=900)
    clock.set(shanghai(2026, 5, 7, 10))
    batch = upgrade_nudges_batch(run_day=date(2026, 5, 7))
    assert batch.messages == 2  # close and no_marketing are within 200 of Silver

    sms = NotificationLog.objects.get(member=close, kind="upgrade_nudge", channel="sms")
    assert sms.key == f"upgrade:{close.pk}:silver:2026-05:sms" and "距 Silver 还差 120 积分" in sms.body_text
    assert not NotificationLog.objects.filter(member=far).exists()
    assert set(NotificationLog.objects.filter(member=no_marketing).values_list("status", "skip_reason")) == {
        ("skipped", "no_consent")
    }

    clock.set(shanghai(2026, 5, 8, 15))
    points_earn(member_id=close.pk, business_unit=bu, points=20)  # 100 to go: same month, same tier
    clock.set(shanghai(2026, 5, 9, 10))
    upgrade_nudges_batch(run_day=date(2026, 5, 9))
    assert NotificationLog.objects.filter(member=close, kind="upgrade_nudge").count() == 2


def test_winback_for_dormant_members_at_most_once_a_month(clock, bu, sends, settings):
    settings.NOTIFICATIONS_WINBACK_DAYS = 90
    clock.set(shanghai(2026, 1, 5))
    dormant, active, empty = (reachable(consent_marketing=True) for _ in range(3))
    points_earn(member_id=dormant.pk, business_unit=bu, points=500)
    points_earn(member_id=active.pk, business_unit=bu, points=500)
    points_earn(member_id=empty.pk, business_unit=bu, points=50)
    points_spend(member_id=empty.pk, points=50, business_unit=bu)
    clock.set(shanghai(2026, 3, 1))
    points_spend(member_id=active.pk, points=10, business_unit=bu)

    clock.set(shanghai(2026, 4, 10, 10, 30))
    assert send_winback.apply(kwargs={"day": "2026-04-10"}).get() == 1
    assert send_winback.apply(kwargs={"day": "2026-04-11"}).get() == 1  # considered again, queued nothing
    assert sent(dormant, "winback") == [
        (f"winback:{dormant.pk}:2026-04:email", "queued"), (f"winback:{dormant.pk}:2026-04:sms", "queued"),
    ]
    clock.set(shanghai(2026, 5, 2, 10, 30))
    winback_batch(run_day=date(2026, 5, 2))
    assert len(sent(dormant, "winback")) == 4
    assert not NotificationLog.objects.filter(member__in=[active, empty]).exists()
    email = NotificationLog.objects.get(key=f"winback:{dormant.pk}:2026-05:email")
    assert email.subject == "好久不见，您还有 500 积分"

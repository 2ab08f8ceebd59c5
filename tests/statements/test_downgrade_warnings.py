"""Tier downgrade warnings: a member whom requalification finds below their tier is told, at the
start of the grace, the level they would drop to, what they need to keep theirs and by when;
once per grace period however often the job runs; a new period warns again."""

import pytest

from members.notifications.models import NotificationLog
from members.services import member_update
from points.earning import points_earn
from points.services import posting_reverse
from tests.factories import enrol_member, ladder
from tests.statements.conftest import shanghai
from tiers.models import MemberTier
from tiers.services import tier_evaluate, tier_requalify_batch, tier_set_manual

pytestmark = pytest.mark.django_db


def warnings_of(member):
    return list(NotificationLog.objects.filter(member=member, kind="tier_downgrade").order_by("key")
                .values_list("key", "status"))


def test_a_member_below_their_tier_is_warned_once_per_grace_period(clock, bu, sends, django_capture_on_commit_callbacks):
    _programme, levels = ladder()
    clock.set(shanghai(2026, 3, 2, 10))
    member = enrol_member(name="Li Lei", email="lilei@example.com")
    member_update(member=member, consent_email=True, consent_sms=True, language="en")
    purchase = points_earn(member_id=member.pk, business_unit=bu, points=5200).posting
    tier_evaluate(member=member)
    assert MemberTier.objects.get(member=member).level == levels["gold"]
    posting_reverse(posting_id=purchase.pk, points=700)  # 4,500 qualifying points: below Gold

    found_below = clock.set(shanghai(2026, 3, 3, 2, 30))
    with django_capture_on_commit_callbacks(execute=True):
        tier_requalify_batch(now=found_below)
        tier_requalify_batch(now=found_below)
    tier_requalify_batch(now=clock.set(shanghai(2026, 3, 4, 2, 30)))  # the next day, still in grace

    key = f"tier_downgrade:{member.pk}:2026-03-03"
    assert warnings_of(member) == [(f"{key}:email", "queued"), (f"{key}:sms", "queued")]
    email = NotificationLog.objects.get(key=f"{key}:email")
    assert email.context["drop_to"] == "Silver" and email.context["needed"] == 500
    assert email.context["downgrade_on"] == "2026-04-02"
    assert "Keep your Gold tier: 500 qualifying points more by 2026-04-02" == email.subject
    assert "moves to Silver" in email.body_text
    assert sorted(sends) == sorted(NotificationLog.objects.filter(member=member).values_list("id", flat=True))


def test_the_warning_in_chinese_and_a_new_grace_period_warns_again(clock, bu):
    _programme, levels = ladder()
    clock.set(shanghai(2026, 3, 2, 10))
    member = enrol_member(name="韩梅梅")
    member_update(member=member, consent_sms=True)
    purchase = points_earn(member_id=member.pk, business_unit=bu, points=1100).posting
    tier_evaluate(member=member)
    posting_reverse(posting_id=purchase.pk, points=200)
    tier_requalify_batch(now=clock.set(shanghai(2026, 3, 3, 2, 30)))
    sms = NotificationLog.objects.get(key=f"tier_downgrade:{member.pk}:2026-03-03:sms")
    assert "2026-04-02 前再获得 100 定级积分即可保持Silver" in sms.body_text
    assert "Member" in sms.body_text

    topped_up = points_earn(member_id=member.pk, business_unit=bu, points=300).posting  # back above Silver
    tier_requalify_batch(now=clock.set(shanghai(2026, 3, 10, 2, 30)))
    assert MemberTier.objects.get(member=member).below_since is None
    posting_reverse(posting_id=topped_up.pk, points=250)  # below again: a new grace period
    tier_requalify_batch(now=clock.set(shanghai(2026, 3, 12, 2, 30)))
    assert [key for key, _status in warnings_of(member)] == [
        f"tier_downgrade:{member.pk}:2026-03-03:email", f"tier_downgrade:{member.pk}:2026-03-03:sms",
        f"tier_downgrade:{member.pk}:2026-03-12:email", f"tier_downgrade:{member.pk}:2026-03-12:sms",
    ]
    assert NotificationLog.objects.get(key=f"tier_downgrade:{member.pk}:2026-03-12:email").skip_reason == "no_consent"


def test_no_warning_without_a_pending_downgrade_or_under_a_manual_tier(clock, bu, operator):
    _programme, levels = ladder()
    clock.set(shanghai(2026, 3, 2, 10))
    steady, manual = enrol_member(), enrol_member()
    for member in (steady, manual):
        member_update(member=member, consent_sms=True)
        earned = points_earn(member_id=member.pk, business_unit=bu, points=1200).posting
        tier_evaluate(member=member)
    posting_reverse(posting_id=earned.pk, points=300)  # the manual member falls below Silver
    tier_set_manual(member_id=manual.pk, level=levels["gold"], reason="complaint", actor=operator,
                    ends_at=shanghai(2026, 12, 31))
    tier_requalify_batch(now=clock.set(shanghai(2026, 3, 3, 2, 30)))
    assert warnings_of(steady) == [] and warnings_of(manual) == []
    assert MemberTier.objects.get(member=steady).below_since is None
    assert MemberTier.objects.get(member=manual).below_since is not None

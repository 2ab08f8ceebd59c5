""""Points credited" messages: only for business units that ask for them, handed to celery once
the earn commits (nothing of the message inside the money transaction, nothing for an earn
rolled back), one message per posting however often the task runs."""

from decimal import Decimal

import pytest

from members.notifications.models import NotificationLog
from members.services import member_update
from points.batch import EarnBatchItem, points_earn_batch
from points.earning import points_earn
from points.exceptions import MemberInactive
from points.statements.credited import points_credited_queue
from tests.factories import enrol_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def handed(monkeypatch):
    """The posting ids handed to the task, in order; nothing reaches a broker."""
    postings: list[int] = []
    monkeypatch.setattr("points.statements.credited.enqueue_points_credited", postings.append)
    return postings


@pytest.fixture
def reachable():
    member = enrol_member(name="Li Lei", email="lilei@example.com")
    member_update(member=member, consent_email=True, consent_sms=True, language="en")
    return member


def test_an_earn_at_a_unit_that_asks_is_announced_after_commit_once(bu, other_bu, reachable, handed, sends,
                                                                    django_capture_on_commit_callbacks):
    bu.notify_points_credited = True
    bu.save()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        posting = points_earn(member_id=reachable.pk, business_unit=bu, points=120).posting
        points_earn(member_id=reachable.pk, business_unit=other_bu, points=50)
    assert handed == [] and NotificationLog.objects.count() == 0, "nothing before the earn commits"
    for callback in callbacks:
        callback()
    assert handed == [posting.pk], "only the unit that asks"

    with django_capture_on_commit_callbacks(execute=True):
        assert points_credited_queue(posting_id=posting.pk) == 2
        assert points_credited_queue(posting_id=posting.pk) == 0
    rows = NotificationLog.objects.filter(kind="points_credited").order_by("channel")
    assert [row.key for row in rows] == [f"credited:{posting.pk}:email", f"credited:{posting.pk}:sms"]
    assert "120 points from Central Mall" in rows[1].body_text
    assert sorted(sends) == sorted(row.pk for row in rows)


def test_the_bulk_earn_announces_each_posting_after_commit(bu, reachable, handed, django_capture_on_commit_callbacks):
    bu.notify_points_credited = True
    bu.save()
    other = enrol_member()
    items = [EarnBatchItem(idempotency_key=f"r-{member.pk}", member_id=member.pk, amount_cny=Decimal("88.00"),
                           receipt_no=f"R{member.pk}") for member in (reachable, other)]
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = points_earn_batch(items=items, business_unit=bu, key_merchant=None, scope="test")
        replayed = points_earn_batch(items=items, business_unit=bu, key_merchant=None, scope="test")
    assert sorted(handed) == sorted(outcome.posting.pk for outcome in outcomes)
    assert [outcome.status for outcome in replayed] == ["replayed", "replayed"], "a replay announces nothing"


def test_an_earn_refused_announces_nothing(bu, reachable, handed, django_capture_on_commit_callbacks):
    bu.notify_points_credited = True
    bu.save()
    member_update(member=reachable, status="suspended")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(MemberInactive):
        points_earn(member_id=reachable.pk, business_unit=bu, points=120)
    assert handed == []

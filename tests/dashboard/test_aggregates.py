"""The dashboard's daily aggregates (points.aggregates) against the ledger: after earn, spend,
expiry and reversals, on rebuild and refresh, for backdated postings and at Shanghai midnight."""

import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from points.aggregates import aggregates_mismatches, aggregates_rebuild, aggregates_rebuild_all, aggregates_refresh
from points.earning import points_earn
from points.expiry import expiry_run_batch
from points.ledger import Idempotency
from points.models import LedgerDay, LotFlowDay, MemberDay, Posting, PostingKind, Wallet
from points.services import points_adjust, points_spend, posting_reverse
from points.timeutils import local_date
from tests.factories import BusinessUnitFactory, OperatorFactory, enrol_member


def key():
    return Idempotency(scope="test", key=uuid.uuid4().hex)


def earn(member, bu, points, **kwargs):
    return points_earn(member_id=member.pk, business_unit=bu, points=points, idempotency=key(), **kwargs).posting


def spend(member, bu, points):
    return points_spend(member_id=member.pk, business_unit=bu, points=points, idempotency=key()).posting


def day_figures(**filters):
    return {(row.kind): (row.points_in, row.points_out, row.postings)
            for row in LedgerDay.objects.filter(**filters)}


@pytest.fixture
def hotel(db):
    return BusinessUnitFactory(code="hotel", name="Harbour Hotel")


def test_every_kind_of_posting_is_counted_once_and_the_aggregates_equal_the_ledger(bu, hotel, member, operator):
    earned = earn(member, hotel, 500)
    spent = spend(member, bu, 200)
    posting_reverse(posting_id=spent.pk, points=50, idempotency=key())
    posting_reverse(posting_id=earned.pk, points=100, idempotency=key())
    points_adjust(member_id=member.pk, points=30, business_unit=bu, reason="goodwill", actor=operator, idempotency=key())
    aggregates_rebuild_all()

    assert day_figures() == {
        PostingKind.EARN: (500, 0, 1), PostingKind.SPEND: (0, 200, 1), PostingKind.CANCEL: (50, 0, 1),
        PostingKind.REFUND: (0, 100, 1), PostingKind.ADJUST: (30, 0, 1),
    }
    assert LedgerDay.objects.get(kind=PostingKind.ADJUST).manual_points_in == 30
    wallet = Wallet.objects.get(member=member)
    assert sum(LedgerDay.objects.values_list("wallet_net", flat=True)) == wallet.balance == 280
    # Issued at the hotel, redeemed at the mall: the lot flows carry the issuer.
    spend_flow = LotFlowDay.objects.get(kind=PostingKind.SPEND)
    assert (spend_flow.business_unit_id, spend_flow.issuer_id, spend_flow.points) == (bu.pk, hotel.pk, -200)
    assert MemberDay.objects.filter(kind=PostingKind.SPEND).get().wallet_id == wallet.pk
    assert aggregates_mismatches() == []


def test_expiry_is_counted_on_its_day(bu, member):
    earned_at = timezone.now() - timedelta(days=20)
    earn(member, bu, 300, occurred_at=earned_at)
    lot = member.wallet.lots.get()
    expiry_run_batch(now=lot.expires_at + timedelta(seconds=1))
    aggregates_rebuild_all()
    expired = LedgerDay.objects.get(kind=PostingKind.EXPIRE)
    assert (expired.points_out, expired.wallet_net) == (300, -300)
    assert expired.day == local_date(lot.expires_at + timedelta(seconds=1))
    assert aggregates_mismatches() == []


def test_a_rebuild_is_idempotent(bu, member):
    earn(member, bu, 100)
    spend(member, bu, 40)
    aggregates_rebuild_all()
    first = list(LedgerDay.objects.values("day", "kind", "points_in", "points_out", "postings").order_by("kind"))
    today = timezone.localdate()
    aggregates_rebuild(first=today - timedelta(days=3), last=today)
    aggregates_rebuild(first=today, last=today)
    again = list(LedgerDay.objects.values("day", "kind", "points_in", "points_out", "postings").order_by("kind"))
    assert again == first
    assert MemberDay.objects.count() == 2 and LotFlowDay.objects.count() == 2


def test_the_job_puts_a_backdated_posting_on_its_own_day(bu, member, settings):
    settings.DASHBOARD_AGGREGATES_LAG_SECONDS = 0
    earn(member, bu, 100)
    aggregates_refresh()
    dated = timezone.now() - timedelta(days=10)
    earn(member, bu, 70, occurred_at=dated)

    done = aggregates_refresh()

    assert done.days == [local_date(dated)]
    backdated = LedgerDay.objects.get(day=local_date(dated))
    assert (backdated.kind, backdated.points_in) == (PostingKind.EARN, 70)
    assert LedgerDay.objects.get(day=timezone.localdate()).points_in == 100
    assert aggregates_mismatches() == []


def test_the_job_looks_back_by_the_lag_for_postings_committed_late(bu, member, settings):
    """A posting booked just before the last run's watermark (its transaction still open then)
    is taken in by the next run."""
    settings.DASHBOARD_AGGREGATES_LAG_SECONDS = 600
    aggregates_refresh()
    earn(member, bu, 90)
    aggregates_refresh(now=timezone.now() - timedelta(seconds=1))  # as if it ran before the commit
    LedgerDay.objects.all().delete()  # ... and so missed it
    aggregates_refresh()
    assert LedgerDay.objects.get().points_in == 90


def test_days_are_cut_at_shanghai_midnight(bu, member):
    before_midnight = datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Shanghai
    after_midnight = datetime(2026, 3, 1, 16, 0, 0, tzinfo=UTC)  # 00:00:00 on 2 March in Shanghai
    with mock.patch("django.utils.timezone.now", return_value=after_midnight + timedelta(hours=1)):
        earn(member, bu, 10, occurred_at=before_midnight)
        earn(member, bu, 20, occurred_at=after_midnight)
    aggregates_rebuild_all()
    by_day = dict(LedgerDay.objects.values_list("day", "points_in"))
    assert by_day == {datetime(2026, 3, 1).date(): 10, datetime(2026, 3, 2).date(): 20}


def test_the_reconcile_command_names_the_day_that_differs(bu, member):
    earn(member, bu, 100)
    aggregates_rebuild_all()
    call_command("verify_aggregates")
    LedgerDay.objects.update(points_in=99)
    with pytest.raises(CommandError, match="differ from the ledger"):
        call_command("verify_aggregates")
    assert aggregates_mismatches() == [f"{timezone.localdate():%Y-%m-%d}: the ledger figures differ from the ledger's"]


def test_the_rebuild_command_rebuilds_a_range(bu, member):
    earn(member, bu, 100)
    today = f"{timezone.localdate():%Y-%m-%d}"
    call_command("rebuild_aggregates", "--from", today, "--to", today)
    assert LedgerDay.objects.get().points_in == 100


OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["earn", "spend", "cancel", "refund", "adjust", "backdate"]), st.integers(1, 300),
              st.integers(0, 1)),
    min_size=1, max_size=10,
)


@pytest.mark.django_db
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_aggregates_equal_the_ledger_after_any_sequence(operations):
    units = [BusinessUnitFactory(), BusinessUnitFactory()]
    member = enrol_member()
    operator = OperatorFactory()
    for name, points, unit in operations:
        bu = units[unit]
        balance = Wallet.objects.get(member=member).balance
        earns = Posting.objects.filter(wallet__member=member, kind=PostingKind.EARN)
        spends = Posting.objects.filter(wallet__member=member, kind=PostingKind.SPEND)
        if name == "earn":
            earn(member, bu, points)
        elif name == "backdate":
            earn(member, bu, points, occurred_at=timezone.now() - timedelta(days=points % 29 + 1))
        elif name == "spend" and balance:
            spend(member, bu, min(points, balance))
        elif name == "adjust":
            points_adjust(member_id=member.pk, points=points, business_unit=bu, reason="r", actor=operator,
                          idempotency=key())
        elif name in ("cancel", "refund") and (earns if name == "refund" else spends).exists():
            original = (earns if name == "refund" else spends).first()
            reversed_already = -sum(r.points for r in original.reversals.all()) if name == "refund" else \
                sum(r.points for r in original.reversals.all())
            left = abs(original.points) - abs(reversed_already)
            if left > 0:
                posting_reverse(posting_id=original.pk, points=min(points, left), idempotency=key())
        aggregates_refresh()
        assert aggregates_mismatches() == []


def test_the_refresh_is_a_beat_job_every_ten_minutes_and_its_task_refreshes(bu, member):
    from django_celery_beat.models import PeriodicTask

    from points.tasks import refresh_dashboard_aggregates

    job = PeriodicTask.objects.select_related("interval").get(task="points.tasks.refresh_dashboard_aggregates")
    assert (job.interval.every, job.interval.period, job.enabled) == (10, "minutes", True)
    earn(member, bu, 55)
    assert refresh_dashboard_aggregates.apply().get() == 1
    assert LedgerDay.objects.get().points_in == 55

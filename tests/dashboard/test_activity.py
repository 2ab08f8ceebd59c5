"""The active members' gaps (points.activity): every window's and every scope's sum equals the
distinct count of the member-days it stands for, after a whole rebuild and after recomputing
from any day on, and the job keeps them right when a backdated posting changes a later day's gap."""

import uuid
from datetime import date, timedelta

import pytest
from django.db.models import Q
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from members.models import BusinessUnitKind
from points.activity import (
    active_members,
    active_members_by_period,
    activity_mismatches,
    activity_recompute,
    activity_scope,
)
from points.aggregates import aggregates_mismatches, aggregates_refresh
from points.earning import points_earn
from points.ledger import Idempotency
from points.models import ActivityGap, MemberDay, PostingKind
from tests.factories import BusinessUnitFactory, MerchantFactory, enrol_member

START = date(2026, 1, 1)
DAYS = 40


def distinct_active(first: date, last: date, q: Q) -> int:
    """What the gaps stand for: a distinct count of the member-days."""
    return (MemberDay.objects.filter(q, day__gte=first, day__lte=last, kind__in=[PostingKind.EARN, PostingKind.SPEND])
            .values("wallet_id").distinct().count())


def gap_rows() -> list[tuple]:
    return sorted(ActivityGap.objects.values_list("scope", "day", "previous_day", "members"), key=str)


@pytest.fixture
def world(db):
    """Three members' wallets, two business units of different kinds with a merchant each."""
    mall = BusinessUnitFactory(kind=BusinessUnitKind.MALL)
    hotel = BusinessUnitFactory(kind=BusinessUnitKind.HOTEL)
    merchants = [MerchantFactory(business_unit=mall), MerchantFactory(business_unit=hotel)]
    wallets = [enrol_member().wallet for _ in range(3)]
    return {"units": [mall, hotel], "merchants": merchants, "wallets": wallets}


MEMBER_DAYS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, DAYS - 1), st.integers(0, 1), st.booleans(),
              st.sampled_from([PostingKind.EARN, PostingKind.SPEND, PostingKind.EXPIRE])),
    min_size=1, max_size=25, unique_by=lambda row: row[:4] + (row[4],),
)


def store(world, rows) -> None:
    MemberDay.objects.bulk_create(
        MemberDay(day=START + timedelta(days=day), wallet=world["wallets"][w], business_unit=world["units"][unit],
                  merchant=world["merchants"][unit] if at_merchant else None, kind=kind, postings=1)
        for w, day, unit, at_merchant, kind in rows
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=MEMBER_DAYS, later=MEMBER_DAYS, window=st.tuples(st.integers(0, DAYS - 1), st.integers(0, DAYS - 1)),
       since=st.integers(0, DAYS - 1))
def test_every_window_and_scope_sums_to_the_distinct_count(world, rows, later, window, since):
    MemberDay.objects.all().delete()
    store(world, rows)
    activity_recompute(since=None)
    mall, hotel = world["units"]
    scopes = {
        activity_scope(): Q(),
        activity_scope(business_unit_id=mall.pk): Q(business_unit=mall),
        activity_scope(bu_kind=BusinessUnitKind.HOTEL): Q(business_unit__kind=BusinessUnitKind.HOTEL),
        activity_scope(merchant_id=world["merchants"][0].pk): Q(merchant=world["merchants"][0]),
    }
    first, last = (START + timedelta(days=d) for d in sorted(window))
    for scope, q in scopes.items():
        assert active_members(scope=scope, first=first, last=last) == distinct_active(first, last, q), scope
        by_week = active_members_by_period(scope=scope, first=first, last=last, bucket="week")
        for week_start, n in by_week.items():
            week_end = min(last, week_start + timedelta(days=6))
            assert n == distinct_active(max(first, week_start), week_end, q)

    # Days from `since` on change; recomputing from `since` gives what a whole rebuild gives.
    cut = START + timedelta(days=since)
    MemberDay.objects.filter(day__gte=cut).delete()
    store(world, [row for row in later if row[1] >= since])
    activity_recompute(since=cut)
    incremental = gap_rows()
    activity_recompute(since=None)
    assert incremental == gap_rows()
    assert activity_mismatches(first=START, last=START + timedelta(days=DAYS)) == []


def test_filters_that_exclude_each_other_count_no_one(world):
    mall, hotel = world["units"]
    hotel_shop = world["merchants"][1]
    assert activity_scope(business_unit_id=mall.pk, merchant_id=hotel_shop.pk) is None
    assert activity_scope(business_unit_id=mall.pk, bu_kind=BusinessUnitKind.HOTEL) is None
    assert activity_scope(bu_kind=BusinessUnitKind.MALL, merchant_id=hotel_shop.pk) is None
    assert activity_scope(business_unit_id=hotel.pk, merchant_id=hotel_shop.pk) == f"merchant:{hotel_shop.pk}"
    assert active_members(scope=None, first=START, last=START) == 0


def earn(member, bu, points, **kwargs):
    return points_earn(member_id=member.pk, business_unit=bu, points=points,
                       idempotency=Idempotency(scope="test", key=uuid.uuid4().hex), **kwargs)


def test_a_backdated_posting_changes_the_gap_of_the_members_next_day(bu, member, settings):
    settings.DASHBOARD_AGGREGATES_LAG_SECONDS = 0
    today = timezone.localdate()
    earn(member, bu, 10, occurred_at=timezone.now() - timedelta(days=20))
    earn(member, bu, 10)
    aggregates_refresh()
    assert ActivityGap.objects.get(scope="", day=today).previous_day == today - timedelta(days=20)
    assert active_members(scope="", first=today - timedelta(days=10), last=today) == 1

    earn(member, bu, 10, occurred_at=timezone.now() - timedelta(days=5))
    aggregates_refresh()

    # Today's gap now starts five days back, not twenty: a window from four days back still counts
    # the member once, and one of the last ten days counts it once, not twice.
    assert ActivityGap.objects.get(scope="", day=today).previous_day == today - timedelta(days=5)
    assert active_members(scope="", first=today - timedelta(days=10), last=today) == 1
    assert active_members(scope="", first=today - timedelta(days=4), last=today) == 1
    assert aggregates_mismatches() == []


def test_the_reconcile_names_a_day_whose_gaps_are_wrong(bu, member, settings):
    settings.DASHBOARD_AGGREGATES_LAG_SECONDS = 0
    earn(member, bu, 10)
    aggregates_refresh()
    ActivityGap.objects.filter(scope="").update(members=2)
    assert aggregates_mismatches() == [
        f"{timezone.localdate():%Y-%m-%d}: the active members' gaps differ from the member activity"
    ]

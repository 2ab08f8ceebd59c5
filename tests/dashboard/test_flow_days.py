"""Settlement's daily cross-BU flows (settlement.flow_days), kept with the ledger's aggregates:
the job takes in new redemptions, the reconcile names a wrong day, and the clearing lines'
backfill rebuilds the days it wrote lines on."""

import pytest
from django.db.models import Sum
from django.utils import timezone

from points.aggregates import aggregates_mismatches, aggregates_refresh
from points.policies import register_after_post_hook, unregister
from points.services import points_spend, posting_reverse
from settlement.backfill import record_missing_clearing_lines
from settlement.dashboard.selectors import DashboardFilter, flows
from settlement.flow_days import FLOW_KINDS
from settlement.hooks import record_clearing
from settlement.models import ClearingLine, FlowDay
from tests.factories import enrol_member
from tests.settlement.helpers import earn, units

pytestmark = pytest.mark.django_db


def today_window(**kwargs) -> DashboardFilter:
    today = timezone.localdate()
    return DashboardFilter(first=today, last=today, **kwargs)


def sankey(**kwargs) -> dict:
    return {(flow.issuer.pk, flow.redeemer.pk): flow.points for flow in flows(today_window(**kwargs))}


def test_the_job_takes_in_redemptions_and_their_cancels(settings):
    settings.DASHBOARD_AGGREGATES_LAG_SECONDS = 0
    hotel, mall, park = units()
    member = enrol_member(business_unit=hotel)
    earn(member, hotel, 500)
    aggregates_refresh()
    spent = points_spend(member_id=member.pk, business_unit=mall, points=300).posting
    aggregates_refresh()
    assert sankey() == {(hotel.pk, mall.pk): 300}

    posting_reverse(posting_id=spent.pk, points=120)
    aggregates_refresh()

    assert sankey() == {(hotel.pk, mall.pk): 180}
    assert sankey(business_unit_id=park.pk) == {}
    lines = ClearingLine.objects.filter(kind__in=FLOW_KINDS).aggregate(points=Sum("points"), cny=Sum("amount_cny"))
    assert FlowDay.objects.aggregate(points=Sum("points"), cny=Sum("amount_cny")) == lines
    assert aggregates_mismatches() == []


def test_the_reconcile_names_a_day_whose_flows_are_wrong(settings):
    settings.DASHBOARD_AGGREGATES_LAG_SECONDS = 0
    hotel, mall, _park = units()
    member = enrol_member(business_unit=hotel)
    earn(member, hotel, 500)
    points_spend(member_id=member.pk, business_unit=mall, points=200)
    aggregates_refresh()
    FlowDay.objects.update(points=199)
    assert aggregates_mismatches() == [f"{timezone.localdate():%Y-%m-%d}: the cross-BU flows differ from their source"]


@pytest.fixture
def without_clearing_hook():
    unregister(record_clearing)
    yield
    register_after_post_hook(record_clearing)


def test_backfilled_lines_rebuild_their_own_days(settings, without_clearing_hook):
    """Lines written later for old postings are booked on those postings' days, which the job
    has refreshed already: the backfill rebuilds them."""
    settings.DASHBOARD_AGGREGATES_LAG_SECONDS = 0
    hotel, mall, _park = units()
    member = enrol_member(business_unit=hotel)
    earn(member, hotel, 500)
    points_spend(member_id=member.pk, business_unit=mall, points=200)
    aggregates_refresh()
    assert not FlowDay.objects.exists()

    record_missing_clearing_lines()

    assert FlowDay.objects.get().points == 200
    assert sankey() == {(hotel.pk, mall.pk): 200}
    assert aggregates_mismatches() == []

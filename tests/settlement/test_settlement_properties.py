"""Random earns, spends, reversals and expiries over several BUs and months, each month closed in
turn: every closed run equals a recomputation from the ledger, closing a later month never
changes an earlier one, every run reconciles, and over all the months issuance (and credits)
minus redemption, reclaims and breakage equals the change in liability.

Every example works in its own year with fresh BUs and members, so examples never share a period."""

import itertools
from datetime import datetime
from unittest import mock

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from points.exceptions import InsufficientPoints, ReversalExceedsOriginal
from points.expiry import expiry_run_batch
from points.models import Posting, PostingKind
from points.services import points_spend, posting_reverse
from points.timeutils import group_timezone
from settlement.selectors import LIABILITY_SIGNS, _comparable, compute_lines, liability_at, period_bounds, reconcile
from settlement.services import settlement_run_close, settlement_run_compute
from tests.factories import BusinessUnitFactory, enrol_member
from tests.settlement.helpers import earn

MONTHS = 3
YEARS = itertools.count(2041)
operation = st.tuples(
    st.sampled_from(["earn", "spend", "reverse", "expire"]), st.integers(0, 2), st.integers(1, 120), st.integers(0, 9),
)


@pytest.mark.django_db
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(months=st.lists(st.lists(operation, max_size=8), min_size=MONTHS, max_size=MONTHS))
def test_closed_runs_equal_the_ledger_and_conserve(months, ledger_sound):
    year = next(YEARS)
    clock = [datetime(year, 1, 5, 12, tzinfo=group_timezone())]
    with mock.patch("django.utils.timezone.now", lambda: clock[0]):
        units = [BusinessUnitFactory(code=f"p{year}-{n}", expiry_months=1, pending_days=0) for n in range(3)]
        for unit in units:
            unit.refresh_from_db()
        members = [enrol_member() for _ in range(2)]
        periods, closed_lines = [], {}
        for month, operations in enumerate(months):
            period = datetime(year, 1 + month, 1).date()
            clock[0] = datetime(year, 1 + month, 10, 12, tzinfo=group_timezone())
            for index, (kind, unit, points, pick) in enumerate(operations):
                clock[0] += relativedelta(minutes=index + 1)
                member = members[pick % 2]
                try:
                    if kind == "earn":
                        earn(member, units[unit], points)
                    elif kind == "spend":
                        points_spend(member_id=member.pk, business_unit=units[unit], points=points)
                    elif kind == "reverse":
                        mine = list(Posting.objects.filter(wallet__member=member, kind__in=[PostingKind.EARN,
                                                                                              PostingKind.SPEND]))
                        if mine:
                            posting_reverse(posting_id=mine[pick % len(mine)].pk, points=min(points, 20))
                    else:
                        expiry_run_batch(now=clock[0])
                except (InsufficientPoints, ReversalExceedsOriginal):
                    pass
            periods.append(period)
            clock[0] = period_bounds(period)[1] + relativedelta(days=1, hours=3)
            run = settlement_run_close(run_id=settlement_run_compute(period=period).pk)
            closed_lines[period] = _comparable(run.lines.all())
            for earlier in periods:  # closing this month changed no earlier one, and each is the ledger's
                assert _comparable(run.__class__.objects.get(period=earlier).lines.all()) == closed_lines[earlier]
                assert _comparable(compute_lines(period=earlier)) == closed_lines[earlier]
        ids = {unit.pk for unit in units}
        moved = {bu_id: 0 for bu_id in ids}
        for period in periods:
            assert reconcile(period=period, now=clock[0]).problems == []
            for line in run.__class__.objects.get(period=period).lines.filter(payer_id__in=ids):
                moved[line.payer_id] += LIABILITY_SIGNS.get(line.kind, 0) * line.points
        start, end = period_bounds(periods[0])[0], period_bounds(periods[-1])[1]
        opening, closing = liability_at(start), liability_at(end)
        assert moved == {bu_id: closing.get(bu_id, 0) - opening.get(bu_id, 0) for bu_id in ids}
    ledger_sound()

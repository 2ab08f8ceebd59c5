"""Statements reconcile with the ledger: verify_statements passes on generated statements and
names every difference when one is altered or missing; a backdated earn belongs to the month
it was booked in; and, over random histories around Shanghai month boundaries (hypothesis),
every statement equals the ledger at its boundaries and each month opens where the last closed."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import DomainError
from points.earning import points_earn
from points.expiry import expiry_run_batch
from points.ledger import hold_capture, hold_place
from points.models import Posting, PostingKind, Statement
from points.selectors import ledger_problems
from points.services import points_adjust, points_spend, posting_reverse
from points.statements.periods import period_parse
from points.statements.selectors import period_differences
from points.statements.services import statements_generate_batch
from tests.factories import BusinessUnitFactory, OperatorFactory, enrol_member
from tests.statements.conftest import Clock, shanghai

pytestmark = pytest.mark.django_db

MARCH = period_parse("2026-03")


def generate_all(period):
    cursor = 0
    while cursor is not None:
        cursor = statements_generate_batch(period=period, after_member_id=cursor, batch_size=3).cursor


def verify(*args):
    call_command("verify_statements", *args)


def test_verify_passes_then_names_an_altered_and_a_missing_statement(clock, bu, capsys):
    clock.set(shanghai(2026, 3, 3))
    members = [enrol_member() for _ in range(3)]
    for number, member in enumerate(members, start=1):
        points_earn(member_id=member.pk, business_unit=bu, points=100 * number)
    clock.set(MARCH.end + timedelta(hours=4))
    generate_all(MARCH)
    verify()
    assert "statements OK: periods 2026-03" in capsys.readouterr().out

    altered, missing = members[0], members[1]
    with connection.cursor() as cursor:  # the test's transaction, rolled back: triggers off for the damage
        cursor.execute("SET LOCAL session_replication_role = replica")
        Statement.objects.filter(member=altered).update(earned=99, closing_balance=99)
        Statement.objects.filter(member=missing).delete()
        cursor.execute("SET LOCAL session_replication_role = origin")
    with pytest.raises(CommandError, match="3 statement differences"):
        verify("--period", "2026-03")
    errors = capsys.readouterr().err
    assert f"statement 2026-03 of member {altered.pk}: closing_balance is 99, the ledger says 100" in errors
    assert f"statement 2026-03 of member {altered.pk}: earned is 99, the ledger says 100" in errors
    assert f"statement 2026-03 of member {missing.pk}: missing" in errors


def test_a_backdated_earn_belongs_to_the_month_it_was_booked_in(clock, bu):
    clock.set(shanghai(2026, 3, 20))
    member = enrol_member()
    points_earn(member_id=member.pk, business_unit=bu, points=100)
    clock.set(MARCH.end + timedelta(hours=4))
    generate_all(MARCH)
    clock.set(shanghai(2026, 4, 2, 9))
    points_earn(member_id=member.pk, business_unit=bu, points=40, occurred_at=shanghai(2026, 3, 30, 12))
    clock.set(shanghai(2026, 5, 1, 4))
    generate_all(period_parse("2026-04"))

    march, april = Statement.objects.filter(member=member).order_by("period")
    assert (march.earned, march.closing_balance) == (100, 100)
    assert (april.opening_balance, april.earned, april.closing_balance) == (100, 40, 140)
    verify()


# --- random histories ----------------------------------------------------------------------

BOUNDARIES = [shanghai(2026, 2, 1), shanghai(2026, 3, 1), shanghai(2026, 4, 1)]
PERIODS = [period_parse(name) for name in ("2026-01", "2026-02", "2026-03")]
START = shanghai(2026, 1, 20)

moments = st.one_of(
    # near a month boundary: minutes either side of midnight in Shanghai
    st.builds(lambda boundary, minutes: boundary + timedelta(minutes=minutes),
              st.sampled_from(BOUNDARIES), st.integers(-600, 600)),
    st.builds(lambda minutes: START + timedelta(minutes=minutes), st.integers(0, 70 * 24 * 60)),
)
operations = st.tuples(
    moments,
    st.sampled_from(["earn", "earn", "backdated_earn", "spend", "refund", "cancel", "adjust", "expire", "hold"]),
    st.integers(0, 1),  # member
    st.integers(1, 400),  # points
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(history=st.lists(operations, min_size=1, max_size=25))
def test_statements_equal_the_ledger_over_random_histories(history):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    clock = Clock()
    try:
        clock.set(START - timedelta(days=1))
        units = [BusinessUnitFactory(code="mall", expiry_months=1), BusinessUnitFactory(code="hotel", expiry_months=1)]
        members = [enrol_member(), enrol_member()]
        operator = OperatorFactory(username="ops")
        runs = [(period.end + timedelta(hours=4), "statements", period) for period in PERIODS]
        steps = sorted([(at, kind, (member, points)) for at, kind, member, points in history] + runs,
                       key=lambda step: step[0])
        for number, (at, kind, args) in enumerate(steps):
            clock.set(at)
            if kind == "statements":
                generate_all(args)
                continue
            member, points = members[args[0]], args[1]
            unit = units[number % 2]
            try:
                apply(kind, member=member, points=points, unit=unit, operator=operator, at=at)
            except DomainError:
                pass  # refused for a business reason: posts nothing
        assert ledger_problems() == {}
        member_ids = [member.pk for member in members]
        for period in PERIODS:
            assert period_differences(period=period, member_ids=member_ids) == []
        for member in members:
            statements = list(Statement.objects.filter(member=member).order_by("period"))
            by_period = {statement.period: statement for statement in statements}
            for before, after in zip(PERIODS, PERIODS[1:]):
                if before.name in by_period and after.name in by_period:
                    assert by_period[after.name].opening_balance == by_period[before.name].closing_balance
                    assert by_period[after.name].opening_debt == by_period[before.name].closing_debt
                elif after.name in by_period:
                    assert (by_period[after.name].opening_balance, by_period[after.name].opening_debt) == (0, 0)
    finally:
        clock.stop()


def apply(kind, *, member, points, unit, operator, at):
    if kind == "earn":
        points_earn(member_id=member.pk, business_unit=unit, points=points)
    elif kind == "backdated_earn":
        points_earn(member_id=member.pk, business_unit=unit, points=points, occurred_at=at - timedelta(hours=points))
    elif kind == "spend":
        points_spend(member_id=member.pk, points=points, business_unit=unit)
    elif kind in ("refund", "cancel"):
        original = (
            Posting.objects.filter(wallet__member=member, kind=PostingKind.EARN if kind == "refund" else PostingKind.SPEND)
            .order_by("?").first()
        )
        if original is not None:
            posting_reverse(posting_id=original.pk, points=min(points, abs(original.points)))
    elif kind == "adjust":
        points_adjust(member_id=member.pk, points=points if points % 2 else -points, business_unit=unit,
                      reason="correction", actor=operator)
    elif kind == "expire":
        expiry_run_batch(now=at)
    elif kind == "hold":
        hold = hold_place(member_id=member.pk, points=points, business_unit=unit, purpose="mall_order").hold
        hold_capture(hold_id=hold.pk, points=max(1, points // 2))

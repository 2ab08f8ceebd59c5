"""Statement figures from the ledger: boundaries in the group's time zone, every line, the
breakdowns, what expires next, who gets a statement, and the snapshot's own protections."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, ProgrammingError, transaction

from members.models import Member
from points.earning import points_earn
from points.ledger import hold_capture, hold_place
from points.models import EventType, Statement
from points.services import points_adjust, points_spend, posting_reverse
from points.statements.periods import period_parse
from points.statements.selectors import statement_figures
from points.statements.services import PeriodNotOver, statements_generate_batch
from points.statements.tasks import generate_statements
from tests.factories import enrol_member
from tests.statements.conftest import shanghai

pytestmark = pytest.mark.django_db

MARCH = period_parse("2026-03")


def generate(clock, period=MARCH):
    clock.set(period.end + timedelta(hours=4))
    return statements_generate_batch(period=period)


def test_boundaries_are_midnight_in_shanghai_and_lines_add_up(clock, bu, other_bu, operator):
    clock.set(shanghai(2026, 2, 28, 23, 59))  # February in Shanghai (15:59 UTC)
    member = enrol_member(name="Han Meimei")
    points_earn(member_id=member.pk, business_unit=bu, points=1000)
    clock.set(shanghai(2026, 3, 1, 0, 1))  # March in Shanghai, still 28 February in UTC
    earn = points_earn(member_id=member.pk, business_unit=bu, points=500, event_type=EventType.PARKING).posting
    clock.set(shanghai(2026, 3, 10, 12))
    points_earn(member_id=member.pk, business_unit=other_bu, points=300)
    spend = points_spend(member_id=member.pk, points=400, business_unit=other_bu).posting
    clock.set(shanghai(2026, 3, 12, 12))
    posting_reverse(posting_id=spend.pk, points=100)
    posting_reverse(posting_id=earn.pk, points=50)
    points_adjust(member_id=member.pk, points=-30, business_unit=bu, reason="correction", actor=operator)
    clock.set(shanghai(2026, 3, 31, 23, 59))
    points_spend(member_id=member.pk, points=20, business_unit=bu)
    clock.set(shanghai(2026, 4, 1, 0, 0))  # April: not on March's statement
    points_spend(member_id=member.pk, points=7, business_unit=bu)

    result = generate(clock)

    assert (result.members, result.created) == (1, 1)
    statement = Statement.objects.get(member=member, period="2026-03")
    assert statement.opening_balance == 1000
    assert (statement.earned, statement.redeemed, statement.cancelled, statement.refunded, statement.adjusted) == (
        800, 420, 100, 50, -30
    )
    assert statement.closing_balance == 1000 + 800 - 420 + 100 - 50 - 30 == 1400
    assert statement.postings == 7
    assert statement.earned_by_source == {"other": 300, "parking": 500}  # fixed points name no event
    assert statement.earned_by_business_unit == {"hotel": 300, "mall": 500}
    assert statement.redeemed_by_business_unit == {"hotel": 400, "mall": 20}
    assert statement.redeemed_by_purpose == {"spend": 420}
    assert (statement.period_start, statement.period_end) == (shanghai(2026, 3, 1), shanghai(2026, 4, 1))
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 1400 - 7


def test_a_refund_into_debt_shows_as_debt_and_the_next_earn_repays_it(clock, bu):
    clock.set(shanghai(2026, 2, 10))
    member = enrol_member()
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100).posting
    points_spend(member_id=member.pk, points=100, business_unit=bu)
    clock.set(shanghai(2026, 2, 20))
    posting_reverse(posting_id=earn.pk)  # all spent: the refund becomes debt
    clock.set(shanghai(2026, 3, 5))
    points_earn(member_id=member.pk, business_unit=bu, points=130)

    generate(clock, period_parse("2026-02"))
    generate(clock, MARCH)

    february, march = Statement.objects.filter(member=member).order_by("period")
    assert (february.opening_balance, february.closing_balance, february.closing_debt) == (0, 0, 100)
    assert (february.refunded, february.debt_repaid) == (100, -100)
    assert (march.opening_balance, march.opening_debt, march.earned, march.debt_repaid) == (0, 100, 130, 100)
    assert (march.closing_balance, march.closing_debt) == (30, 0)


def test_redemptions_through_holds_show_their_purpose(clock, bu):
    clock.set(shanghai(2026, 3, 2))
    member = enrol_member()
    points_earn(member_id=member.pk, business_unit=bu, points=1000)
    hold = hold_place(member_id=member.pk, points=600, business_unit=bu, purpose="mall_order").hold
    hold_capture(hold_id=hold.pk, points=250)
    points_spend(member_id=member.pk, points=100, business_unit=bu)

    generate(clock)

    statement = Statement.objects.get(member=member)
    assert statement.redeemed_by_purpose == {"mall_order": 250, "spend": 100}
    assert statement.redeemed == 350 and statement.closing_balance == 650


def test_expiring_within_30_and_60_days_of_the_period_end(clock, bu, settings):
    clock.set(shanghai(2026, 3, 15))
    member = enrol_member()
    bu.expiry_months = 1
    bu.save()
    points_earn(member_id=member.pk, business_unit=bu, points=100)  # through 15 April: within 30 days
    clock.set(shanghai(2026, 3, 31, 12))
    points_earn(member_id=member.pk, business_unit=bu, points=40)  # through 30 April: within 30 days
    bu.expiry_months = 2
    bu.save()
    points_earn(member_id=member.pk, business_unit=bu, points=25)  # through 31 May: within 61 days only
    bu.expiry_months = 12
    bu.save()
    points_earn(member_id=member.pk, business_unit=bu, points=1000)  # next year
    clock.set(shanghai(2026, 4, 2))
    points_spend(member_id=member.pk, points=100, business_unit=bu)  # after the end: changes nothing

    generate(clock)

    statement = Statement.objects.get(member=member)
    assert (statement.expiring_30_days, statement.expiring_60_days) == (140, 140)
    assert statement.closing_balance == 1165


def test_expiring_counts_lots_as_they_were_at_the_end(clock, bu):
    clock.set(shanghai(2026, 3, 20))
    member = enrol_member()
    bu.expiry_months = 1
    bu.save()
    points_earn(member_id=member.pk, business_unit=bu, points=100)  # through 20 April
    clock.set(shanghai(2026, 4, 1, 1))
    points_spend(member_id=member.pk, points=60, business_unit=bu)  # April: consumed after the end

    generate(clock)

    assert Statement.objects.get(member=member).expiring_30_days == 100


def test_only_members_with_activity_points_or_debt_get_a_statement(clock, bu):
    clock.set(shanghai(2026, 1, 10))
    quiet_with_points, active_to_zero, idle = enrol_member(), enrol_member(), enrol_member()
    points_earn(member_id=quiet_with_points.pk, business_unit=bu, points=10)
    clock.set(shanghai(2026, 3, 10))
    points_earn(member_id=active_to_zero.pk, business_unit=bu, points=10)
    points_spend(member_id=active_to_zero.pk, points=10, business_unit=bu)
    clock.set(shanghai(2026, 4, 10))
    late = enrol_member()
    points_earn(member_id=late.pk, business_unit=bu, points=10)

    generate(clock)

    assert set(Statement.objects.values_list("member_id", flat=True)) == {quiet_with_points.pk, active_to_zero.pk}
    figures = statement_figures(member_ids=[idle.pk], period=MARCH)
    assert not figures[idle.pk].is_due


def test_a_rerun_creates_nothing_and_a_period_not_over_is_refused(clock, bu):
    clock.set(shanghai(2026, 3, 3))
    member = enrol_member()
    points_earn(member_id=member.pk, business_unit=bu, points=10)
    first = generate(clock)
    second = generate(clock)
    assert (first.created, second.created) == (1, 0)
    assert Statement.objects.count() == 1
    clock.set(shanghai(2026, 3, 31, 23))
    with pytest.raises(PeriodNotOver, match="not ended"):
        statements_generate_batch(period=MARCH)
    assert generate_statements.apply(kwargs={"period": "2026-03"}).get() == 0  # logged, not retried


def test_batches_walk_the_members_by_id(clock, bu):
    clock.set(shanghai(2026, 3, 3))
    members = [enrol_member() for _ in range(5)]
    for member in members:
        points_earn(member_id=member.pk, business_unit=bu, points=10)
    clock.set(MARCH.end + timedelta(hours=4))
    cursor, batches = 0, 0
    while cursor is not None:
        result = statements_generate_batch(period=MARCH, after_member_id=cursor, batch_size=2)
        cursor, batches = result.cursor, batches + 1
    assert batches == 3
    assert sorted(Statement.objects.values_list("member_id", flat=True)) == sorted(m.pk for m in members)


def test_the_database_refuses_changes_and_figures_that_do_not_add_up(clock, bu):
    clock.set(shanghai(2026, 3, 3))
    member = enrol_member()
    points_earn(member_id=member.pk, business_unit=bu, points=10)
    generate(clock)
    statement = Statement.objects.get(member=member)
    with pytest.raises(ProgrammingError, match="points_statement"), transaction.atomic():
        Statement.objects.filter(pk=statement.pk).update(closing_balance=11)
    with pytest.raises(ProgrammingError, match="points_statement"), transaction.atomic():
        Statement.objects.filter(pk=statement.pk).delete()
    fields = {f.name: getattr(statement, f.name) for f in Statement._meta.concrete_fields if f.name not in ("id", "created_at")}
    other = enrol_member()
    with pytest.raises(IntegrityError, match="statement_movements_add_up"), transaction.atomic():
        Statement.objects.create(**{**fields, "member": other, "closing_balance": 11})
    with pytest.raises(IntegrityError, match="statement_one_per_member_period"), transaction.atomic():
        Statement.objects.create(**fields)
    assert Member.objects.get(pk=member.pk).statements.get().closing_balance == 10

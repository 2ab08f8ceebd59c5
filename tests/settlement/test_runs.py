"""Settlement runs: lines from hand figures, draft -> closed, immutability in the database,
closing racing closing, verify_settlement passing and failing, the monthly beat job."""

from datetime import timedelta
from decimal import Decimal

import pytest
from dateutil.relativedelta import relativedelta
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, InternalError, ProgrammingError, transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from points.expiry import expiry_run_batch
from points.selectors import ledger_problems
from points.services import points_spend, posting_reverse
from settlement.models import ClearingKind, ClearingLine, LineKind, RunEvent, RunStatus, SettlementLine, SettlementRun
from settlement.selectors import compute_lines, period_of, reconcile
from settlement.services import PeriodNotEnded, RunClosed, settlement_run_close, settlement_run_compute
from settlement.tasks import create_monthly_draft
from tests.concurrency import run_together
from tests.factories import OperatorFactory, enrol_member
from tests.settlement.helpers import earn, units

DB_REFUSES = (InternalError, ProgrammingError, IntegrityError)


def scenario():
    """A member earns 1000 at the hotel (0.02 CNY a point) and 200 at the park (0.015); spends 600
    at the mall, 500 at the park (cancelled in full) and 450 at the hotel."""
    hotel, mall, park = units()
    member = enrol_member()
    earn(member, hotel, 1000)
    earn(member, park, 200)
    points_spend(member_id=member.pk, business_unit=mall, points=600)  # hotel 600 x 0.02 = 12.00
    spend = points_spend(member_id=member.pk, business_unit=park, points=500)  # hotel 400 = 8.00, park 100 own
    posting_reverse(posting_id=spend.posting.pk, points=500, business_unit=park)  # all back
    points_spend(member_id=member.pk, business_unit=hotel, points=450)  # hotel 400 own, park 50 x 0.015 = 0.75
    return hotel, mall, park, member


def figures(lines):
    return sorted(
        (line.kind, line.payer.code, line.payee.code if line.payee_id else None, line.points, line.amount_cny)
        for line in lines
    )


def this_period():
    return period_of(timezone.now())


@pytest.mark.django_db
def test_a_runs_lines_equal_the_hand_figures():
    hotel, mall, park, _member = scenario()
    run = settlement_run_compute(period=this_period())
    assert figures(run.lines.select_related("payer", "payee")) == sorted([
        ("issuance", "hotel", None, 1000, Decimal("20.00")),
        ("issuance", "park", None, 200, Decimal("3.00")),
        # hotel: 600 + 400 - 400 (the cancel) + 400 own; park: 100 - 100 + 50
        ("redemption", "hotel", None, 1000, Decimal("20.00")),
        ("redemption", "park", None, 50, Decimal("0.75")),
        ("clearing", "hotel", "mall", 600, Decimal("12.00")),
        # hotel -> park: 400 redeemed and cancelled in the month nets to zero, but stays traceable
        ("clearing", "hotel", "park", 0, Decimal("0.00")),
        ("clearing", "park", "hotel", 50, Decimal("0.75")),
    ])
    netted = run.lines.get(kind=LineKind.CLEARING, payer=hotel, payee=park)
    assert netted.source_count == 2 and netted.last_source_id > netted.first_source_id
    clearing = run.lines.get(kind=LineKind.CLEARING, payer=hotel, payee=mall)
    assert clearing.source_count == 1 and clearing.first_source_id == clearing.last_source_id
    assert reconcile(period=this_period()).problems == []
    assert ledger_problems() == {}


@pytest.mark.django_db
def test_breakage_reduces_the_issuers_liability():
    hotel, mall, _park = units()
    member = enrol_member()
    earn(member, hotel, 300)
    points_spend(member_id=member.pk, business_unit=mall, points=100)
    expiry_run_batch(now=timezone.now() + timedelta(days=800))
    lines = compute_lines(period=this_period())
    assert ("breakage", "hotel", None, 200, Decimal("4.00")) in figures(lines)
    result = reconcile(period=this_period())
    assert result.problems == []
    assert result.rows[hotel.pk] == {"opening": 0, "issuance": 300, "adjustment": 0, "redemption": 100, "reclaim": 0,
                                     "breakage": 200, "breakage_reversal": 0, "closing": 0, "lots": 0}
    assert ledger_problems() == {}


@pytest.mark.django_db
def test_a_draft_is_recomputed_and_a_closed_run_refuses_to_be():
    hotel, mall, _park = units()
    member = enrol_member()
    earn(member, hotel, 300)
    run = settlement_run_compute(period=this_period())
    assert not run.lines.filter(kind=LineKind.CLEARING).exists()
    points_spend(member_id=member.pk, business_unit=mall, points=100)
    run = settlement_run_compute(period=this_period())
    assert run.lines.get(kind=LineKind.CLEARING).amount_cny == Decimal("2.00")
    with pytest.raises(PeriodNotEnded):
        settlement_run_close(run_id=run.pk)
    operator = OperatorFactory(username="finance1")
    closed = settlement_run_close(run_id=run.pk, actor=operator, now=timezone.now() + relativedelta(months=1, days=1))
    assert closed.status == RunStatus.CLOSED and closed.closed_by == operator
    assert [event.action for event in RunEvent.objects.filter(run=run)] == ["create", "recompute", "close"]
    with pytest.raises(RunClosed):
        settlement_run_compute(period=this_period())
    with pytest.raises(RunClosed):
        settlement_run_close(run_id=run.pk, now=timezone.now() + relativedelta(months=1, days=1))
    assert run.lines.get(kind=LineKind.CLEARING).amount_cny == Decimal("2.00")


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_to_change_a_closed_run_or_its_lines():
    hotel, mall, _park = units()
    member = enrol_member()
    earn(member, hotel, 300)
    points_spend(member_id=member.pk, business_unit=mall, points=100)
    run = settlement_run_compute(period=this_period())
    settlement_run_close(run_id=run.pk, now=timezone.now() + relativedelta(months=2))
    line = run.lines.get(kind=LineKind.CLEARING)
    with pytest.raises(DB_REFUSES), transaction.atomic():
        SettlementLine.objects.filter(pk=line.pk).update(amount_cny=Decimal("999.00"))
    with pytest.raises(DB_REFUSES), transaction.atomic():
        SettlementLine.objects.filter(pk=line.pk).delete()
    with pytest.raises(DB_REFUSES), transaction.atomic():
        SettlementLine.objects.create(run=run, kind=LineKind.CLEARING, payer=hotel, payee=mall, amount_cny=1,
                                      source="posting", source_count=1, first_source_id=1, last_source_id=1)
    with pytest.raises(DB_REFUSES), transaction.atomic():
        SettlementRun.objects.filter(pk=run.pk).update(status=RunStatus.DRAFT, closed_at=None)
    with pytest.raises(DB_REFUSES), transaction.atomic():
        ClearingLine.objects.update(points=1)
    line.refresh_from_db()
    assert line.amount_cny == Decimal("2.00")
    assert SettlementRun.objects.get(pk=run.pk).status == RunStatus.CLOSED


@pytest.mark.django_db(transaction=True)
def test_closing_racing_closing_one_wins():
    hotel, mall, _park = units()
    member = enrol_member()
    earn(member, hotel, 300)
    run = settlement_run_compute(period=this_period())
    later = timezone.now() + relativedelta(months=2)
    outcomes = run_together([lambda: settlement_run_close(run_id=run.pk, now=later)] * 2)
    assert sorted(ok for ok, _value in outcomes) == [False, True]
    assert [type(value) for ok, value in outcomes if not ok] == [RunClosed]
    assert RunEvent.objects.filter(run=run, action="close").count() == 1


@pytest.mark.django_db
def test_verify_settlement_passes_then_names_the_difference(capsys):
    hotel, mall, _park = units()
    member = enrol_member()
    earn(member, hotel, 300)
    spend = points_spend(member_id=member.pk, business_unit=mall, points=100).posting
    settlement_run_compute(period=this_period())
    call_command("verify_settlement")
    assert "settlement ties to the ledger" in capsys.readouterr().out
    # a clearing line the ledger knows nothing of: the hotel's liability no longer ties
    ClearingLine.objects.create(posting=spend, kind=ClearingKind.REDEMPTION, issuer=mall, redeemer=hotel, points=7,
                                rate_cny=Decimal("0.01"), amount_cny=Decimal("0.07"), created_at=spend.created_at)
    with pytest.raises(CommandError):
        call_command("verify_settlement")
    errors = capsys.readouterr().err
    assert "mall: closing liability -7 != lots' remaining points 0 (difference -7)" in errors
    # closed, the run's stored lines are checked against the ledger's
    run = SettlementRun.objects.get()
    settlement_run_compute(period=this_period())
    settlement_run_close(run_id=run.pk, now=timezone.now() + relativedelta(months=2))
    with pytest.raises(CommandError):
        call_command("verify_settlement", period=f"{this_period():%Y-%m}")
    assert "difference -7" in capsys.readouterr().err


@pytest.mark.django_db
def test_the_monthly_job_is_scheduled_and_creates_last_months_draft():
    task = PeriodicTask.objects.get(task="settlement.tasks.create_monthly_draft")
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month) == ("0", "3", "1")
    run_id = create_monthly_draft()
    run = SettlementRun.objects.get(pk=run_id)
    assert run.status == RunStatus.DRAFT and run.period == this_period() - relativedelta(months=1)
    settlement_run_close(run_id=run_id)
    assert create_monthly_draft(period=run.period.isoformat()) is None

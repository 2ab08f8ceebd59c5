"""Late postings into a closed period, liability and aging, background exports, and the
recompute racing the close."""

import io
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from openpyxl import load_workbook

from points.expiry import expiry_run_batch
from points.services import posting_reverse
from points.timeutils import group_timezone
from settlement.liability import bucket_of, liability_report
from settlement.models import ExportStatus, LineKind, RunStatus, SettlementRun
from settlement.selectors import compute_lines
from settlement.services import RunClosed, export_job_write, export_request, settlement_run_close, settlement_run_compute
from tests.concurrency import run_together
from tests.factories import OperatorFactory, enrol_member
from tests.settlement.helpers import earn, units
from tests.statements.conftest import Clock

JANUARY, FEBRUARY = datetime(2031, 1, 1).date(), datetime(2031, 2, 1).date()


def at(day: int, month: int = 1) -> datetime:
    return datetime(2031, month, day, 12, tzinfo=group_timezone())


@pytest.fixture
def clock():
    clock = Clock()
    yield clock
    clock.stop()


@pytest.mark.django_db
def test_a_refund_after_the_close_is_a_late_line_naming_the_original(clock, ledger_sound):
    hotel, _mall, _park = units()
    member = enrol_member()
    clock.set(at(10))
    earned = earn(member, hotel, 100)
    clock.set(at(2, month=2))
    january = settlement_run_close(run_id=settlement_run_compute(period=JANUARY).pk)
    before = sorted(january.lines.values_list("kind", "points", "amount_cny"))
    clock.set(at(5, month=2))
    refund = posting_reverse(posting_id=earned.pk, points=40, business_unit=hotel).posting
    late = [line for line in compute_lines(period=FEBRUARY) if line.kind == LineKind.LATE]
    assert [(line.payer_id, line.points, line.amount_cny, line.original_period, line.original_posting_id,
             line.first_source_id) for line in late] == [(hotel.pk, 40, Decimal("0.80"), JANUARY, earned.pk, refund.pk)]
    assert sorted(SettlementRun.objects.get(pk=january.pk).lines.values_list("kind", "points", "amount_cny")) == before
    ledger_sound()


@pytest.mark.django_db
def test_liability_as_of_a_date_splits_ages_and_values(clock):
    hotel, mall, _park = units()
    hotel.expiry_months, hotel.pending_days = 2, 0
    hotel.save()
    member = enrol_member()
    clock.set(at(10))
    earn(member, hotel, 100)
    earn(member, mall, 50)
    clock.set(at(20, month=3))
    earn(member, hotel, 30)
    january = {row.business_unit.code: row for row in liability_report(as_of=at(31).date(), now=at(20, month=3))}
    assert january["hotel"].points == 100 and january["mall"].points == 50
    assert january["hotel"].value_cny == Decimal("2.00") and january["hotel"].held is None
    assert sum(january["hotel"].buckets.values()) == 100
    assert january["hotel"].buckets[bucket_of((at(10, month=3).date() - at(31).date()).days)] >= 0
    later_today = at(20, month=3) + timedelta(hours=1)  # the instant itself excludes what is booked at it
    today = {row.business_unit.code: row for row in liability_report(as_of=later_today.date(), now=later_today)}
    assert today["hotel"].held == 0
    assert bucket_of(0) == "0-30" and bucket_of(31) == "31-90" and bucket_of(400) == ">365"
    clock.set(at(1, month=9))
    expiry_run_batch(now=at(1, month=9))
    assert "hotel" not in {row.business_unit.code for row in liability_report(as_of=at(1, month=9).date(), now=at(1, month=9))}


@pytest.mark.django_db
def test_a_background_export_writes_the_file_with_progress(client):
    hotel, mall, _park = units()
    member = enrol_member(name="=cmd|' /C calc'!A0")
    earn(member, hotel, 100)
    from points.services import points_spend

    for _ in range(5):
        points_spend(member_id=member.pk, business_unit=mall, points=3)
    run = settlement_run_compute(period=datetime.now(group_timezone()).date())
    finance = OperatorFactory(username="fin", is_superuser=False)
    finance.groups.add(Group.objects.get(name="finance"))
    job = export_request(run=run, content="clearing", format="xlsx", actor=finance)
    assert job.status == ExportStatus.QUEUED
    job = export_job_write(job_id=job.pk, batch_size=2)
    assert (job.status, job.rows_done, job.rows_total, job.progress_percent) == (ExportStatus.DONE, 5, 5, 100)
    assert export_job_write(job_id=job.pk).status == ExportStatus.DONE  # a redelivery does nothing
    client.force_login(finance)
    listing = client.get("/admin/settlement/exportjob/")
    assert b"100%" in listing.content
    download = client.get(f"/admin/settlement/exportjob/{job.pk}/download/")
    sheet = load_workbook(io.BytesIO(b"".join(download.streaming_content))).active
    rows = list(sheet.values)
    assert len(rows) == 6 and rows[1][rows[0].index("member_name")].startswith("'=")
    operations = OperatorFactory(username="ops", is_superuser=False)
    operations.groups.add(Group.objects.get(name="operations"))
    client.force_login(operations)
    assert client.get(f"/admin/settlement/exportjob/{job.pk}/download/").status_code == 403
    assert client.get("/admin/settlement/settlementrun/liability/?format=csv").status_code == 403


@pytest.mark.django_db
def test_finance_reads_and_exports_the_liability(client):
    hotel, _mall, _park = units()
    earn(enrol_member(), hotel, 100)
    finance = OperatorFactory(username="fin", is_superuser=False)
    finance.groups.add(Group.objects.get(name="finance"))
    client.force_login(finance)
    page = client.get("/admin/settlement/settlementrun/liability/")
    assert page.status_code == 200 and b"hotel" in page.content
    csv = client.get("/admin/settlement/settlementrun/liability/?format=csv").content.decode("utf-8-sig")
    header, hotel_row = csv.splitlines()[:2]
    assert header.startswith("business_unit_code,business_unit_name,available_points")
    assert hotel_row.split(",")[header.split(",").index("value_cny")] == "2.00"


@pytest.mark.django_db(transaction=True)
def test_recompute_racing_close_leaves_a_closed_run_with_the_ledgers_lines(clock):
    hotel, _mall, _park = units()
    member = enrol_member()
    clock.set(at(10))
    earn(member, hotel, 300)
    run = settlement_run_compute(period=JANUARY)
    clock.set(at(3, month=2))
    outcomes = run_together([lambda: settlement_run_compute(period=JANUARY), lambda: settlement_run_close(run_id=run.pk)])
    failures = [value for ok, value in outcomes if not ok]
    assert all(isinstance(value, RunClosed) for value in failures), failures
    run.refresh_from_db()
    assert run.status == RunStatus.CLOSED
    assert sorted(run.lines.values_list("kind", "points")) == sorted((line.kind, line.points)
                                                                     for line in compute_lines(period=JANUARY))

"""The finance console: runs with their matrix, the close action (finance only), exports with
stable columns, CNY amounts and formula escaping."""

import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from import_export.formats.base_formats import CSV, XLSX
from openpyxl import load_workbook

from points.services import points_spend
from settlement.exports import ClearingLineResource, SettlementLineResource
from settlement.models import RunStatus, SettlementRun
from settlement.selectors import previous_period
from settlement.services import settlement_run_compute
from tests.factories import OperatorFactory, enrol_member
from tests.settlement.helpers import earn, units

pytestmark = pytest.mark.django_db


def staff(username, role):
    user = OperatorFactory(username=username, is_superuser=False)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def run_with_clearing():
    hotel, mall, _park = units()
    member = enrol_member(name="=HYPERLINK(\"http://evil.example\",\"click\")")
    earn(member, hotel, 1000)
    points_spend(member_id=member.pk, business_unit=mall, points=617)
    return settlement_run_compute(period=timezone.now().date())


def test_finance_sees_the_matrix_and_closes_a_run(client, run_with_clearing):
    # a run of a month already ended, so it may be closed
    last_month = settlement_run_compute(period=previous_period())
    client.force_login(staff("fin", "finance"))
    page = client.get(f"/admin/settlement/settlementrun/{run_with_clearing.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="settlement-matrix"' in html and "<th>hotel</th>" in html and "<td>12.34</td>" in html
    response = client.post("/admin/settlement/settlementrun/", {
        "action": "close_runs", "_selected_action": [last_month.pk, run_with_clearing.pk],
    }, follow=True)
    assert response.status_code == 200
    assert SettlementRun.objects.get(pk=last_month.pk).status == RunStatus.CLOSED
    assert SettlementRun.objects.get(pk=run_with_clearing.pk).status == RunStatus.DRAFT  # month not ended
    assert "该期间尚未结束" in response.content.decode()  # the console speaks the group's language


def test_operations_may_not_close_or_export(client, run_with_clearing):
    last_month = settlement_run_compute(period=previous_period())
    client.force_login(staff("ops1", "operations"))
    listing = client.get("/admin/settlement/settlementrun/")
    assert listing.status_code == 200 and "close_runs" not in listing.content.decode()
    client.post("/admin/settlement/settlementrun/", {"action": "close_runs", "_selected_action": [last_month.pk]})
    assert SettlementRun.objects.get(pk=last_month.pk).status == RunStatus.DRAFT
    assert client.get("/admin/settlement/settlementline/export/").status_code == 403


def test_exports_keep_columns_amounts_and_escape_formulae(run_with_clearing):
    dataset = ClearingLineResource().export()
    assert dataset.headers == ["id", "posting_id", "booked_at", "kind", "member_card_no", "member_name", "issuer_code",
                               "redeemer_code", "merchant_code", "points", "rate_cny", "amount_cny"]
    csv = CSV().export_data(dataset)
    assert "'=HYPERLINK(" in csv and ",12.34" in csv
    assert ",=HYPERLINK" not in csv

    # as the console exports a binary format: native types (numbers stay numbers)
    workbook = load_workbook(io.BytesIO(XLSX().export_data(ClearingLineResource().export(force_native_type=True))))
    sheet = workbook.active
    header = [cell.value for cell in sheet[1]]
    row = {name: cell for name, cell in zip(header, sheet[2])}
    assert row["member_name"].data_type == "s" and row["member_name"].value.startswith("'=HYPERLINK(")
    assert row["amount_cny"].data_type == "n" and Decimal(str(row["amount_cny"].value)) == Decimal("12.34")
    assert row["points"].value == 617

    lines = SettlementLineResource().export()
    assert lines.headers[:4] == ["id", "period", "run_status", "kind"]
    clearing = [line for line in lines.dict if line["kind"] == "clearing"]
    assert [(line["payer_code"], line["payee_code"], line["amount_cny"]) for line in clearing] == [
        ("hotel", "mall", "12.34"),
    ]

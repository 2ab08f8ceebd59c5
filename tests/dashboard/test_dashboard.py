"""The dashboard at /admin/dashboard/: KPIs equal the ledger's own queries, the flow equals the
settlement matrix, the exports' contents, and who may see it."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db.models import Count, Sum
from django.utils import timezone, translation
from openpyxl import load_workbook

from points.aggregates import aggregates_rebuild_all
from points.models import Lot, Posting, PostingKind, Wallet
from points.services import points_adjust, points_spend, posting_reverse
from settlement.dashboard.selectors import DashboardFilter, dashboard, kpis, members_by_tier
from settlement.models import LineKind
from settlement.selectors import cny, compute_lines
from tests.factories import OperatorFactory, enrol_member, ladder
from tests.settlement.helpers import earn, units
from tiers.models import MemberTier

pytestmark = pytest.mark.django_db
URL = "/admin/dashboard/"


def staff(username, role):
    user = OperatorFactory(username=username, is_superuser=False)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def ledger():
    """Earned at the hotel and the park, spent at the mall, a cancel, a refund, an adjustment."""
    hotel, mall, park = units()
    alice = enrol_member(name="=cmd|' /C calc'!A0", business_unit=hotel)
    bob = enrol_member(name="Bob", business_unit=mall)
    earned = earn(alice, hotel, 1000)
    earn(bob, park, 400)
    spent = points_spend(member_id=alice.pk, business_unit=mall, points=600).posting
    points_spend(member_id=bob.pk, business_unit=mall, points=150)
    posting_reverse(posting_id=spent.pk, points=100)
    posting_reverse(posting_id=earned.pk, points=50)
    points_adjust(member_id=bob.pk, points=25, business_unit=park, reason="goodwill", actor=OperatorFactory())
    aggregates_rebuild_all()
    return hotel, mall, park


def window(**kwargs):
    today = timezone.localdate()
    return DashboardFilter(first=today - timedelta(days=29), last=today, **kwargs)


def by_kind(kind, **filters):
    return Posting.objects.filter(kind=kind, **filters).aggregate(s=Sum("points", default=0))["s"]


def test_kpis_equal_the_ledger(ledger):
    figures = {kpi.code: kpi.value for kpi in kpis(window())}
    issued = by_kind(PostingKind.EARN) + by_kind(PostingKind.ADJUST, points__gt=0) + by_kind(PostingKind.REFUND)
    redeemed = -by_kind(PostingKind.SPEND) - by_kind(PostingKind.CANCEL)
    assert figures["issued"] == issued == 1000 + 400 + 25 - 50
    assert figures["redeemed"] == redeemed == 600 + 150 - 100
    assert figures["expired"] == 0
    assert figures["liability_points"] == Wallet.objects.aggregate(s=Sum("balance"))["s"] \
        == Lot.objects.aggregate(s=Sum("remaining"))["s"]
    by_issuer = Lot.objects.values_list("business_unit__point_value_cny").annotate(s=Sum("remaining"))
    assert figures["liability_cny"] == sum(cny(points, value) for value, points in by_issuer) == Decimal("13.13")
    assert figures["redemption_rate"] == (Decimal(100) * redeemed / issued).quantize(Decimal("0.1"))
    assert figures["breakage_rate"] == Decimal("0.0")
    assert figures["active_members"] == Posting.objects.filter(kind__in=["earn", "spend"]).aggregate(
        n=Count("wallet", distinct=True))["n"] == 2
    assert figures["new_members"] == 2
    assert (figures["rule_issuance"], figures["manual_issuance"]) == (1400, 25)
    assert (figures["risk_open_cases"], figures["risk_held_points"]) == (0, 0)


def test_kpis_follow_the_business_unit_filter(ledger):
    hotel, mall, _park = ledger
    at_mall = {kpi.code: kpi.value for kpi in kpis(window(business_unit_id=mall.pk))}
    assert at_mall["redeemed"] == -by_kind(PostingKind.SPEND, business_unit=mall) - by_kind(
        PostingKind.CANCEL, business_unit=mall) == 650
    assert at_mall["issued"] == 0
    at_hotel_kind = {kpi.code: kpi.value for kpi in kpis(window(bu_kind=hotel.kind))}
    assert at_hotel_kind["new_members"] >= 1


def test_the_flow_equals_the_settlement_matrix(ledger):
    today = timezone.localdate()
    first = today.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    board = dashboard(DashboardFilter(first=first, last=last))
    flows = {(flow.issuer.pk, flow.redeemer.pk): (flow.points, flow.amount_cny) for flow in board.flows}
    matrix = {(line.payer_id, line.payee_id): (line.points, line.amount_cny)
              for line in compute_lines(period=first) if line.kind == LineKind.CLEARING}
    assert flows == matrix
    assert len(flows) == 2  # hotel -> mall and park -> mall


def test_the_page_shows_each_kpi_with_its_definition_and_the_series(client, ledger):
    client.force_login(staff("fin", "finance"))
    page = client.get(URL, {"bucket": "week"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="kpi-issued"' in html and 'data-value="1375"' in html
    assert 'id="dashboard-data"' in html and "echarts.min" in html
    assert page.context["board"].series[0]["issued"] == 1375
    for kpi in page.context["board"].kpis:
        assert str(kpi.numerator) and str(kpi.window)


def test_the_admin_index_links_the_dashboard(client, ledger):
    client.force_login(staff("ops", "operations"))
    assert 'href="/admin/dashboard/"' in client.get("/admin/").content.decode()
    client.force_login(staff("risk", "risk review"))
    assert 'href="/admin/dashboard/"' not in client.get("/admin/").content.decode()


def test_the_csv_export_has_the_series_and_escapes_formulae(client, ledger):
    client.force_login(staff("ops", "operations"))
    response = client.get(URL, {"export": "csv", "table": "series"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["period", "issued", "redeemed", "expired", "postings", "active_members"]
    assert rows[1][1:4] == ["1375", "650", "0"]
    flows = list(csv.reader(io.StringIO(client.get(URL, {"export": "csv", "table": "flows"}).content.decode("utf-8-sig"))))
    assert {row[0] for row in flows[1:]} == {"hotel", "park"}


def test_the_xlsx_export_has_every_table_with_native_numbers(client, ledger):
    hotel, _mall, _park = ledger
    hotel.name = "=HYPERLINK(\"http://evil.example\")"
    hotel.save()
    client.force_login(staff("fin", "finance"))
    response = client.get(URL, {"export": "xlsx"})
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["kpis", "series", "flows", "rankings", "filter"]
    kpi_rows = {row[0]: row[2] for row in book["kpis"].iter_rows(min_row=2, values_only=True)}
    assert kpi_rows["issued"] == 1375 and kpi_rows["redeemed"] == 650
    flow_names = [row[1] for row in book["flows"].iter_rows(min_row=2, values_only=True)]
    assert "'=HYPERLINK(\"http://evil.example\")" in flow_names


@pytest.mark.parametrize("who", ["anonymous", "not staff", "risk review", "merchant staff"])
def test_others_are_refused(client, ledger, who):
    if who == "not staff":
        client.force_login(OperatorFactory(username="plain", is_staff=False, is_superuser=False))
    elif who != "anonymous":
        client.force_login(staff("someone", who))
    for query in ({}, {"export": "csv"}, {"export": "xlsx"}):
        response = client.get(URL, query)
        assert response.status_code in (302, 403)
        assert b"1375" not in response.content
    if who == "anonymous":
        assert client.get(URL)["Location"].startswith("/admin/login/")


def test_members_by_tier_count_a_manual_tier_while_it_lasts():
    programme, levels = ladder(is_active=True)
    now = timezone.now()
    placed = [("silver", None, None), ("silver", "gold", now + timedelta(days=5)),
              ("gold", None, None), ("silver", "gold", now - timedelta(days=1)), (None, None, None)]
    for earned, manual, ends in placed:
        MemberTier.objects.create(
            member=enrol_member(), programme=programme, level=levels.get(earned), since=now, evaluated_at=now,
            override_level=levels.get(manual), override_ends_at=ends,
        )
    # Silver: the plain one and the one whose manual gold ended; gold: the earned one and the manual one.
    with translation.override("en"):
        rows = members_by_tier().rows
    assert rows == [("Gold", 2, None), ("Silver", 2, None), ("no tier", 1, None)]

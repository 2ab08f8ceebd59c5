"""The dashboard's numbers as CSV (one table) or XLSX (a sheet per table), with text cells
formula-escaped as the settlement exports do (settlement.exports.escape_formula)."""

import csv
import io
from decimal import Decimal

from django.utils.translation import gettext as _
from openpyxl import Workbook

from settlement.dashboard.selectors import Dashboard
from settlement.exports import escape_formula

TABLES = ("kpis", "series", "flows", "rankings")


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (int, Decimal)):
        return value
    return escape_formula(str(value))


def tables(board: Dashboard) -> dict[str, list[list]]:
    """Each table as rows of cells, a header first; column names are stable (English codes)."""
    return {
        "kpis": [["code", "label", "value", "unit", "numerator", "denominator", "window"]] + [
            [kpi.code, kpi.label, kpi.value, kpi.unit, kpi.numerator, kpi.denominator, kpi.window] for kpi in board.kpis
        ],
        "series": [["period", "issued", "redeemed", "expired", "postings", "active_members"]] + [
            [f"{row['period']:%Y-%m-%d}", row["issued"], row["redeemed"], row["expired"], row["postings"],
             row["active_members"]] for row in board.series
        ],
        "flows": [["issuer_code", "issuer_name", "redeemer_code", "redeemer_name", "points", "amount_cny"]] + [
            [flow.issuer.code, flow.issuer.name, flow.redeemer.code, flow.redeemer.name, flow.points,
             flow.amount_cny] for flow in board.flows
        ],
        "rankings": [["ranking", "name", "value", "count"]] + [
            [ranking.code, name, value, count] for ranking in board.rankings for name, value, count in ranking.rows
        ],
    }


def export_csv(board: Dashboard, table: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in tables(board)[table]:
        writer.writerow([_cell(value) for value in row])
    return out.getvalue().encode("utf-8-sig")


def export_xlsx(board: Dashboard) -> bytes:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in tables(board).items():
        sheet = workbook.create_sheet(title=name)
        for row in rows:
            sheet.append([_cell(value) for value in row])
    sheet = workbook.create_sheet(title="filter")
    flt = board.filter
    for label, value in ((_("first day"), flt.first), (_("last day"), flt.last), (_("period"), flt.bucket),
                         ("business_unit_id", flt.business_unit_id), ("bu_kind", flt.bu_kind),
                         ("merchant_id", flt.merchant_id)):
        sheet.append([str(label), _cell(value if not hasattr(value, "isoformat") else value.isoformat())])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()

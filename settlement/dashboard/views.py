"""The dashboard's one page: the figures, the charts' data, and the CSV/XLSX exports."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from settlement.dashboard.exports import TABLES, export_csv, export_xlsx
from settlement.dashboard.forms import DashboardFilterForm
from settlement.dashboard.selectors import Dashboard, dashboard

PERMISSION = "points.view_dashboard"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def may_view(user) -> bool:
    """Staff with the dashboard's permission (the operations and finance roles, superusers)."""
    return user.is_active and user.is_staff and user.has_perm(PERMISSION)


def chart_data(board: Dashboard) -> dict:
    """What dashboard.js draws: the series by period and the flow's nodes and links."""
    nodes, links = [], []
    for flow in board.flows:
        source, target = f"{flow.issuer.name} ▸", f"▸ {flow.redeemer.name}"
        for name in (source, target):
            if name not in nodes:
                nodes.append(name)
        links.append({"source": source, "target": target, "value": flow.points, "amount_cny": str(flow.amount_cny)})
    return {
        "periods": [f"{row['period']:%Y-%m-%d}" for row in board.series],
        "series": {key: [row[key] for row in board.series]
                   for key in ("issued", "redeemed", "expired", "postings", "active_members")},
        "labels": {"issued": str(_("Issued")), "redeemed": str(_("Redeemed")), "expired": str(_("Expired")),
                   "postings": str(_("Postings")), "active_members": str(_("Active members"))},
        "sankey": {"nodes": [{"name": name} for name in nodes], "links": links},
    }


def dashboard_view(request):
    if not may_view(request.user):
        raise PermissionDenied
    form = DashboardFilterForm(request.GET or None)
    board = dashboard(form.dashboard_filter())
    export = request.GET.get("export")
    stamp = f"{board.filter.first:%Y%m%d}-{board.filter.last:%Y%m%d}"
    if export == "xlsx":
        response = HttpResponse(export_xlsx(board), content_type=XLSX)
        response["Content-Disposition"] = f'attachment; filename="dashboard-{stamp}.xlsx"'
        return response
    if export == "csv":
        table = request.GET.get("table") if request.GET.get("table") in TABLES else "series"
        response = HttpResponse(export_csv(board, table), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="dashboard-{table}-{stamp}.csv"'
        return response
    query = request.GET.copy()
    query.pop("export", None)
    query.pop("table", None)
    context = {
        **admin.site.each_context(request), "title": _("Dashboard"), "board": board, "form": form,
        "chart_data": chart_data(board), "query": query.urlencode(), "tables": TABLES,
    }
    return TemplateResponse(request, "admin/dashboard.html", context)

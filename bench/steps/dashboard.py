"""Benchmark step: the dashboard's daily aggregates over the benchmark's ledger.

1. Build: `record_clearing_lines` first (the generated ledger has none; after the settlement
   step it finds nothing to do), then `rebuild_aggregates` over every day of the ledger
   (seconds, rows of each table).
2. Read: the dashboard's KPI and time-series queries answered from the aggregates (the whole
   page's figures for the last 30 days by day, and the last year by month) - the target is
   under a second at 10M entries - beside the same figures computed straight from the ledger's
   postings and lots and the cross-BU flow from the clearing lines, which they must equal (a
   difference fails the run).
3. The job's usual work: rebuilding the last two days (today and yesterday), active members'
   gaps and flows included, as a refresh does after a day of postings.
4. Reconcile: `verify_aggregates` (every day recomputed and compared).

The measuring runs in a process of its own (`python bench/steps/dashboard.py measure`), on the
benchmark's database; `run(bench)` starts it and returns its JSON.
"""

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

NAME = "dashboard"
TITLE = "Dashboard: daily aggregates and the queries answered from them"
REPEAT = 3


def ledger_figures(flt) -> dict:
    """The dashboard's main figures straight from the ledger (postings and lots), for comparison."""
    from django.conf import settings
    from django.db.models import Count, Q, Sum

    from points.models import Lot, LotMovement, Posting, PostingKind

    start, end = flt.instants()
    window = Posting.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    totals = window.aggregate(
        credited=Sum("points", filter=Q(kind__in=[PostingKind.EARN, PostingKind.ADJUST], points__gt=0), default=0),
        refunded=Sum("points", filter=Q(kind=PostingKind.REFUND), default=0),
        spent=Sum("points", filter=Q(kind=PostingKind.SPEND), default=0),
        cancelled=Sum("points", filter=Q(kind=PostingKind.CANCEL), default=0),
        expired=Sum("points", filter=Q(kind=PostingKind.EXPIRE), default=0),
        members=Count("wallet", distinct=True, filter=Q(kind__in=settings.DASHBOARD_ACTIVE_MEMBER_KINDS)),
    )
    from django.db.models import F

    from settlement.flow_days import FLOW_KINDS
    from settlement.models import ClearingLine

    flows = (
        ClearingLine.objects.filter(created_at__gte=start, created_at__lt=end, kind__in=FLOW_KINDS, redeemer__isnull=False)
        .exclude(redeemer_id=F("issuer_id")).values_list("issuer_id", "redeemer_id").annotate(points=Sum("points"))
        .order_by("issuer_id", "redeemer_id")
    )
    credited = Lot.objects.filter(posting__occurred_at__lt=end).aggregate(s=Sum("amount", default=0))["s"]
    moved = LotMovement.objects.filter(posting__occurred_at__lt=end).aggregate(s=Sum("amount", default=0))["s"]
    return {
        "issued": totals["credited"] + totals["refunded"], "redeemed": -totals["spent"] - totals["cancelled"],
        "expired": -totals["expired"], "active_members": totals["members"], "liability_points": credited + moved,
        "flows": [[issuer, redeemer, points] for issuer, redeemer, points in flows if points],
    }


def aggregate_figures(flt) -> dict:
    from settlement.dashboard.selectors import flows, kpis

    values = {kpi.code: kpi.value for kpi in kpis(flt)}
    figures = {key: values[key] for key in ("issued", "redeemed", "expired", "active_members", "liability_points")}
    figures["flows"] = [[flow.issuer.pk, flow.redeemer.pk, flow.points] for flow in flows(flt)]
    return figures


def _timed(function, *args) -> tuple[float, object]:
    """Best of REPEAT runs (seconds, the last result)."""
    times, result = [], None
    for _ in range(REPEAT):
        started = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - started)
    return round(min(times), 4), result


def measure() -> dict:
    from django.core.management import call_command
    from django.utils import timezone

    from points.aggregates import aggregates_rebuild
    from points.models import ActivityGap, Entry, LedgerDay, LotFlowDay, MemberDay, Posting
    from settlement.dashboard.selectors import DashboardFilter, dashboard
    from settlement.models import ClearingLine, FlowDay

    started = time.perf_counter()
    call_command("record_clearing_lines", verbosity=0)
    backfill_seconds = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    call_command("rebuild_aggregates", verbosity=0)
    build = {
        "seconds": round(time.perf_counter() - started, 2), "entries": Entry.objects.count(),
        "postings": Posting.objects.count(), "ledger_day_rows": LedgerDay.objects.count(),
        "lot_flow_rows": LotFlowDay.objects.count(), "member_day_rows": MemberDay.objects.count(),
        "activity_gap_rows": ActivityGap.objects.count(), "flow_day_rows": FlowDay.objects.count(),
        "clearing_lines": ClearingLine.objects.count(), "clearing_backfill_seconds": backfill_seconds,
    }
    today = timezone.localdate()
    windows = {
        "30 days by day": DashboardFilter(first=today - timedelta(days=29), last=today, bucket="day"),
        "365 days by month": DashboardFilter(first=today - timedelta(days=364), last=today, bucket="month"),
    }
    reads = {}
    for label, flt in windows.items():
        page_seconds, _board = _timed(dashboard, flt)
        aggregates_seconds, from_aggregates = _timed(aggregate_figures, flt)
        ledger_seconds, from_ledger = _timed(ledger_figures, flt)
        if from_aggregates != from_ledger:
            raise SystemExit(f"{label}: the aggregates' figures {from_aggregates} != the ledger's {from_ledger}")
        reads[label] = {"page_seconds": page_seconds, "kpis_from_aggregates_seconds": aggregates_seconds,
                        "same_figures_from_ledger_seconds": ledger_seconds, "figures": from_aggregates}
    started = time.perf_counter()
    aggregates_rebuild(first=today - timedelta(days=1), last=today)
    two_days = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    call_command("verify_aggregates", verbosity=0)
    return {"build": build, "reads": reads, "two_days_seconds": two_days,
            "reconcile_seconds": round(time.perf_counter() - started, 2)}


def run(bench) -> dict:
    from bench.run import PYTHON
    from bench.run import run as run_command

    result = run_command([PYTHON, str(Path(__file__).resolve()), "measure"], env=bench.env, timeout=3 * 3600)
    return json.loads(result.stdout.strip().splitlines()[-1])


def markdown(figures: dict) -> list[str]:
    build = figures["build"]
    lines = [
        f"Built over {build['entries']:,} entries ({build['postings']:,} postings) in {build['seconds']} s: "
        f"{build['ledger_day_rows']:,} daily ledger rows, {build['lot_flow_rows']:,} lot-flow rows, "
        f"{build['member_day_rows']:,} member-activity rows, {build.get('activity_gap_rows', 0):,} active-member gaps, "
        f"{build.get('flow_day_rows', 0):,} daily flows (of {build.get('clearing_lines', 0):,} clearing lines); "
        f"reconciled to the ledger in {figures['reconcile_seconds']} s. The job's usual work, rebuilding the last "
        f"two days: {figures.get('two_days_seconds', '-')} s.",
        "",
        "| window | whole page (s) | KPIs from aggregates (s) | same figures from the ledger (s) | speed-up |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, read in figures["reads"].items():
        fast, slow = read["kpis_from_aggregates_seconds"], read["same_figures_from_ledger_seconds"]
        speedup = f"{slow / fast:.0f}x" if fast else "-"
        lines.append(f"| {label} | {read['page_seconds']} | {fast} | {slow} | {speedup} |")
    return lines


if __name__ == "__main__" and sys.argv[1:] == ["measure"]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    print(json.dumps(measure(), default=str))

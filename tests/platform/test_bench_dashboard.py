"""Smoke test of the dashboard's benchmark step (bench/steps/dashboard.py) on a tiny generated
ledger: it writes the clearing lines, builds the aggregates, its figures from them equal the ledger's, and it renders."""

import json
from io import StringIO

from django.core.management import call_command

from bench.steps import dashboard
from points.models import LedgerDay


def test_the_dashboard_step_measures_equal_figures_and_renders(db):
    out = StringIO()
    call_command("bench_generate", members=60, entries=800, hot_members=2, no_progress=True, stdout=out)
    assert json.loads(out.getvalue())["entries"] > 0

    figures = dashboard.measure()

    assert figures["build"]["ledger_day_rows"] == LedgerDay.objects.count() > 0
    assert figures["build"]["activity_gap_rows"] > 0 and figures["build"]["flow_day_rows"] > 0
    assert figures["two_days_seconds"] > 0
    for read in figures["reads"].values():
        assert read["figures"]["liability_points"] > 0
    lines = dashboard.markdown(figures)
    assert lines[0].startswith("Built over") and any(line.startswith("| 30 days by day |") for line in lines)

"""Benchmark step: a settlement run of one month over the benchmark's ledger, then its XLSX export.

The month is the one the latest posting was booked in (the generated ledger's month). The
generator and the raw-ceiling steps write ledger rows by hand, without the after-post hook that
records clearing lines, so a child process (this module run as a script, so its peak RSS is its
own) first gives those postings their lines (`settlement.backfill`: seconds, lines), then
computes the run's draft (`settlement_run_compute`: seconds, lines) and writes the period's
clearing lines to XLSX the way the background export does (`settlement.exports.write_export`:
seconds, rows); then `verify_settlement --period` runs and whether the month ties is reported.
Peak RSS comes from wait4's rusage of the child.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

NAME = "settlement"
TITLE = "Settlement run and export"
ROOT = Path(__file__).resolve().parents[2]
TARGET_SECONDS = 60


def child() -> dict:
    """In the child process: compute the month's run and export it; the figures as a dict."""
    import tempfile

    import django
    from django.utils import timezone

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from points.models import Posting
    from settlement.backfill import record_missing_clearing_lines
    from settlement.exports import write_export
    from settlement.models import ExportJob
    from settlement.selectors import period_of
    from settlement.services import settlement_run_compute

    started = time.monotonic()
    backfilled = record_missing_clearing_lines()
    backfill_seconds = time.monotonic() - started
    latest = Posting.objects.order_by("-id").values_list("created_at", flat=True).first()
    period = period_of(latest or timezone.now())
    started = time.monotonic()
    run = settlement_run_compute(period=period)
    compute_seconds = time.monotonic() - started
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        rows = write_export(ExportJob(run=run, content="clearing", format="xlsx"), out, batch_size=5000,
                            progress=lambda _rows: None)
        size = out.tell()
    return {"period": f"{period:%Y-%m}", "backfill_seconds": round(backfill_seconds, 2), "backfilled_lines": backfilled,
            "compute_seconds": round(compute_seconds, 2), "lines": run.lines.count(),
            "export_seconds": round(time.monotonic() - started, 2), "export_rows": rows, "export_bytes": size}


def measure(env: dict) -> tuple[dict, float]:
    """Run the child; its JSON figures and peak RSS in MB."""
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE)
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"settlement bench child exited {os.waitstatus_to_exitcode(status)}")
    return json.loads(output.decode().strip().splitlines()[-1]), round(usage.ru_maxrss / 1024, 1)


def run(bench) -> dict:
    figures, peak_rss = measure(bench.env)
    started = time.monotonic()
    verified = subprocess.run([sys.executable, "manage.py", "verify_settlement", "--period", figures["period"]],
                              cwd=ROOT, env=bench.env, capture_output=True, text=True)
    figures.update(peak_rss_mb=peak_rss, verify_seconds=round(time.monotonic() - started, 2),
                   verified=verified.returncode == 0, target_seconds=TARGET_SECONDS,
                   verify_output=(verified.stdout + verified.stderr).strip()[-300:])
    return figures


def markdown(figures: dict) -> list[str]:
    return [
        f"Month {figures['period']}: the hand-written rows' clearing lines backfilled, one draft run computed from the "
        "ledger, then its clearing lines to XLSX.",
        "",
        "| step | seconds | rows | peak RSS (MB) | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| clearing lines backfilled | {figures['backfill_seconds']} | {figures['backfilled_lines']} lines | (same process) | |",
        f"| run computed | {figures['compute_seconds']} | {figures['lines']} lines | {figures['peak_rss_mb']} "
        f"| < {figures['target_seconds']} s |",
        f"| XLSX export | {figures['export_seconds']} | {figures['export_rows']} | (same process) | flat memory |",
        f"| verify_settlement | {figures['verify_seconds']} | | | ties: {figures['verified']} |",
    ]


if __name__ == "__main__":
    print(json.dumps(child()))

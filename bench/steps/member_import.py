"""Bulk import of members with opening balances (docs/import.md): rows/s and peak memory.

Generates a CSV of `rows` new members (full scale 1,000,000; the quick run its members, 20,000),
each with an opening balance, runs `manage.py import_members` on it in a child process (peak RSS
from wait4's rusage, as bench.run.Bench.measure_rss), and checks the ledger afterwards. The
phones start at 17 000 000 000, clear of the generated members' and the demo's.
"""

import csv
import json
import os
import subprocess
from datetime import date, timedelta

NAME = "member_import"
TITLE = "Bulk member import (import_members, opening balances through the ledger)"
FIRST_PHONE = 16_000_000_000  # no benchmark member has one (theirs are 170 + the member id)
HEADER = ("row_id", "phone", "name", "birthday", "enrolled_business_unit", "opening_points", "expires_on",
          "issuing_business_unit")


def import_rows(scale) -> int:
    return 1_000_000 if scale.name == "full" else scale.members


def csv_row(n: int, *, business_unit: str, expires_on: str) -> tuple:
    """Row n of the generated file: a new member with 100..1099 opening points."""
    birthday = date(1960, 1, 1) + timedelta(days=n % 15000)
    return (f"bench-{n}", str(FIRST_PHONE + n), f"Member {n}", birthday.isoformat(), business_unit,
            100 + n % 1000, expires_on, business_unit)


def write_file(path, *, rows: int, business_unit: str, expires_on: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(rows):
            writer.writerow(csv_row(n, business_unit=business_unit, expires_on=expires_on))


def run(bench) -> dict:
    from bench.run import PYTHON, ROOT, BenchFailure, psql

    rows = import_rows(bench.scale)
    business_unit = psql(bench.env, "SELECT code FROM members_businessunit ORDER BY id LIMIT 1")
    if not business_unit:
        raise BenchFailure("member import: no business unit to issue the opening balances")
    path = bench.workdir / "member-import.csv"
    write_file(path, rows=rows, business_unit=business_unit, expires_on=(date.today() + timedelta(days=365)).isoformat())
    out = bench.workdir / "member-import.json"
    with out.open("w") as handle:
        process = subprocess.Popen([PYTHON, "manage.py", "import_members", str(path)], cwd=ROOT, env=bench.env,
                                   stdout=handle, stderr=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchFailure(f"import_members exited {os.waitstatus_to_exitcode(status)}")
    report = json.loads(out.read_text().strip().splitlines()[-1])
    if report["created"] + report["updated"] + report["skipped"] != rows or report["errors"]:
        raise BenchFailure(f"member import: {report}")
    verify_seconds = bench.verify("member import")
    seconds = report["seconds"]
    return {
        "rows": rows, "seconds": seconds, "rows_per_s": round(rows / seconds, 1) if seconds else None,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "created": report["created"],
        "openings_posted": report["openings_posted"], "opening_points": report["opening_points"],
        "verify_seconds": verify_seconds,
    }


def markdown(figures: dict) -> list[str]:
    return [
        "| rows | seconds | rows/s | peak RSS (MB) | members created | opening balances posted |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {figures['rows']:,} | {figures['seconds']} | {figures['rows_per_s']} | {figures['peak_rss_mb']} | "
        f"{figures['created']:,} | {figures['openings_posted']:,} |",
    ]

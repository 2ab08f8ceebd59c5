"""Payments with points: authorise then capture over HTTP (POST /api/v1/payments/, then
.../{id}/capture/), beside the raw ceiling of the same writes by hand in SQL
(bench/pgbench/payment.sql: the hold and its capture with the payment's own rows).

The step sets the benchmark mall's payment terms and creates its key (bench/helpers.py
payments): members are named by id, as a key allowed to spend without the member present does.
Captures per second are read from the database (the payments the step captured, first to last),
so that requests still in flight when wrk stopped count too; verify_ledger after each series.
"""

from datetime import UTC, datetime

NAME = "payments"
TITLE = "Payments with points: authorise then capture"
CONNECTIONS = (8, 32)
POINTS = 7


def run(bench) -> dict:
    from bench.run import log, ratio

    data, run_id = bench.data, datetime.now(UTC).strftime("%H%M%S")
    terms = bench.helper("payments")
    wallets = {"first_wallet": data["first_wallet_id"], "last_wallet": data["last_wallet_id"]}
    raw = [bench.pgbench("payment", clients, **wallets, points=POINTS, bu=terms["business_unit"])
           for clients in CONNECTIONS]
    for row in raw:
        log(f"raw payment x{row['clients']}: {row['tps']:.1f} authorised and captured/s")
    bench.verify("raw payments")
    http = []
    with bench.gunicorn() as base:
        for connections in CONNECTIONS:
            prefix, since = f"pay{run_id}c{connections}-", datetime.now(UTC).isoformat()
            figures = bench.wrk(base, "payment", connections, key_prefix=prefix, extra=str(POINTS),
                                members=(data["first_member_id"], data["last_member_id"]), api_key=terms["api_key"])
            bench.check_statuses("payments", figures, {"201", "409"})
            captured = bench.written_rows(f"""SELECT count(*), COALESCE(EXTRACT(EPOCH FROM MAX(updated_at) - MIN(created_at)), 0)
                FROM mall_payment WHERE created_at >= '{since}' AND bill_no LIKE '{prefix}%' AND status = 'captured'""")
            http.append({**figures, "captures": captured["count"], "captures_per_s": captured["per_s"]})
            log(f"http payment x{connections}: {captured['per_s']} captures/s, p99 {figures['p99_ms']} ms")
        bench.verify("http payments")
    ratios = {f"payment@{row['connections']}": value for row, raw_row in zip(http, raw)
              if (value := ratio(row["captures_per_s"], raw_row["tps"])) is not None}
    return {"points": POINTS, "raw": raw, "http": http, "ratios": ratios}


def markdown(figures: dict) -> list[str]:
    from bench.run import _cell, ratio_cell

    lines = [
        f"A payment of {figures.get('points')} points on a random member (named by id) authorised, then captured by "
        "the same connection's next request; captures per second counted in the database. Raw ceiling: the same "
        "writes by hand (`bench/pgbench/payment.sql`, one script run = one payment authorised and captured).", "",
        "| connections | raw per s | platform captures/s | ratio | req/s | p50 ms | p99 ms | statuses |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row, raw_row in zip(figures.get("http", []), figures.get("raw", [])):
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(row.get("statuses", {}).items()))
        measured = figures.get("ratios", {}).get(f"payment@{row['connections']}")
        lines.append(f"| {row['connections']} | {_cell(raw_row.get('tps'))} | {_cell(row.get('captures_per_s'))} | "
                     f"{ratio_cell(measured)} | {_cell(row.get('req_per_s'))} | {_cell(row.get('p50_ms'))} | "
                     f"{_cell(row.get('p99_ms'))} | {statuses} |")
    return lines

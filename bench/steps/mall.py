"""The mall: orders placed by members over HTTP, a flash sale, coupons written off at the till,
each beside the raw ceiling of the same writes done by hand in SQL (bench/pgbench/mall_*.sql).

The step seeds its own catalogue (bench/helpers.py mall): vouchers of the benchmark mall's first
merchant with a large stock, a flash-sale item with the issue's 10,000, and bearer tokens of
members spread over the generated ones. Orders, flash-sale orders and write-offs per second are
read from the database (the rows the step wrote, first to last), so that requests still in
flight when wrk stopped count too. After each series: the stock invariant (every item's initial
stock = its stock + the units of its orders not cancelled, stock never below zero) and
verify_ledger.
"""

from datetime import UTC, datetime

NAME = "mall"
TITLE = "Mall: orders, a flash sale, coupon write-off"
ORDER_CONNECTIONS = (8, 32)
FLASH_CONNECTIONS = 32
WRITE_OFF_CONNECTIONS = 8
PRICE = 10
TOKENS = 2000


def stock_problems(initial: dict[str, int], rows: list[tuple[int, int, int]]) -> list[str]:
    """Items whose stock broke the invariant; rows are (item, stock now, units sold and not cancelled)."""
    problems = []
    seen = {str(item) for item, _stock, _sold in rows}
    problems += [f"item {item}: missing" for item in sorted(set(initial) - seen)]
    for item, stock, sold in rows:
        if stock < 0:
            problems.append(f"item {item}: stock {stock} below zero")
        if stock + sold != initial[str(item)]:
            problems.append(f"item {item}: stock {stock} + sold {sold} != initial {initial[str(item)]}")
    return problems


def split_codes(codes: list[str], parts: int) -> list[list[str]]:
    """Codes dealt round-robin into `parts` lists, one per wrk thread, so no code is sent twice."""
    return [codes[n::parts] for n in range(parts)]


def check_stock(bench, catalogue: dict, after: str) -> None:
    from bench.run import BenchFailure, psql

    ids = ",".join(catalogue["initial_stock"])
    out = psql(bench.env, f"""SELECT i.id, i.stock, COALESCE(SUM(o.quantity) FILTER (
            WHERE o.took_stock AND o.status <> 'cancelled'), 0)
        FROM mall_item i LEFT JOIN mall_order o ON o.item_id = i.id WHERE i.id IN ({ids}) GROUP BY i.id""")
    rows = [tuple(int(v) for v in line.split("|")) for line in out.splitlines() if line]
    problems = stock_problems(catalogue["initial_stock"], rows)
    if problems:
        raise BenchFailure(f"stock invariant broken after {after}: {problems[:10]}")


def checked(bench, catalogue: dict, after: str) -> None:
    check_stock(bench, catalogue, after)
    bench.verify(after)


def raw_orders(bench, catalogue: dict, *, items: tuple[int, int], clients: int) -> dict:
    """pgbench's orders, counted from the database (a client whose wallet is short writes none)."""
    from bench.run import per_second, psql

    data = bench.data
    before = int(psql(bench.env, "SELECT count(*) FROM mall_order WHERE number LIKE 'R%'"))
    figures = bench.pgbench("mall_order", clients, first_wallet=data["first_wallet_id"],
                            last_wallet=data["last_wallet_id"], first_item=items[0], last_item=items[1],
                            points=catalogue["price"], bu=catalogue["business_unit"], merchant=catalogue["merchant"])
    placed = int(psql(bench.env, "SELECT count(*) FROM mall_order WHERE number LIKE 'R%'")) - before
    return {**figures, "orders": placed, "orders_per_s": per_second(placed, bench.scale.step_seconds)}


def raw_steps(bench, catalogue: dict) -> dict:
    from bench.run import log, per_second, psql

    raw = {"order": [], "flash_sale": [], "write_off": []}
    first_coupon = int(psql(bench.env, "SELECT COALESCE(MAX(id), 0) + 1 FROM mall_coupon"))
    for clients in ORDER_CONNECTIONS:
        raw["order"].append(raw_orders(bench, catalogue, items=(catalogue["first_item"], catalogue["last_item"]),
                                       clients=clients))
        log(f"raw mall order x{clients}: {raw['order'][-1]['orders_per_s']} orders/s")
    checked(bench, catalogue, "raw mall orders")
    flash = catalogue["raw_flash_item"]
    raw["flash_sale"].append(raw_orders(bench, catalogue, items=(flash, flash), clients=FLASH_CONNECTIONS))
    log(f"raw flash sale x{FLASH_CONNECTIONS}: {raw['flash_sale'][-1]['orders_per_s']} orders/s")
    checked(bench, catalogue, "raw flash sale")
    last_coupon = int(psql(bench.env, "SELECT COALESCE(MAX(id), 0) FROM mall_coupon"))
    before = int(psql(bench.env, "SELECT count(*) FROM mall_writeoff WHERE by = 'raw'"))
    figures = bench.pgbench("mall_write_off", WRITE_OFF_CONNECTIONS, first_coupon=first_coupon,
                            last_coupon=last_coupon, merchant=catalogue["merchant"], bu=catalogue["business_unit"])
    written = int(psql(bench.env, "SELECT count(*) FROM mall_writeoff WHERE by = 'raw'")) - before
    raw["write_off"].append({**figures, "write_offs": written,
                             "write_offs_per_s": per_second(written, bench.scale.step_seconds),
                             "coupons": last_coupon - first_coupon + 1})
    log(f"raw write-off x{WRITE_OFF_CONNECTIONS}: {raw['write_off'][-1]['write_offs_per_s']} write-offs/s")
    checked(bench, catalogue, "raw write-off")
    return raw


def http_orders(bench, base: str, catalogue: dict, tokens: str, *, items: tuple[int, int], connections: int,
                prefix: str) -> dict:
    since = datetime.now(UTC).isoformat()
    figures = bench.wrk(base, "mall_order", connections, key_prefix=prefix, members=items, extra=tokens)
    bench.check_statuses("mall order", figures, {"201", "409"})
    placed = bench.written_rows(f"""SELECT count(*), COALESCE(EXTRACT(EPOCH FROM MAX(placed_at) - MIN(placed_at)), 0)
        FROM mall_order WHERE placed_at >= '{since}' AND idempotency_key LIKE '{prefix}%'""")
    return {**figures, "orders": placed["count"], "orders_per_s": placed["per_s"]}


def http_write_off(bench, base: str, catalogue: dict, order_prefix: str, prefix: str) -> dict:
    from bench.run import BenchFailure, psql

    codes = psql(bench.env, f"""SELECT c.code FROM mall_coupon c JOIN mall_order o ON o.id = c.order_id
        WHERE o.idempotency_key LIKE '{order_prefix}%' AND c.status = 'issued' ORDER BY c.id""").split()
    threads = bench.wrk_threads(WRITE_OFF_CONNECTIONS)
    if len(codes) < threads:
        raise BenchFailure(f"write-off: only {len(codes)} coupons issued by the order steps")
    path = bench.workdir / "mall-codes"
    for number, part in enumerate(split_codes(codes, threads), start=1):
        path.with_name(f"{path.name}.{number}").write_text("\n".join(part) + "\n")
    since = datetime.now(UTC).isoformat()
    figures = bench.wrk(base, "mall_write_off", WRITE_OFF_CONNECTIONS, key_prefix=prefix, members=(0, 0),
                        extra=str(path), api_key=catalogue["till_key"])
    bench.check_statuses("write-off", figures, {"201", "409"})
    written = bench.written_rows(f"""SELECT count(*), COALESCE(EXTRACT(EPOCH FROM MAX(at) - MIN(at)), 0)
        FROM mall_writeoff WHERE at >= '{since}' AND idempotency_key LIKE '{prefix}%'""")
    return {**figures, "coupons": len(codes), "write_offs": written["count"], "write_offs_per_s": written["per_s"],
            "codes_exhausted": written["count"] >= len(codes)}


def run(bench) -> dict:
    from bench.run import log, ratio

    data, run_id = bench.data, datetime.now(UTC).strftime("%H%M%S")
    tokens = bench.workdir / "mall-tokens.txt"
    catalogue = bench.helper("mall", "--members-first", str(data["first_member_id"]), "--members-last",
                             str(data["last_member_id"]), "--token-count", str(TOKENS), "--tokens", str(tokens),
                             "--price", str(PRICE))
    figures = {"catalogue": {k: catalogue[k] for k in ("price", "tokens", "flash_item")}
               | {"items": len(catalogue["initial_stock"]) - 2,
                  "flash_stock": catalogue["initial_stock"][str(catalogue["flash_item"])]}}
    figures["raw"] = raw_steps(bench, catalogue)
    http = figures["http"] = {"order": [], "flash_sale": [], "write_off": []}
    order_prefix = f"mo{run_id}"
    with bench.gunicorn() as base:
        for connections in ORDER_CONNECTIONS:
            http["order"].append(http_orders(bench, base, catalogue, str(tokens), connections=connections,
                                             items=(catalogue["first_item"], catalogue["last_item"]),
                                             prefix=f"{order_prefix}c{connections}-"))
            log(f"http mall order x{connections}: {http['order'][-1]['orders_per_s']} orders/s, "
                f"p99 {http['order'][-1]['p99_ms']} ms")
        checked(bench, catalogue, "http mall orders")
        flash = catalogue["flash_item"]
        http["flash_sale"].append(http_orders(bench, base, catalogue, str(tokens), items=(flash, flash),
                                              connections=FLASH_CONNECTIONS, prefix=f"{order_prefix}f-"))
        log(f"http flash sale x{FLASH_CONNECTIONS}: {http['flash_sale'][-1]['orders_per_s']} orders/s, "
            f"p99 {http['flash_sale'][-1]['p99_ms']} ms")
        checked(bench, catalogue, "http flash sale")
        http["write_off"].append(http_write_off(bench, base, catalogue, order_prefix, f"mw{run_id}-"))
        log(f"http write-off x{WRITE_OFF_CONNECTIONS}: {http['write_off'][-1]['write_offs_per_s']} write-offs/s")
        check_stock(bench, catalogue, "http write-off")
    figures["ratios"] = {
        f"mall_{kind}@{row['connections']}": value
        for kind, metric in (("order", "orders_per_s"), ("flash_sale", "orders_per_s"), ("write_off", "write_offs_per_s"))
        for row, raw_row in zip(http[kind], figures["raw"][kind])
        if (value := ratio(row[metric], raw_row[metric])) is not None
    }
    return figures


def markdown(figures: dict) -> list[str]:
    from bench.run import _cell, ratio_cell

    catalogue, raw, http = figures.get("catalogue", {}), figures.get("raw", {}), figures.get("http", {})
    lines = [
        f"{_cell(catalogue.get('items'))} vouchers of one merchant at {_cell(catalogue.get('price'))} points, a flash-sale "
        f"item with a stock of {_cell(catalogue.get('flash_stock'))}, orders of one unit by {_cell(catalogue.get('tokens'))} "
        "members (their bearer tokens), each with its own Idempotency-Key; a 409 is a member short of points. Orders "
        "and write-offs per second are counted in the database; the raw ceiling is the same writes by hand "
        "(`bench/pgbench/mall_order.sql`, `mall_write_off.sql`). The stock invariant and verify_ledger held after "
        "each series.", "",
        "| step | connections | raw per s | platform per s | ratio | req/s | p50 ms | p99 ms | statuses |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind, metric, label in (("order", "orders_per_s", "order (many items)"),
                                ("flash_sale", "orders_per_s", "flash sale (one item)"),
                                ("write_off", "write_offs_per_s", "coupon write-off")):
        for row, raw_row in zip(http.get(kind, []), raw.get(kind, [])):
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(row.get("statuses", {}).items()))
            measured = figures.get("ratios", {}).get(f"mall_{kind}@{row['connections']}")
            lines.append(
                f"| {label} | {row['connections']} | {_cell(raw_row.get(metric))} | {_cell(row.get(metric))} | "
                f"{ratio_cell(measured)} | "
                f"{_cell(row.get('req_per_s'))} | {_cell(row.get('p50_ms'))} | {_cell(row.get('p99_ms'))} | {statuses} |")
    for row in http.get("write_off", []):
        if row.get("codes_exhausted"):
            lines += ["", f"The write-off step wrote off every one of the {_cell(row['coupons'])} coupons the order "
                          "steps issued before its time was up: its rate is over those."]
    return lines

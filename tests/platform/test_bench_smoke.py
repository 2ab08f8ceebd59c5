"""Smoke test of the benchmark harness: the scale generator at a tiny scale and the parsing of
the load tools' output. The benchmark itself runs with `make bench`, never in the test suite."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from bench.run import compute_ratios, parse_pgbench, parse_wrk, write_markdown
from members.models import Member
from points.models import Entry, Lot, LotMovement, Posting, PostingKind, Wallet
from points.selectors import ledger_problems


def generate(**options) -> dict:
    out = StringIO()
    call_command("bench_generate", no_progress=True, stdout=out, **options)
    return json.loads(out.getvalue())


def test_generator_builds_a_sound_ledger_with_the_counts_it_reports(db):
    summary = generate(members=200, entries=2000, hot_members=5, hot_points=50_000)

    assert ledger_problems() == {}
    assert summary["members"] == Member.objects.count() == 200
    assert summary["wallets"] == Wallet.objects.count() == 200
    assert summary["postings"] == Posting.objects.count()
    assert summary["entries"] == Entry.objects.count()
    assert summary["lots"] == Lot.objects.count()
    assert summary["lot_movements"] == LotMovement.objects.count() > 0
    assert 1500 <= summary["entries"] <= 2500
    assert Posting.objects.filter(kind=PostingKind.SPEND).exists()
    assert Lot.objects.values("business_unit").distinct().count() == 4
    hot = Wallet.objects.filter(id__lt=summary["first_wallet_id"] + 5)
    assert all(wallet.balance >= 50_000 for wallet in hot)


def test_generator_appends_to_an_existing_ledger(db):
    first = generate(members=50, entries=500)
    second = generate(members=30, entries=300, seed=7)

    assert second["first_member_id"] == first["last_member_id"] + 1
    assert Member.objects.count() == 80
    assert ledger_problems() == {}


PGBENCH_OUTPUT = """\
transaction type: bench/pgbench/earn.sql
scaling factor: 1
number of clients: 8
duration: 5 s
number of transactions actually processed: 5318
number of failed transactions: 0 (0.000%)
latency average = 7.521 ms
initial connection time = 12.302 ms
tps = 1063.712345 (without initial connection time)
"""


def test_harness_parses_pgbench_and_wrk_output():
    assert parse_pgbench(PGBENCH_OUTPUT) == {"tps": 1063.712345, "transactions": 5318, "failed": 0, "aborted": False}
    wrk = parse_wrk(
        "Running 5s test @ http://127.0.0.1:8000\n"
        'BENCH_JSON {"requests": 1500, "duration_us": 5000000, "p50_us": 21000, "p99_us": 95500, '
        '"statuses": {"201": 1490, "409": 10}, "socket_errors": 0}\n'
    )
    assert (wrk["req_per_s"], wrk["p50_ms"], wrk["p99_ms"]) == (300.0, 21.0, 95.5)
    assert wrk["statuses"] == {"201": 1490, "409": 10}


def test_ratios_pair_platform_and_raw_at_the_same_concurrency():
    results = {
        "raw": {"earn": [{"clients": 1, "tps": 200.0}, {"clients": 32, "tps": 1000.0}],
                "bulk_earn": [{"clients": 1, "tps": 3.0, "earns_per_s": 3000.0}]},
        "http": {"earn": [{"connections": 32, "req_per_s": 250.0}, {"connections": 8, "req_per_s": 90.0}],
                 "bulk_earn": [{"connections": 1, "earns_per_s": 1500.0}]},
    }
    assert compute_ratios(results) == {"earn@32": 0.25, "bulk_earn@1": 0.5}


def test_results_section_is_replaced_and_the_analysis_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nintro\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\n## Analysis\nkept\n")
    write_markdown({"meta": {"scale": "quick"}, "ratios": {"earn@32": 0.25}}, path)
    text = path.read_text()
    assert "old" not in text
    assert "| earn@32 | 0.250 |" in text
    assert text.startswith("# Benchmarks\n\nintro") and text.endswith("## Analysis\nkept\n")


def test_a_partitioned_run_says_so_with_the_conversions_timings():
    from bench.run import render_markdown

    partitioned = {"seconds": 4.2, "command_seconds": {"convert": 1.5, "validate_foreign_keys": 2.0, "analyze": 0.6},
                   "month": 202612, "partitions": {"points_posting": 6}, "foreign_keys_validated": 10}
    assert "Schema: **partitioned by month**" not in render_markdown({"meta": {"scale": "quick"}})
    text = render_markdown({"meta": {"scale": "quick", "partitioned": True}, "partitioned": partitioned})
    assert "Schema: **partitioned by month** (`partition_ledger` right after generation, 4.2 s in all: conversion 1.5 s" in text
    assert "points_posting 6 partitions" in text


def test_setup_places_every_member_at_the_level_their_points_reach(db):
    from bench.helpers import setup
    from tiers.models import MemberTier
    from tiers.selectors import active_programme, level_for_value, programme_levels, qualifying_value

    generate(members=60, entries=600)
    assert setup()["api_key"]
    programme = active_programme()
    levels = programme_levels(programme=programme)
    assert MemberTier.objects.count() == 60
    for member_tier in MemberTier.objects.select_related("level"):
        value = qualifying_value(member_id=member_tier.member_id, programme=programme, at=member_tier.evaluated_at)
        assert member_tier.qualifying_value == value
        assert member_tier.level == level_for_value(levels=levels, value=value)


def test_steps_default_to_all_and_a_choice_keeps_the_suites_order():
    from bench.run import CORE_STEPS, chosen_steps

    assert chosen_steps(None, ("mall", "payments")) == (*CORE_STEPS, "mall", "payments")
    assert chosen_steps("payments, mall", ("mall", "payments")) == ("mall", "payments")
    assert chosen_steps("expiry,raw", ("mall",)) == ("raw", "expiry")
    for wrong in ("mall,nope", "", " , "):
        with pytest.raises(ValueError):
            chosen_steps(wrong, ("mall", "payments"))


def test_every_capability_step_is_importable_with_its_interface():
    import importlib

    from bench.steps import STEPS

    assert {"mall", "payments"} <= set(STEPS)
    for name in STEPS:
        step = importlib.import_module(f"bench.steps.{name}")
        assert step.NAME and step.TITLE and callable(step.run) and callable(step.markdown)


def test_capability_steps_ratios_join_the_runs_and_their_sections_render(tmp_path):
    from bench.steps import mall, payments

    figures = {
        "mall": {"catalogue": {"items": 50, "price": 10, "tokens": 2000, "flash_stock": 10_000},
                 "raw": {"order": [{"orders_per_s": 400.0}], "flash_sale": [], "write_off": []},
                 "http": {"order": [{"connections": 8, "orders_per_s": 40.0, "req_per_s": 41.0, "statuses": {"201": 9}}],
                          "flash_sale": [], "write_off": []},
                 "ratios": {"mall_order@8": 0.1}},
        "payments": {"points": 7, "raw": [{"tps": 200.0}], "http": [{"connections": 32, "captures_per_s": 20.0}],
                     "ratios": {"payment@32": 0.1}},
    }
    assert compute_ratios({"steps": figures}) == {"mall_order@8": 0.1, "payment@32": 0.1}
    assert "| order (many items) | 8 | 400 | 40.00 | 0.100 |" in "\n".join(mall.markdown(figures["mall"]))
    assert "| 32 | 200 | 20.00 | 0.100 |" in "\n".join(payments.markdown(figures["payments"]))
    path = tmp_path / "BENCHMARKS.md"
    write_markdown({"meta": {"scale": "quick", "steps": ["mall", "payments"]}, "steps": figures}, path)
    text = path.read_text()
    assert "steps mall, payments" in text and f"### {mall.TITLE}" in text and f"### {payments.TITLE}" in text


def test_stock_invariant_names_every_item_that_breaks_it():
    from bench.steps.mall import stock_problems

    initial = {"1": 100, "2": 10, "3": 5}
    assert stock_problems(initial, [(1, 60, 40), (2, 0, 10), (3, 5, 0)]) == []
    problems = stock_problems(initial, [(1, 61, 40), (2, -1, 11)])
    assert problems == ["item 3: missing", "item 1: stock 61 + sold 40 != initial 100", "item 2: stock -1 below zero"]


def test_codes_are_dealt_to_threads_once_each():
    from bench.steps.mall import split_codes

    parts = split_codes([f"C{n}" for n in range(7)], 2)
    assert parts == [["C0", "C2", "C4", "C6"], ["C1", "C3", "C5"]]
    assert sorted(code for part in split_codes(["A", "B", "C"], 4) for code in part) == ["A", "B", "C"]


def test_mall_and_payments_setup_seed_what_their_steps_load(db, tmp_path):
    from bench.helpers import mall, payments
    from mall.models import Item
    from members.models import PartnerKey
    from members.selectors import member_for_token

    generate(members=40, entries=400)
    tokens = tmp_path / "tokens"
    catalogue = mall(items=3, stock=100, flash_stock=10, price=10, members=(1, 40), token_count=8,
                     tokens_file=str(tokens))
    assert {int(pk): stock for pk, stock in catalogue["initial_stock"].items()} == dict(
        Item.objects.values_list("pk", "stock"))
    assert Item.objects.get(pk=catalogue["flash_item"]).stock == 10
    assert all(member_for_token(token=token) for token in tokens.read_text().split())
    assert len(tokens.read_text().split()) == catalogue["tokens"] == 8
    till = PartnerKey.objects.get_from_key(catalogue["till_key"])
    assert till.merchant_id == catalogue["merchant"]
    terms = payments()
    assert PartnerKey.objects.get_from_key(terms["api_key"]).may_spend_without_presence

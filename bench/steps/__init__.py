"""Benchmark steps of the capabilities above the ledger, run after the core steps in one run.

Each module listed in STEPS defines:

    NAME: str                          the key of its figures in bench/results/latest.json
    TITLE: str                         the heading of its section in BENCHMARKS.md
    run(bench) -> dict                 loads the platform (bench is bench.run.Bench: env, scale,
                                       data, partner, manage/psql helpers, gunicorn(), wrk(),
                                       pgbench(), verify(), measure_rss()) and returns its figures;
                                       every load loop bounded in count and in time
    markdown(figures: dict) -> list[str]   the lines of its section (tables), raw ceiling beside

A step that leaves the ledger wrong raises bench.run.BenchFailure; run.py runs verify_ledger
after each step.
"""

STEPS: tuple[str, ...] = ("mall", "payments", "risk", "settlement", "statements", "dashboard", "member_import")

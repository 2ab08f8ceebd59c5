"""What risk control costs: the single earn and the redemption over HTTP with three risk rules
active on each path beside the same steps with none, in one run, and the ratio between them
(the goal: risk control costs under 15% of the throughput).

The earn is judged by velocity (earns per member per day), duplicate receipt and members per
device (every request names one of DEVICES devices, bench/wrk/earn_device.lua); the redemption by
velocity (redemptions per member per day), one redemption's points and earn-then-redeem. The
thresholds are out of reach, so every rule reads and counts what it would and none fires: the
figures are the cost of judging, not of refusing. Each phase runs on its own gunicorn (the
rules' cached configuration is per process), warmed up on both paths before it is measured, in
ROUNDS rounds (none, rules, none, rules: load that drifts weighs on both alike); the rules are
switched off again at the end, even after a failure, so later steps run without them. run.py
runs verify_ledger after the step.

    python bench/steps/risk.py on|off      # switch the benchmark's rules (in the bench's env)
"""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

NAME = "risk"
TITLE = "Risk control: the earn and the redemption with three rules active, beside none"

ROOT = Path(__file__).resolve().parent.parent.parent
CONNECTIONS = 8
DEVICES = 10_000
REDEEM_POINTS = 7
GOAL_ADDED_COST = 0.15
WARM_UP_SECONDS = 2
DAY = 24 * 60
OUT_OF_REACH = 1_000_000_000
# (code, kind, window in minutes, action): three rules for each path.
RULES = (
    ("bench-earn-velocity", "earn_count", DAY, "block"),
    ("bench-duplicate-receipt", "duplicate_receipt", None, "flag"),
    ("bench-device-members", "device_members", DAY, "flag"),
    ("bench-redemption-velocity", "redemption_count", DAY, "block"),
    ("bench-redemption-points", "redemption_points", None, "flag"),
    ("bench-earn-then-redeem", "earn_then_redeem", 30, "flag"),
)
PHASES = ("none", "rules")
# none, rules, none, rules: a machine whose load drifts during the step weighs on both alike.
ROUNDS = 2


def run(bench) -> dict:
    data = bench.data
    members = (data["first_member_id"], data["last_member_id"])
    hot = (data["first_member_id"], data["first_member_id"] + data["hot_members"] - 1)
    if not bench.partner:  # a run of this step alone (--steps risk) made no key yet
        bench.partner = bench.helper("setup")
    run_id = datetime.now(UTC).strftime("%H%M%S")
    rounds = []
    try:
        for number in range(ROUNDS):
            for phase in PHASES:
                switch(bench.env, on=phase == "rules")
                tag = f"k{run_id}{number}{phase}"
                with bench.gunicorn() as base:
                    warm_up(bench, base, members=members, hot=hot, prefix=f"{tag}w")
                    earn = bench.wrk(base, "earn_device", CONNECTIONS, key_prefix=f"{tag}e-", members=members,
                                     extra=str(DEVICES))
                    bench.check_statuses(f"risk earn ({phase})", earn, {"201"})
                    redeem = bench.wrk(base, "spend", CONNECTIONS, key_prefix=f"{tag}s-", members=hot,
                                       extra=str(REDEEM_POINTS))
                    bench.check_statuses(f"risk redeem ({phase})", redeem, {"201", "409"})
                rounds.append({"phase": phase, "earn": earn, "redeem": redeem})
    finally:
        switch(bench.env, on=False)
    phases = merged(rounds)
    raw = bench.results.get("raw", {})
    return {
        "connections": CONNECTIONS, "rules": [code for code, *_rest in RULES], "rounds": rounds, "phases": phases,
        "comparison": compare(phases),
        "raw_tps": {path: raw_tps(raw, path) for path in ("earn", "redeem")},
    }


def warm_up(bench, base: str, *, members: tuple[int, int], hot: tuple[int, int], prefix: str) -> None:
    """Both paths for WARM_UP_SECONDS each, not measured: every worker has booted and served
    both before the figures are taken (the first phase would otherwise pay for the boot alone)."""
    for script, key, who, extra, statuses in (("earn_device", "e-", members, str(DEVICES), {"201"}),
                                              ("spend", "s-", hot, str(REDEEM_POINTS), {"201", "409"})):
        figures = bench.wrk(base, script, CONNECTIONS, key_prefix=f"{prefix}{key}", members=who, extra=extra,
                            seconds=WARM_UP_SECONDS)
        bench.check_statuses(f"risk warm-up {script}", figures, statuses)


def switch(env: dict, *, on: bool) -> None:
    """Switch the benchmark's rules on or off, in a Django process of the bench's environment."""
    python = ROOT / ".venv" / "bin" / "python"
    subprocess.run([str(python) if python.exists() else sys.executable, __file__, "on" if on else "off"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)


def merged(rounds: list[dict]) -> dict:
    """Per phase and path, the rounds together: req/s over all their requests and seconds, the
    worse round's p99, the statuses summed."""
    phases = {}
    for phase in PHASES:
        of_phase = [measured for measured in rounds if measured["phase"] == phase]
        phases[phase] = {}
        for path in ("earn", "redeem"):
            figures = [measured[path] for measured in of_phase]
            requests, seconds = sum(f["requests"] for f in figures), sum(f["seconds"] for f in figures)
            statuses = {}
            for f in figures:
                for status, count in f["statuses"].items():
                    statuses[status] = statuses.get(status, 0) + count
            phases[phase][path] = {
                "requests": requests, "seconds": round(seconds, 2),
                "req_per_s": round(requests / seconds, 1) if seconds else 0.0,
                "p99_ms": max((f["p99_ms"] for f in figures if f["p99_ms"] is not None), default=None),
                "statuses": statuses,
            }
    return phases


def compare(phases: dict) -> dict:
    """Per path: req/s and p99 without and with the rules, their ratio and the cost added."""
    result = {}
    for path in ("earn", "redeem"):
        none, rules = phases.get("none", {}).get(path), phases.get("rules", {}).get(path)
        if not none or not rules:
            continue
        ratio = round(rules["req_per_s"] / none["req_per_s"], 3) if none["req_per_s"] else None
        result[path] = {
            "none_req_per_s": none["req_per_s"], "none_p99_ms": none["p99_ms"],
            "rules_req_per_s": rules["req_per_s"], "rules_p99_ms": rules["p99_ms"],
            "ratio": ratio, "added_cost": round(1 - ratio, 3) if ratio is not None else None,
            "within_goal": ratio is not None and 1 - ratio < GOAL_ADDED_COST,
        }
    return result


def raw_tps(raw: dict, path: str) -> float | None:
    """The raw ceiling's transactions per second at the step's concurrency (bench/pgbench)."""
    return next((row["tps"] for row in raw.get(path, []) if row.get("clients") == CONNECTIONS), None)


def markdown(figures: dict) -> list[str]:
    def cell(value, suffix=""):
        return "–" if value is None else f"{value:,}{suffix}"

    rounds = len(figures.get("rounds", [])) // len(PHASES) or 1
    lines = [
        f"{figures['connections']} connections; rules: {', '.join(f'`{code}`' for code in figures['rules'])} "
        f"(thresholds out of reach: judged, never fired); {rounds} round(s) of each, "
        f"alternating. Goal: under {GOAL_ADDED_COST:.0%} added cost.",
        "",
        "| path | no rule req/s | p99 ms | three rules req/s | p99 ms | ratio | added cost | goal met | raw ceiling tps |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for path, row in figures["comparison"].items():
        added = None if row["added_cost"] is None else f"{row['added_cost']:.1%}"
        lines.append(
            f"| {path} | {cell(row['none_req_per_s'])} | {cell(row['none_p99_ms'])} | {cell(row['rules_req_per_s'])} "
            f"| {cell(row['rules_p99_ms'])} | {cell(row['ratio'])} | {added or '–'} | "
            f"{'yes' if row['within_goal'] else 'no'} | {cell(figures['raw_tps'].get(path))} |"
        )
    return lines


def rules_switch(*, on: bool) -> list[str]:
    """Create or update the benchmark's rules, active or not (through the service: a rule
    switched on judges from now); the codes switched."""
    from decimal import Decimal

    from riskcontrol.models import RiskRule
    from riskcontrol.services import risk_rule_save

    for code, kind, window, action in RULES:
        rule = RiskRule.objects.filter(code=code).first() or RiskRule(code=code, name=code, kind=kind)
        rule.threshold, rule.window_minutes, rule.action, rule.is_active = (
            Decimal(OUT_OF_REACH), window, action, on)
        risk_rule_save(rule=rule)
    return [code for code, *_rest in RULES]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    print(rules_switch(on=sys.argv[1:] == ["on"]))

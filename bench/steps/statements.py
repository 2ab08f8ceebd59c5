"""Benchmark step: monthly statement generation over the benchmark's members and the daily expiry
reminders, each in a child process of its own (its peak RSS read from wait4), bounded in time.

Statements: the month just ended (the generated ledger books its postings over two years, so
most members have a balance then), batch after batch as one worker's chain of the beat job does
(`statements_generate_batch`, STATEMENTS_BATCH_SIZE members each), for every member: the budget
(GENERATION_BUDGET_SECONDS, 10 minutes at full scale) only stops a run far slower than expected.
Reported: members and statements per second, the projection for all members at that rate, the
peak RSS beside the RSS after the first batches (flat memory: the two stay close however many
members follow) and whether it finished. verify_statements then checks the first
VERIFY_SAMPLE_MEMBERS members the run reached (every member at quick scale; at full scale a
sample, as it recomputes each statement the long way round), itself bounded by a timeout.

Expiry reminders: the day's run for each offset of NOTIFICATIONS_EXPIRY_REMINDER_DAYS over every
wallet (`expiry_reminders_batch`), bounded likewise.

The messages are queued as in production (log rows; the benchmark's members have no e-mail or
SMS consent, so they are logged as skipped); a send the queue would hand to celery is counted
instead of reaching a broker.

    python bench/steps/statements.py generate [--period YYYY-MM] --budget SECONDS
    python bench/steps/statements.py reminders [--day YYYY-MM-DD] --budget SECONDS
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

NAME = "statements"
TITLE = "Statements and expiry reminders"
FIRST_BATCHES = 5  # the RSS after these many batches is the baseline of "flat"
GENERATION_BUDGET_SECONDS = {"quick": 60, "full": 600}  # by scale: enough for every member
VERIFY_SAMPLE_MEMBERS = 100_000  # verify_statements checks the members up to the one reached at this count
VERIFY_TIMEOUT_FACTOR = 3  # verify_statements may take this many times the reminders' budget


def per_second(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds else None


def projection_seconds(*, done: int, seconds: float, total: int) -> float | None:
    """How long all `total` members would take at the rate of `done` members in `seconds`."""
    return round(total * seconds / done, 1) if done else None


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _no_broker() -> None:
    """Sends the queue would hand to celery go nowhere (the batches count them)."""
    from members.notifications import services

    services.enqueue_send = lambda log_id: None


def generate(*, period: str | None, budget: float) -> dict:
    """The statements of `period` (default: the month just ended, as beat runs it on the 1st)."""
    from django.utils import timezone

    from points.models import Wallet
    from points.statements.periods import period_last_closed, period_parse
    from points.statements.services import statements_generate_batch

    _no_broker()
    run_period = period_parse(period) if period else period_last_closed(timezone.now())
    started = time.monotonic()
    cursor, members, created, handed, batches, first_rss, finished = 0, 0, 0, 0, 0, None, False
    sample_through = None
    while time.monotonic() - started < budget:
        batch = statements_generate_batch(period=run_period, after_member_id=cursor)
        members, created, handed, batches = (members + batch.members, created + batch.created,
                                             handed + batch.queued, batches + 1)
        if batches == FIRST_BATCHES:
            first_rss = rss_mb()
        if batch.cursor is None:
            finished = True
            break
        cursor = batch.cursor
        if sample_through is None and members >= VERIFY_SAMPLE_MEMBERS:
            sample_through = cursor
    return {
        "period": run_period.name, "members": members, "statements": created, "sends_handed": handed, "batches": batches,
        "seconds": round(time.monotonic() - started, 3), "finished": finished,
        "through_member": None if finished else cursor, "verify_through_member": sample_through or (None if finished else cursor),
        "rss_after_first_batches_mb": first_rss, "wallets": Wallet.objects.filter(member__isnull=False).count(),
    }


def reminders(*, day: str | None, budget: float) -> dict:
    """The expiry reminders of `day` (default: today, group time), every offset."""
    from datetime import date

    from django.conf import settings
    from django.utils import timezone

    from points.statements.reminders import expiry_reminders_batch
    from points.timeutils import local_date

    _no_broker()
    run_day = date.fromisoformat(day) if day else local_date(timezone.now())
    started = time.monotonic()
    messages, batches, finished = 0, 0, True
    for offset in settings.NOTIFICATIONS_EXPIRY_REMINDER_DAYS:
        cursor = 0
        while finished:
            if time.monotonic() - started >= budget:
                finished = False
                break
            batch = expiry_reminders_batch(run_day=run_day, offset=offset, after_wallet_id=cursor)
            messages, batches = messages + batch.messages, batches + 1
            if batch.cursor is None:
                break
            cursor = batch.cursor
    return {"day": run_day.isoformat(), "offsets": list(settings.NOTIFICATIONS_EXPIRY_REMINDER_DAYS), "messages": messages,
            "batches": batches, "seconds": round(time.monotonic() - started, 3), "finished": finished}


# --- the harness side (bench/run.py calls run and markdown) ----------------------------------


def child(bench, *args: str) -> tuple[dict, float]:
    """Run this module as a child process; its JSON answer and its peak RSS in MB (wait4)."""
    from bench.run import PYTHON, BenchFailure

    out = bench.workdir / f"statements-{args[0]}.json"
    with out.open("w") as handle:
        process = subprocess.Popen([PYTHON, str(Path(__file__)), *args], cwd=ROOT, env=bench.env, stdout=handle)
        _pid, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchFailure(f"bench/steps/statements.py {args[0]} exited {os.waitstatus_to_exitcode(status)}")
    return json.loads(out.read_text().strip().splitlines()[-1]), round(usage.ru_maxrss / 1024, 1)


def verify_statements(bench, *, period: str, through_member: int | None, timeout: float) -> dict:
    """verify_statements over the members the run reached; a difference stops the benchmark."""
    from bench.run import PYTHON, BenchFailure

    args = [PYTHON, "manage.py", "verify_statements", "--period", period]
    if through_member is not None:
        args += ["--through-member", str(through_member)]
    started = time.monotonic()
    try:
        result = subprocess.run(args, cwd=ROOT, env=bench.env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": None, "finished": False, "seconds": round(time.monotonic() - started, 1)}
    if result.returncode != 0:
        raise BenchFailure(f"verify_statements FAILED for {period}:\n{result.stdout}\n{result.stderr[-3000:]}")
    return {"ok": True, "finished": True, "seconds": round(time.monotonic() - started, 1)}


def run(bench) -> dict:
    from bench.run import log

    budget = bench.scale.expiry_budget_seconds
    _idle, idle_rss = bench.measure_rss("idle")
    generation_budget = GENERATION_BUDGET_SECONDS[bench.scale.name]
    job, peak_rss = child(bench, "generate", "--budget", str(generation_budget))
    period = job["period"]
    statements = {
        **job, "budget_seconds": generation_budget, "peak_rss_mb": peak_rss, "idle_django_rss_mb": idle_rss,
        "members_per_s": per_second(job["members"], job["seconds"]),
        "statements_per_s": per_second(job["statements"], job["seconds"]),
        "projected_all_members_s": projection_seconds(done=job["members"], seconds=job["seconds"], total=job["wallets"]),
    }
    log(f"statements {period}: {job['members']} members in {job['seconds']} s ({statements['members_per_s']}/s, "
        f"all {job['wallets']} in ~{statements['projected_all_members_s']} s), peak RSS {peak_rss} MB")
    statements["verify"] = {
        **verify_statements(bench, period=period, through_member=job["verify_through_member"],
                            timeout=budget * VERIFY_TIMEOUT_FACTOR),
        "through_member": job["verify_through_member"],
    }
    log(f"verify_statements: {statements['verify']}")
    job, peak_rss = child(bench, "reminders", "--budget", str(budget))
    reminder = {**job, "peak_rss_mb": peak_rss, "messages_per_s": per_second(job["messages"], job["seconds"])}
    log(f"expiry reminders {job['day']}: {job['messages']} messages in {job['seconds']} s, finished {job['finished']}")
    return {"budget_seconds": budget, "statements": statements, "expiry_reminders": reminder}


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(figures: dict) -> list[str]:
    st, rem = figures["statements"], figures["expiry_reminders"]
    verify = st.get("verify", {})
    generation_budget = st.get("budget_seconds", figures["budget_seconds"])
    return [
        f"Each job in a process of its own, statements bounded by {generation_budget} s and reminders by "
        f"{figures['budget_seconds']} s; one chain of batches (one worker). The members have no e-mail or SMS "
        "consent: their messages are logged as skipped.",
        "",
        "| job | members / messages | seconds | per s | all members (projected s) | peak RSS MB | RSS after "
        f"{FIRST_BATCHES} batches MB | finished |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| statements {st['period']} ({_cell(st['statements'])} written) | {_cell(st['members'])} | "
        f"{_cell(st['seconds'])} | {_cell(st['members_per_s'])} | {_cell(st['projected_all_members_s'])} | "
        f"{_cell(st['peak_rss_mb'])} | {_cell(st['rss_after_first_batches_mb'])} | {_cell(st['finished'])} |",
        f"| expiry reminders {rem['day']} (offsets {', '.join(map(str, rem['offsets']))}) | {_cell(rem['messages'])} | "
        f"{_cell(rem['seconds'])} | {_cell(rem['messages_per_s'])} | - | {_cell(rem['peak_rss_mb'])} | - | "
        f"{_cell(rem['finished'])} |",
        "",
        f"Idle Django RSS {_cell(st['idle_django_rss_mb'])} MB. verify_statements over "
        f"{'the members reached' if verify.get('through_member') is None else 'the members with ids up to ' + _cell(verify['through_member'])}: "
        f"{'OK' if verify.get('ok') else 'not finished'} in {_cell(verify.get('seconds'))} s.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    job = sub.add_parser("generate")
    job.add_argument("--period", default=None)
    job.add_argument("--budget", type=float, required=True)
    job = sub.add_parser("reminders")
    job.add_argument("--day", default=None)
    job.add_argument("--budget", type=float, required=True)
    args = parser.parse_args()

    import django

    django.setup()
    if args.command == "generate":
        result = generate(period=args.period, budget=args.budget)
    else:
        result = reminders(day=args.day, budget=args.budget)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Recompute every ledger invariant; exit non-zero naming each one that fails."""

import time

from django.core.management.base import BaseCommand, CommandError

from points.selectors import ledger_invariant_names, ledger_problems


class Command(BaseCommand):
    help = "Check every ledger invariant (double entry, balances = entries = lots, lot bounds, movements)."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=10, help="offending rows to show per invariant")

    def handle(self, *args, limit, **options):
        started = time.monotonic()
        names = ledger_invariant_names()
        problems = ledger_problems(limit=limit)
        elapsed = time.monotonic() - started
        for name, rows in problems.items():
            self.stderr.write(f"FAIL {name}: {rows}")
        if problems:
            raise CommandError(f"{len(problems)} of {len(names)} ledger invariants failed")
        self.stdout.write(self.style.SUCCESS(f"ledger OK: {len(names)} invariants hold ({elapsed:.2f}s)"))

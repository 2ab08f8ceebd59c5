"""Reconcile the stored statements with the ledger; exit non-zero naming every difference.

For each period that has statements (or the one given), member by member in batches: each
statement's balances at both boundaries equal the sum of every entry booked before them, its
lines equal the period's postings recomputed, its lines add up; every member who was due a
statement has one, and no member who was not due one has one.
"""

import time

from django.core.management.base import BaseCommand, CommandError

from points.statements.periods import period_parse
from points.statements.selectors import member_ids_after, period_differences, statement_periods


class Command(BaseCommand):
    help = "Check that every statement agrees with the ledger and that no member's statement is missing."

    def add_arguments(self, parser):
        parser.add_argument("--period", help="only this period (YYYY-MM); default: every period with statements")
        parser.add_argument("--batch-size", type=int, default=1000, help="members per batch")
        parser.add_argument("--limit", type=int, default=50, help="differences to show")
        parser.add_argument("--through-member", type=int, default=None,
                            help="only members up to this id (a run stopped part way, e.g. in the benchmark)")

    def handle(self, *args, period, batch_size, limit, through_member, **options):
        started = time.monotonic()
        periods = [period_parse(period)] if period else statement_periods()
        problems = []
        for one in periods:
            cursor = 0
            while True:
                member_ids = member_ids_after(after_member_id=cursor, limit=batch_size)
                if through_member is not None:
                    member_ids = [member_id for member_id in member_ids if member_id <= through_member]
                if not member_ids:
                    break
                problems += period_differences(period=one, member_ids=member_ids)
                cursor = member_ids[-1]
        for problem in problems[:limit]:
            self.stderr.write(f"FAIL {problem}")
        if problems:
            raise CommandError(f"{len(problems)} statement differences from the ledger")
        names = ", ".join(one.name for one in periods) or "none"
        self.stdout.write(self.style.SUCCESS(
            f"statements OK: periods {names} agree with the ledger ({time.monotonic() - started:.2f}s)"
        ))

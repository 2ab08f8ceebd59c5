"""Reconcile the dashboard's daily aggregates to the ledger; exit non-zero naming each day that differs."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from points.aggregates import aggregates_mismatches, aggregates_refresh


class Command(BaseCommand):
    help = ("Compare the dashboard's daily aggregates with the ledger (all days, or --from/--to) and name every "
            "day that differs; --refresh runs the beat job's refresh first.")

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="first", type=date.fromisoformat, help="first day (YYYY-MM-DD, group time)")
        parser.add_argument("--to", dest="last", type=date.fromisoformat, help="last day (YYYY-MM-DD), inclusive")
        parser.add_argument("--refresh", action="store_true", help="refresh the aggregates first, as the job does")

    def handle(self, *args, first, last, refresh, **options):
        if refresh:
            aggregates_refresh()
        problems = aggregates_mismatches(first=first, last=last)
        for problem in problems:
            self.stderr.write(f"FAIL {problem}")
        if problems:
            raise CommandError(f"the aggregates differ from the ledger: {len(problems)} problems")
        self.stdout.write(self.style.SUCCESS("aggregates OK: every day equals the ledger"))

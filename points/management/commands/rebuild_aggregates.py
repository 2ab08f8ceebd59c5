"""Rebuild the dashboard's daily aggregates from the ledger: every day, or the days of a range."""

import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from points.aggregates import aggregates_rebuild, aggregates_rebuild_all


class Command(BaseCommand):
    help = "Rebuild the dashboard's daily aggregates from the ledger (idempotent): all days, or --from/--to."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="first", type=date.fromisoformat, help="first day (YYYY-MM-DD, group time)")
        parser.add_argument("--to", dest="last", type=date.fromisoformat, help="last day (YYYY-MM-DD), inclusive")

    def handle(self, *args, first, last, **options):
        started = time.monotonic()
        if first is None and last is None:
            rows = aggregates_rebuild_all()
        elif first is None or last is None or first > last:
            raise CommandError("give both --from and --to, the first not after the last")
        else:
            rows = aggregates_rebuild(first=first, last=last)
        self.stdout.write(self.style.SUCCESS(f"aggregates rebuilt: {rows} rows ({time.monotonic() - started:.2f}s)"))

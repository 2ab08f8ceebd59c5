"""Demo: draft settlement runs for last month (closable now) and this month (the seeded postings
are booked today, so its lines show the clearing, breakage and merchant lines). Idempotent: a
closed run is left as it is."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from settlement.models import RunStatus
from settlement.selectors import period_of, previous_period, run_for_period
from settlement.services import settlement_run_compute


class Command(BaseCommand):
    help = "Create the demo's draft settlement runs (last month and this month)."

    def handle(self, *args, **options):
        for period in (previous_period(), period_of(timezone.now())):
            existing = run_for_period(period=period)
            if existing and existing.status == RunStatus.CLOSED:
                continue
            run = settlement_run_compute(period=period)
            self.stdout.write(f"settlement run {period:%Y-%m}: draft, {run.lines.count()} lines")

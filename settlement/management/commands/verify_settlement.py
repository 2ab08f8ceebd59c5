"""Tie settlement to the ledger, to the point and to the cent; exit non-zero naming each difference.

Per business unit and period: opening liability + issued + adjusted - redeemed - reclaimed -
expired = closing liability = the lots' remaining points at the period's end (as of now for a
period not ended); the inter-BU matrix's payables equal its receivables; a run's stored lines
equal the lines computed afresh from the ledger.
"""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from settlement.models import SettlementRun
from settlement.selectors import period_of, reconcile


class Command(BaseCommand):
    help = "Reconcile settlement periods with the ledger (every run and the open month by default)."

    def add_arguments(self, parser):
        parser.add_argument("--period", help="One month, YYYY-MM.")

    def handle(self, *args, period=None, **options):
        if period:
            try:
                periods = [date.fromisoformat(f"{period}-01")]
            except ValueError as exc:
                raise CommandError(f"--period: give a month as YYYY-MM, not {period!r}") from exc
        else:
            periods = sorted(set(SettlementRun.objects.values_list("period", flat=True)) | {period_of(timezone.now())})
        problems = []
        for month in periods:
            result = reconcile(period=month)
            problems += result.problems
            self.stdout.write(f"{month:%Y-%m} ({result.status}): {len(result.rows)} business units, "
                              f"{len(result.problems)} differences")
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"settlement does not tie to the ledger: {len(problems)} differences")
        self.stdout.write(self.style.SUCCESS("settlement ties to the ledger"))

"""Give every posting without clearing lines the lines the after-post hook writes (settlement.backfill)."""

from django.core.management.base import BaseCommand, CommandError

from settlement.backfill import ClosedRunExists, record_missing_clearing_lines


class Command(BaseCommand):
    help = ("Write the clearing lines of postings that have none (history from before the settlement app, "
            "or written by hand); refused while a settlement run is closed.")

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=200_000, help="Posting ids per transaction.")

    def handle(self, *args, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            written = record_missing_clearing_lines(
                batch_size=batch_size,
                progress=lambda last_id, lines: self.stdout.write(f"postings up to {last_id}: {lines} lines"),
            )
        except ClosedRunExists as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{written} clearing lines written"))

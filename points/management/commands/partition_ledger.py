"""Partition postings, entries and lot movements by month, in place (PostgreSQL); idempotent.

Stop the web and worker processes first: the conversion locks the ledger tables and those that
refer to postings until it commits (docs/scaling.md). On an already partitioned ledger it only
brings it up to date (time zone, partitions ahead, foreign keys still to validate). Prints what
it did as JSON on stdout.
"""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from points.partitioning import PartitioningError, ledger_partition


class Command(BaseCommand):
    help = "Partition the ledger tables by month in place (PostgreSQL), or bring a partitioned ledger up to date."

    def add_arguments(self, parser):
        parser.add_argument("--months-ahead", type=int, default=None,
                            help="months beyond this one that get a partition (default POINTS_PARTITION_MONTHS_AHEAD)")
        parser.add_argument("--lock-timeout", default="30s",
                            help="how long to wait for each lock before giving up (PostgreSQL interval, default 30s)")

    def handle(self, *args, months_ahead, lock_timeout, **options):
        ahead = settings.POINTS_PARTITION_MONTHS_AHEAD if months_ahead is None else months_ahead
        if ahead < 1:
            raise CommandError("--months-ahead must be at least 1: the next month needs its partition")
        try:
            done = ledger_partition(months_ahead=ahead, lock_timeout=lock_timeout)
        except PartitioningError as error:
            raise CommandError(str(error)) from error
        self.stderr.write(
            f"ledger {'partitioned' if done['converted'] else 'already partitioned'} by month "
            f"({done['seconds']['total']}s); {len(done['created'])} partitions created, "
            f"{len(done['validated'])} foreign keys validated")
        self.stdout.write(json.dumps(done))

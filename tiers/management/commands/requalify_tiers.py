"""Requalify every member now, in batches, without the celery worker (what the daily job does)."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from tiers.services import tier_requalify_batch


class Command(BaseCommand):
    help = "Requalify every member's tier now: upgrades, downgrades after grace, ends of tiers set by hand."

    def handle(self, *args, **options):
        now = timezone.now()
        total, cursor = 0, 0
        while cursor is not None:
            done, cursor = tier_requalify_batch(now=now, after_member_id=cursor)
            total += done
        self.stdout.write(f"Requalified {total} members.")

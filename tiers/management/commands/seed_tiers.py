"""Create the standard tier programme when none exists (idempotent; used by the demo)."""

from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from tiers.models import QualificationBasis, TierLevel, TierProgramme

STANDARD_LEVELS = [
    # code, name, rank, threshold (points), multiplier, expiry extension (months), redemption discount (%)
    ("member", "Member", 0, "0", "1.00", 0, "0"),
    ("silver", "Silver", 1, "2000", "1.20", 3, "2"),
    ("gold", "Gold", 2, "10000", "1.50", 6, "5"),
    ("platinum", "Platinum", 3, "40000", "2.00", 12, "10"),
]


class Command(BaseCommand):
    help = "Create the standard points-based tier programme (Member, Silver, Gold, Platinum) if none exists."

    @transaction.atomic
    def handle(self, *args, **options):
        if TierProgramme.objects.exists():
            self.stdout.write("A tier programme exists already; nothing to do.")
            return
        programme = TierProgramme.objects.create(
            code="standard", name="Standard", basis=QualificationBasis.POINTS, window_months=12, grace_days=30,
        )
        TierLevel.objects.bulk_create([
            TierLevel(programme=programme, code=code, name=name, rank=rank, threshold=Decimal(threshold),
                      earn_multiplier=Decimal(multiplier), expiry_extension_months=extension,
                      redemption_discount_percent=Decimal(discount))
            for code, name, rank, threshold, multiplier, extension, discount in STANDARD_LEVELS
        ])
        self.stdout.write(f"Created tier programme {programme.code} with {len(STANDARD_LEVELS)} levels.")

"""Pay the referral awards earned before a referral rule existed (or while it was off): every
referee with a purchase whose referrer has not been paid for them yet. Each award is keyed
`referral:<referee>`, so a rerun, or a purchase paying it meanwhile, pays nothing twice."""

from django.core.management.base import BaseCommand

from config.errors import DomainError
from members.models import Member
from points.earning import points_referral_award


class Command(BaseCommand):
    help = "Pay the referral awards of referees who purchased before the referral rule applied (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="referees read per query")

    def handle(self, *args, batch_size, **options):
        paid = replayed = refused = 0
        after = 0
        while True:
            referees = list(
                Member.objects.filter(referred_by__isnull=False, pk__gt=after).order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            for referee_id in referees:
                try:
                    result = points_referral_award(referee_id=referee_id)
                except DomainError as exc:
                    refused += 1
                    self.stderr.write(f"referee {referee_id}: {exc.code} {exc}")
                    continue
                if result is None or result.posting is None:
                    continue
                replayed += result.replayed
                paid += not result.replayed
            if len(referees) < batch_size:
                break
            after = referees[-1]
        self.stdout.write(f"referral awards: {paid} paid, {replayed} already paid, {refused} refused")

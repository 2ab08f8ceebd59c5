"""Django-side helpers of the benchmark, each run by bench/run.py in a subprocess of its own.

    python bench/helpers.py setup                      # partner key + tier programme, as JSON
    python bench/helpers.py expire --now ISO --budget SECONDS
    python bench/helpers.py idle                       # Django loaded, nothing done (baseline RSS)

The expiry job runs in its own process so that the harness can read that process's peak RSS.
"""

import argparse
import json
import os
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def setup() -> dict:
    """A partner key of the benchmark's mall (no merchant: codes are named per request) and an
    active tier programme, so that the earn path and the tier read do their full work."""
    from members.models import BusinessUnit, PartnerKey
    from tiers.models import QualificationBasis, TierLevel, TierProgramme

    unit = BusinessUnit.objects.get(code="bench-mall")
    key_obj, key = PartnerKey.objects.create_key(name=f"bench {datetime.now():%Y%m%d%H%M%S}", business_unit=unit)
    if not TierProgramme.objects.filter(is_active=True).exists():
        programme = TierProgramme.objects.create(code="bench", name="Bench tiers", basis=QualificationBasis.POINTS)
        for rank, (code, threshold, multiplier) in enumerate(
            [("silver", 0, "1"), ("gold", 5_000, "1.25"), ("platinum", 20_000, "1.5")], start=1
        ):
            TierLevel.objects.create(programme=programme, code=code, name=code.title(), rank=rank,
                                     threshold=Decimal(threshold), earn_multiplier=Decimal(multiplier))
    return {"api_key": key, "scope": f"partner:{key_obj.prefix}", "business_unit": unit.code,
            "merchants": list(unit.merchants.order_by("code").values_list("code", flat=True))}


def expire(*, now: str, budget: float, batch_size: int | None) -> dict:
    """Run the expiry job's batches, as the beat task does, until done or out of time."""
    from points.services import expiry_run_batch

    moment = datetime.fromisoformat(now)
    started = time.monotonic()
    cursor, written, batches, finished = 0, 0, 0, False
    while time.monotonic() - started < budget:
        count, cursor = expiry_run_batch(now=moment, after_wallet_id=cursor, batch_size=batch_size)
        written += count
        batches += 1
        if cursor is None:
            finished = True
            break
    return {"postings": written, "batches": batches, "finished": finished,
            "seconds": round(time.monotonic() - started, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup")
    sub.add_parser("idle")
    job = sub.add_parser("expire")
    job.add_argument("--now", required=True)
    job.add_argument("--budget", type=float, required=True)
    job.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()

    import django

    django.setup()
    if args.command == "setup":
        result = setup()
    elif args.command == "expire":
        result = expire(now=args.now, budget=args.budget, batch_size=args.batch_size)
    else:
        result = {}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

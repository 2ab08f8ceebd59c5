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


# Every member on the programme at the level their points earned in the window reach, as a
# programme that has been running a while (and a requalification run) leaves them. The
# generated ledger has no refunds, so this is exactly tiers.selectors.qualifying_value.
PLACE_MEMBERS_SQL = """
INSERT INTO tiers_membertier (member_id, programme_id, level_id, since, qualifying_value, evaluated_at,
                              below_since, override_level_id, override_reason, override_ends_at, override_set_by_id)
SELECT w.member_id, %(programme)s,
       (SELECT l.id FROM tiers_tierlevel l WHERE l.programme_id = %(programme)s AND l.threshold <= coalesce(q.total, 0)
        ORDER BY l.rank DESC LIMIT 1),
       %(now)s, coalesce(q.total, 0), %(now)s, NULL, NULL, '', NULL, NULL
FROM points_wallet w
LEFT JOIN (SELECT wallet_id, sum(points) AS total FROM points_posting
           WHERE kind = 'earn' AND occurred_at >= %(start)s AND occurred_at <= %(now)s GROUP BY wallet_id) q
       ON q.wallet_id = w.id
ON CONFLICT (member_id) DO NOTHING
"""


def setup() -> dict:
    """A partner key of the benchmark's mall (no merchant: codes are named per request; allowed to
    spend by member id without the member present) and an
    active tier programme with every member placed on it, so that the earn path and the tier
    read do their full work, as in a programme that has been running."""
    from django.db import connection
    from django.utils import timezone

    from members.models import BusinessUnit, PartnerKey
    from tiers.models import QualificationBasis, TierLevel, TierProgramme
    from tiers.selectors import window_start

    unit = BusinessUnit.objects.get(code="bench-mall")
    key_obj, key = PartnerKey.objects.create_key(name=f"bench {datetime.now():%Y%m%d%H%M%S}", business_unit=unit,
                                                 may_spend_without_presence=True)  # spends by member id
    if not TierProgramme.objects.filter(is_active=True).exists():
        programme = TierProgramme.objects.create(code="bench", name="Bench tiers", basis=QualificationBasis.POINTS)
        for rank, (code, threshold, multiplier) in enumerate(
            [("silver", 0, "1"), ("gold", 5_000, "1.25"), ("platinum", 20_000, "1.5")], start=1
        ):
            TierLevel.objects.create(programme=programme, code=code, name=code.title(), rank=rank,
                                     threshold=Decimal(threshold), earn_multiplier=Decimal(multiplier))
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(PLACE_MEMBERS_SQL, {"programme": programme.pk, "now": now,
                                               "start": window_start(programme=programme, at=now)})
    return {"api_key": key, "scope": f"partner:{key_obj.prefix}", "business_unit": unit.code,
            "merchants": list(unit.merchants.order_by("code").values_list("code", flat=True))}


def expire(*, now: str, budget: float, batch_size: int | None) -> dict:
    """Run the expiry job's batches, as the beat task does, until done or out of time: one chain
    of batches per range of wallets (POINTS_EXPIRY_PARTITIONS), each chain in a thread of this
    process with its own database connection, as the task's chains run side by side on workers."""
    from concurrent.futures import ThreadPoolExecutor

    from django.conf import settings
    from django.db import connection

    from points.expiry import expiry_partitions, expiry_run_batch

    moment = datetime.fromisoformat(now)
    started = time.monotonic()

    def chain(after: int, through: int | None) -> tuple[int, int, bool]:
        cursor, written, batches = after, 0, 0
        try:
            while time.monotonic() - started < budget:
                count, cursor = expiry_run_batch(now=moment, after_wallet_id=cursor, through_wallet_id=through,
                                                 batch_size=batch_size)
                written += count
                batches += 1
                if cursor is None:
                    return written, batches, True
            return written, batches, False
        finally:
            connection.close()

    ranges = expiry_partitions(now=moment, count=settings.POINTS_EXPIRY_PARTITIONS)
    with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
        chains = list(pool.map(lambda bounds: chain(*bounds), ranges))
    return {"postings": sum(c[0] for c in chains), "batches": sum(c[1] for c in chains),
            "finished": all(c[2] for c in chains), "partitions": len(ranges),
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

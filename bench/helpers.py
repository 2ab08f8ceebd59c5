"""Django-side helpers of the benchmark, each run by bench/run.py in a subprocess of its own.

    python bench/helpers.py setup                      # partner key + tier programme, as JSON
    python bench/helpers.py mall --members-first N --members-last N --tokens FILE
                                                       # the mall step's catalogue, keys and tokens
    python bench/helpers.py payments                   # the payments step's BU terms and key
    python bench/helpers.py expire --now ISO --budget SECONDS
    python bench/helpers.py idle                       # Django loaded, nothing done (baseline RSS)

The expiry job runs in its own process so that the harness can read that process's peak RSS.
"""

import argparse
import json
import os
import secrets
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


def partner_key_create(*, name: str, business_unit, merchant=None) -> tuple:
    """The one place the benchmark creates a partner key: one that may spend a member's points
    named by id, without the member present (the loads name members by id, as a parking system
    acting on a stored authorisation does). Returns (key object, key)."""
    from members.models import PartnerKey

    return PartnerKey.objects.create_key(name=name, business_unit=business_unit, merchant=merchant,
                                         may_spend_without_presence=True)


def setup() -> dict:
    """A partner key of the benchmark's mall (no merchant: codes are named per request; allowed to
    spend by member id without the member present) and an
    active tier programme with every member placed on it, so that the earn path and the tier
    read do their full work, as in a programme that has been running."""
    from django.db import connection
    from django.utils import timezone

    from members.models import BusinessUnit
    from tiers.models import QualificationBasis, TierLevel, TierProgramme
    from tiers.selectors import window_start

    unit = BusinessUnit.objects.get(code="bench-mall")
    key_obj, key = partner_key_create(name=f"bench {datetime.now():%Y%m%d%H%M%S}", business_unit=unit)
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


def mall(*, items: int, stock: int, flash_stock: int, price: int, members: tuple[int, int], token_count: int,
         tokens_file: str) -> dict:
    """The mall step's catalogue at the benchmark's mall: `items` vouchers of its first merchant
    (each writes off at that merchant's till) with `stock` each, one flash-sale item with
    `flash_stock` and one for the raw ceiling's flash sale (`stock`, so that the raw writes never
    run out), all on sale now and priced `price` points; a bearer token for `token_count`
    members spread over `members` (written to `tokens_file`, one a line: the orders are the
    members' own); a key of the merchant (its till writes the coupons off)."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from mall.models import Category, ItemKind
    from mall.services import item_create
    from members.models import BusinessUnit, MemberToken
    from members.selectors import token_hash

    unit = BusinessUnit.objects.get(code="bench-mall")
    merchant = unit.merchants.order_by("code").first()
    category, _created = Category.objects.get_or_create(code="bench", defaults={"name_zh": "压测", "name_en": "Bench"})
    now = timezone.now()

    def item(name: str, stock_of: int):
        return item_create(business_unit=unit, by="bench", fields={
            "kind": ItemKind.SERVICE_VOUCHER, "category": category, "name_zh": name, "name_en": name,
            "price_points": price, "merchant": merchant, "stock": stock_of, "valid_days": 30,
            "sale_from": now - timedelta(minutes=1)})

    catalogue = [item(f"bench voucher {n}", stock) for n in range(items)]
    flash = item("bench flash sale", flash_stock)
    raw_flash = item("bench flash sale (raw ceiling)", stock)
    first, last = members
    step = max(1, (last - first + 1) // token_count)
    expires = now + timedelta(seconds=settings.MEMBER_TOKEN_TTL_SECONDS)
    tokens = [secrets.token_urlsafe(32) for _ in range(min(token_count, last - first + 1))]
    MemberToken.objects.bulk_create(
        MemberToken(member_id=first + n * step, key_hash=token_hash(token), expires_at=expires)
        for n, token in enumerate(tokens))
    Path(tokens_file).write_text("\n".join(tokens) + "\n")
    _till, till_key = partner_key_create(name=f"bench till {now:%Y%m%d%H%M%S}", business_unit=unit, merchant=merchant)
    initial = {str(i.pk): stock for i in (*catalogue, raw_flash)} | {str(flash.pk): flash_stock}
    return {"initial_stock": initial, "flash_item": flash.pk, "raw_flash_item": raw_flash.pk,
            "first_item": catalogue[0].pk, "last_item": catalogue[-1].pk, "price": price, "tokens": len(tokens),
            "merchant": merchant.pk, "business_unit": unit.pk, "till_key": till_key}


def payments() -> dict:
    """The payments step's terms at the benchmark's mall (points pay there, any number of
    points up to the whole bill, a hold of 15 minutes) and a key that names members by id."""
    from mall.models_payments import BusinessUnitPaymentSettings
    from members.models import BusinessUnit

    unit = BusinessUnit.objects.get(code="bench-mall")
    BusinessUnitPaymentSettings.objects.update_or_create(business_unit=unit, defaults={
        "accepts_points": True, "min_unit": 1, "max_share_percent": 100, "cap_points": None, "hold_seconds": 900})
    _key_obj, key = partner_key_create(name=f"bench payments {datetime.now():%Y%m%d%H%M%S}", business_unit=unit)
    return {"api_key": key, "business_unit": unit.pk}


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
    sub.add_parser("payments")
    catalogue = sub.add_parser("mall")
    catalogue.add_argument("--items", type=int, default=50)
    catalogue.add_argument("--stock", type=int, default=100_000)
    catalogue.add_argument("--flash-stock", type=int, default=10_000)
    catalogue.add_argument("--price", type=int, default=10)
    catalogue.add_argument("--members-first", type=int, required=True)
    catalogue.add_argument("--members-last", type=int, required=True)
    catalogue.add_argument("--token-count", type=int, default=2000)
    catalogue.add_argument("--tokens", required=True)
    job = sub.add_parser("expire")
    job.add_argument("--now", required=True)
    job.add_argument("--budget", type=float, required=True)
    job.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()

    import django

    django.setup()
    if args.command == "setup":
        result = setup()
    elif args.command == "mall":
        result = mall(items=args.items, stock=args.stock, flash_stock=args.flash_stock, price=args.price,
                      members=(args.members_first, args.members_last), token_count=args.token_count,
                      tokens_file=args.tokens)
    elif args.command == "payments":
        result = payments()
    elif args.command == "expire":
        result = expire(now=args.now, budget=args.budget, batch_size=args.batch_size)
    else:
        result = {}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

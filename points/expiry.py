"""The expiry job: expire the due lots of a batch of wallets, one posting per wallet.

Moved out of points.services for its size: it has its own set-based path on PostgreSQL, and
an ORM path for the embedded SQLite demo database.
"""

from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from points.models import Account, Entry, Lot, LotMovement, Posting, PostingKind, Wallet
from points.services import SYSTEM_SCOPE, request_fingerprint, wallets_lock


def wallets_expire_due_lots(*, wallet_ids: list[int], now: datetime) -> list[Posting]:
    """Expire every lot of these wallets whose validity ended before `now`: one posting per wallet.

    Set-based: one durable transaction locks the wallets in id order, re-reads what is due under
    the locks, writes the postings in one INSERT, then the lot movements, the entries (the wallet
    leg, and one expiry leg per issuing business unit), the emptied lots and the new balances in
    one statement, whatever the number of lots. The locks and the re-read make a rerun, or a run
    overlapping another, expire nothing twice; the key `expire:<wallet>:<now>` makes a retried
    run skip the wallets it already wrote. Returns the postings this call wrote.
    """
    stamp = now.isoformat()
    with transaction.atomic(durable=True):
        wallets_lock(wallet_ids=wallet_ids)
        due = dict(
            Lot.objects.filter(wallet_id__in=wallet_ids, remaining__gt=0, expires_at__lt=now)
            .values("wallet_id").annotate(total=Sum("remaining")).values_list("wallet_id", "total")
        )
        # The exclude repeats the unique index's predicate: without it the planner cannot prove
        # that a long IN list matches the partial index, and scans every posting.
        done = set(
            Posting.objects.filter(
                idempotency_scope=SYSTEM_SCOPE, idempotency_key__in=[f"expire:{wallet_id}:{stamp}" for wallet_id in due]
            ).exclude(idempotency_key="").values_list("wallet_id", flat=True)
        )
        postings = Posting.objects.bulk_create([
            Posting(
                wallet_id=wallet_id, kind=PostingKind.EXPIRE, points=-total, idempotency_scope=SYSTEM_SCOPE,
                idempotency_key=f"expire:{wallet_id}:{stamp}",
                request_hash=request_fingerprint("expire", wallet=wallet_id, now=stamp), occurred_at=now, reason="expiry",
            )
            for wallet_id, total in sorted(due.items()) if wallet_id not in done
        ])
        if postings and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    EXPIRE_LOTS_SQL,
                    {"wallets": [p.wallet_id for p in postings], "postings": [p.pk for p in postings],
                     "totals": [-p.points for p in postings], "now": now, "updated_at": timezone.now()},
                )
        elif postings:
            _expire_lots_portably(postings, now)
        return postings


def _expire_lots_portably(postings: list[Posting], now: datetime) -> None:
    """What EXPIRE_LOTS_SQL does, through the ORM, for the embedded SQLite demo database."""
    for posting in postings:
        lots = list(Lot.objects.filter(wallet_id=posting.wallet_id, remaining__gt=0, expires_at__lt=now))
        per_bu: dict[int, int] = {}
        for lot in lots:
            per_bu[lot.business_unit_id] = per_bu.get(lot.business_unit_id, 0) + lot.remaining
        LotMovement.objects.bulk_create([LotMovement(posting=posting, lot=lot, amount=-lot.remaining) for lot in lots])
        Lot.objects.filter(pk__in=[lot.pk for lot in lots]).update(remaining=0)
        Entry.objects.bulk_create(
            [Entry(posting=posting, account=Account.WALLET, wallet_id=posting.wallet_id, amount=posting.points)]
            + [Entry(posting=posting, account=Account.EXPIRY, business_unit_id=bu, amount=amount)
               for bu, amount in sorted(per_bu.items())]
        )
        Wallet.objects.filter(pk=posting.wallet_id).update(
            balance=F("balance") + posting.points, updated_at=timezone.now()
        )


# The lots, entries, movements and balances of an expiry batch in one statement, given each
# wallet's posting and due total (read under the wallet locks the caller holds, so the lots
# read here are the ones that total was summed from). The `= ANY(%(wallets)s)` conditions let
# the planner reach the batch's lots and wallets through their indexes: a join against the
# unnested batch alone is estimated badly and scans every due lot, or every wallet.
EXPIRE_LOTS_SQL = """
WITH batch AS (
    SELECT * FROM unnest(%(wallets)s::bigint[], %(postings)s::bigint[], %(totals)s::bigint[])
        AS b(wallet_id, posting_id, total)
), due AS (
    SELECT l.id, l.wallet_id, l.business_unit_id, l.remaining, b.posting_id
    FROM points_lot l JOIN batch b ON b.wallet_id = l.wallet_id
    WHERE l.wallet_id = ANY(%(wallets)s) AND l.remaining > 0 AND l.expires_at < %(now)s
), moved AS (
    INSERT INTO points_lotmovement (posting_id, lot_id, amount) SELECT posting_id, id, -remaining FROM due
), entries AS (
    INSERT INTO points_entry (posting_id, account, wallet_id, business_unit_id, amount)
    SELECT posting_id, 'wallet', wallet_id, NULL, -total FROM batch
    UNION ALL
    SELECT posting_id, 'expiry', NULL, business_unit_id, SUM(remaining) FROM due GROUP BY posting_id, business_unit_id
), balances AS (
    UPDATE points_wallet w SET balance = w.balance - b.total, updated_at = %(updated_at)s
    FROM batch b WHERE w.id = ANY(%(wallets)s) AND w.id = b.wallet_id
)
UPDATE points_lot l SET remaining = 0 FROM due WHERE l.id = due.id
"""


def expiry_run_batch(*, now: datetime, after_wallet_id: int = 0, batch_size: int | None = None) -> tuple[int, int | None]:
    """Expire due lots for the next batch of wallets after `after_wallet_id`, in one transaction.

    Returns (postings written, cursor for the next batch or None when no wallet is left). A
    crash loses the batch in hand as a whole (it rolls back); the next run redoes it.
    """
    batch_size = batch_size or settings.POINTS_EXPIRY_BATCH_SIZE
    wallet_ids = list(
        Lot.objects.filter(remaining__gt=0, expires_at__lt=now, wallet_id__gt=after_wallet_id)
        .order_by("wallet_id").values_list("wallet_id", flat=True).distinct()[:batch_size]
    )
    written = len(wallets_expire_due_lots(wallet_ids=wallet_ids, now=now)) if wallet_ids else 0
    cursor = wallet_ids[-1] if len(wallet_ids) == batch_size else None
    return written, cursor

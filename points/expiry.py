"""The expiry job: expire the due lots of a batch of wallets, one posting per wallet.

A batch is one durable transaction: lock the batch's wallets in id order, then, under the
locks, read what is due and write everything in one set-based statement (PostgreSQL) or
through the ORM (the embedded SQLite demo database). Every wallet with due lots gets one
posting keyed `expire:<wallet>:<now>`, with a wallet leg and one expiry leg per issuing
business unit; each due lot is emptied with a lot movement; the wallet's balance drops by
the same total. A crash loses the batch in hand as a whole; the next run redoes it.

Why it cannot expire twice: every write to a wallet's lots holds the wallet's row lock, so
the lots read after the lock are exactly the ones written; a rerun, or a run overlapping
another, finds them empty. A retried run (same `now`) also skips every wallet that already
has its posting under the key.
"""

from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Min, Sum
from django.utils import timezone

from points.models import Account, Entry, Lot, LotMovement, Posting, PostingKind, Wallet
from points.services import SYSTEM_SCOPE, request_fingerprint, wallets_lock

MAX_WALLET_ID = 2**63 - 1

# The next batch of wallets with due lots after the cursor, locked in id order (the order every
# multi-wallet operation locks in). The open-lots index on (wallet, expiry) serves the search.
LOCK_DUE_WALLETS_SQL = """
SELECT w.id FROM points_wallet w
WHERE w.id IN (
    SELECT l.wallet_id FROM points_lot l
    WHERE l.wallet_id > %(after)s AND l.wallet_id <= %(through)s AND l.remaining > 0 AND l.expires_at < %(now)s
    GROUP BY l.wallet_id ORDER BY l.wallet_id LIMIT %(limit)s
)
ORDER BY w.id
FOR UPDATE OF w
"""

# Everything an expiry batch writes, in one statement, for wallets the caller has locked (so
# that the lots read here are final). `done` holds the wallets that already have their posting
# under this run's key (such a posting occurred at `now`); it is found through the wallet's
# postings by time, never through the partial idempotency index, whose statistics may say the
# system scope is empty when a run starts: scanning the whole scope for every batch would make
# a run quadratic. The request fingerprint is request_fingerprint("expire", wallet=..., now=stamp)
# written out in SQL (a test compares the two). `= ANY(%(wallets)s)` lets the planner reach the
# batch's lots and wallets through their indexes; a join against the CTEs alone is estimated badly.
EXPIRE_SQL = """
WITH due AS (
    SELECT l.id, l.wallet_id, l.business_unit_id, l.remaining
    FROM points_lot l
    WHERE l.wallet_id = ANY(%(wallets)s::bigint[]) AND l.remaining > 0 AND l.expires_at < %(now)s
), done AS (
    SELECT p.wallet_id FROM points_posting p
    WHERE p.wallet_id = ANY(%(wallets)s::bigint[]) AND p.occurred_at = %(now)s
      AND p.idempotency_scope = %(scope)s AND p.idempotency_key = 'expire:' || p.wallet_id || ':' || %(stamp)s
), postings AS (
    INSERT INTO points_posting (kind, wallet_id, points, receipt_no, event_type, reason, explanation,
                                idempotency_scope, idempotency_key, request_hash, occurred_at, created_at)
    SELECT %(kind)s, wallet_id, -SUM(remaining), '', '', 'expiry', '[]', %(scope)s,
           'expire:' || wallet_id || ':' || %(stamp)s,
           encode(sha256(convert_to(
               '{"now": "' || %(stamp)s || '", "operation": "expire", "wallet": ' || wallet_id || '}', 'UTF8'
           )), 'hex'),
           %(now)s, %(created_at)s
    FROM due WHERE wallet_id NOT IN (SELECT wallet_id FROM done)
    GROUP BY wallet_id ORDER BY wallet_id
    RETURNING id, wallet_id, points
), moved AS (
    INSERT INTO points_lotmovement (posting_id, lot_id, amount)
    SELECT p.id, d.id, -d.remaining FROM due d JOIN postings p ON p.wallet_id = d.wallet_id
    RETURNING lot_id
), entries AS (
    INSERT INTO points_entry (posting_id, account, wallet_id, business_unit_id, amount)
    SELECT id, %(wallet_account)s, wallet_id, NULL, points FROM postings
    UNION ALL
    SELECT p.id, %(expiry_account)s, NULL, d.business_unit_id, SUM(d.remaining)
    FROM due d JOIN postings p ON p.wallet_id = d.wallet_id
    GROUP BY p.id, d.business_unit_id
), balances AS (
    UPDATE points_wallet w SET balance = w.balance + p.points, updated_at = %(created_at)s
    FROM postings p WHERE w.id = ANY(%(wallets)s::bigint[]) AND w.id = p.wallet_id
), emptied AS (
    UPDATE points_lot l SET remaining = 0 FROM moved m WHERE l.id = m.lot_id
)
SELECT count(*) FROM postings
"""

# The entries-balance trigger runs pgtrigger's ignore check for every entry at COMMIT. The check
# reads the `pgtrigger.ignore` setting inside an exception block; in a session where it was never
# set, the read raises, and each caught error rolls back a subtransaction, for which PostgreSQL
# walks every deferred trigger event still pending: quadratic in the size of the batch. Setting it
# for the batch's transaction to the empty list (ignore no trigger) keeps every check and that cost
# away.
IGNORE_NO_TRIGGER_SQL = "SELECT set_config('pgtrigger.ignore', '{}', true)"


def expiry_run_batch(
    *, now: datetime, after_wallet_id: int = 0, through_wallet_id: int | None = None, batch_size: int | None = None
) -> tuple[int, int | None]:
    """Expire the due lots of the next `batch_size` wallets after `after_wallet_id` (and up to
    `through_wallet_id`, when given) that have any, in one transaction (`POINTS_EXPIRY_BATCH_SIZE`
    by default).

    Returns (postings written, cursor for the next batch or None when no wallet is left).
    """
    batch_size = batch_size or settings.POINTS_EXPIRY_BATCH_SIZE
    through = MAX_WALLET_ID if through_wallet_id is None else through_wallet_id
    with transaction.atomic(durable=True):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    LOCK_DUE_WALLETS_SQL, {"after": after_wallet_id, "through": through, "now": now, "limit": batch_size}
                )
                wallet_ids = [row[0] for row in cursor.fetchall()]
        else:
            wallet_ids = list(
                Lot.objects.filter(
                    remaining__gt=0, expires_at__lt=now, wallet_id__gt=after_wallet_id, wallet_id__lte=through
                ).order_by("wallet_id").values_list("wallet_id", flat=True).distinct()[:batch_size]
            )
            wallets_lock(wallet_ids=wallet_ids)
        written = _expire_locked(wallet_ids=wallet_ids, now=now) if wallet_ids else 0
    cursor = wallet_ids[-1] if len(wallet_ids) == batch_size else None
    return written, cursor


def expiry_partitions(*, now: datetime, count: int) -> list[tuple[int, int | None]]:
    """Split the wallets into at most `count` ranges of ids, (after, through], that one run can
    expire side by side, each range a chain of batches of its own (the ranges are disjoint, so
    the chains never wait on each other's locks). The span between the first and the last wallet
    with lots due before `now` is cut into equal parts; the first range starts at 0 and the last
    is open-ended, so together they hold every wallet. SQLite takes one writer at a time: one range.
    """
    if count < 2 or connection.vendor != "postgresql":
        return [(0, None)]
    span = Lot.objects.filter(remaining__gt=0, expires_at__lt=now).aggregate(first=Min("wallet_id"), last=Max("wallet_id"))
    if span["first"] is None:
        return [(0, None)]
    width = -(-(span["last"] - span["first"] + 1) // count)
    cuts = list(range(span["first"] - 1 + width, span["last"], width))
    return list(zip([0, *cuts], [*cuts, None]))


def wallets_expire_due_lots(*, wallet_ids: list[int], now: datetime) -> int:
    """Expire every lot of these wallets whose validity ended before `now`, in one transaction:
    one posting per wallet with due lots. Returns the number of postings written."""
    with transaction.atomic(durable=True):
        wallets_lock(wallet_ids=wallet_ids)
        return _expire_locked(wallet_ids=wallet_ids, now=now)


def _expire_locked(*, wallet_ids: list[int], now: datetime) -> int:
    """The batch's writes; the caller holds the wallets' locks."""
    if connection.vendor != "postgresql":
        return _expire_portably(wallet_ids=wallet_ids, now=now)
    with connection.cursor() as cursor:
        cursor.execute(IGNORE_NO_TRIGGER_SQL)
        cursor.execute(EXPIRE_SQL, {
            "wallets": wallet_ids, "now": now, "stamp": now.isoformat(), "created_at": timezone.now(),
            "scope": SYSTEM_SCOPE, "kind": PostingKind.EXPIRE.value,
            "wallet_account": Account.WALLET.value, "expiry_account": Account.EXPIRY.value,
        })
        return cursor.fetchone()[0]


def _expire_portably(*, wallet_ids: list[int], now: datetime) -> int:
    """What EXPIRE_SQL does, through the ORM, for the embedded SQLite demo database."""
    stamp = now.isoformat()
    due = dict(
        Lot.objects.filter(wallet_id__in=wallet_ids, remaining__gt=0, expires_at__lt=now)
        .values("wallet_id").annotate(total=Sum("remaining")).values_list("wallet_id", "total")
    )
    done = set(
        Posting.objects.filter(
            idempotency_scope=SYSTEM_SCOPE, idempotency_key__in=[f"expire:{wallet_id}:{stamp}" for wallet_id in due]
        ).values_list("wallet_id", flat=True)
    )
    postings = Posting.objects.bulk_create([
        Posting(
            wallet_id=wallet_id, kind=PostingKind.EXPIRE, points=-total, idempotency_scope=SYSTEM_SCOPE,
            idempotency_key=f"expire:{wallet_id}:{stamp}",
            request_hash=request_fingerprint("expire", wallet=wallet_id, now=stamp), occurred_at=now, reason="expiry",
        )
        for wallet_id, total in sorted(due.items()) if wallet_id not in done
    ])
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
    return len(postings)

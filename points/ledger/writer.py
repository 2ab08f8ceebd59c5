"""The one writer of postings, entries, lots, lot movements and wallet balances.

`write_posting` writes one posting built by points.ledger.builder (on PostgreSQL in one
statement of data-modifying CTEs, elsewhere through the ORM), `write_postings` many at once (the
bulk earn), `write_expiry` the expiry postings of a batch of wallets (one set-based statement on
PostgreSQL); `write_lot_expiry_changes`, `write_lots_available`, `write_wallet_frozen` and `write_hold_rows`
the other changes of lots and wallets. Each then calls the after-post hooks registered in points.policies, in the same
transaction, with every posting written and its wallet, and counts the postings by kind for
/metrics once the transaction commits (config.metrics, no query). The caller holds the wallets' locks.
"""

from datetime import datetime

from django.db import connection
from django.db.models import F, Sum
from django.utils import timezone

from config.metrics import postings_committed
from points.ledger.builder import PostingRows
from points.ledger.idempotency import SYSTEM_SCOPE, request_fingerprint
from points.ledger.sql import bulk_update_rows, insert_many_with_children, insert_with_children
from points.models import Account, Entry, Lot, LotExpiryChange, LotMovement, Posting, PostingKind, Wallet, WalletStatusChange
from points.policies import after_post_hooks, run_after_post_hooks

WALLET_FIELDS = ["balance", "debt", "held", "updated_at"]
LOT_FIELDS = ["remaining", "held"]


def write_posting(rows: PostingRows) -> Posting:
    """Write a new posting with its lots, movements and entries, the lots it changed and its
    wallet's balance; then run the after-post hooks."""
    posting, wallet = rows.posting, rows.wallet
    if connection.vendor == "postgresql":
        insert_with_children(
            posting, [(Lot, "posting", rows.lots), (LotMovement, "posting", rows.movements), (Entry, "posting", rows.entries)],
            updates=[(Lot, rows.changed_lots, LOT_FIELDS), (Wallet, [wallet] if rows.entries else [], WALLET_FIELDS)],
        )
    else:
        posting.save()
        Lot.objects.bulk_create(rows.lots)
        LotMovement.objects.bulk_create(rows.movements)
        Lot.objects.bulk_update(rows.changed_lots, LOT_FIELDS)
        Entry.objects.bulk_create(rows.entries)
        if rows.entries:
            wallet.save(update_fields=WALLET_FIELDS)
    for hook in after_post_hooks():
        hook(posting=posting, wallet=wallet)
    postings_committed([posting.kind])
    return posting


def write_postings(rows: list[PostingRows]) -> None:
    """Write many new postings that credit (no lot movements) and their wallets' balances; then
    run the after-post hooks for each. On PostgreSQL two statements whatever the number of
    postings: one of data-modifying CTEs, then the settings of the checks at COMMIT
    (COMMIT_CHECKS_SQL); elsewhere through the ORM."""
    touched = {row.wallet.pk: row.wallet for row in rows if row.entries}
    now = timezone.now()
    for wallet in touched.values():
        wallet.updated_at = now
    postings = [row.posting for row in rows]
    lots = [lot for row in rows for lot in row.lots]
    entries = [entry for row in rows for entry in row.entries]
    if connection.vendor == "postgresql":
        if postings:
            insert_many_with_children(postings, [(Lot, "posting", lots), (Entry, "posting", entries)],
                                      updates=[(Wallet, list(touched.values()), WALLET_FIELDS)])
            with connection.cursor() as cursor:
                cursor.execute(COMMIT_CHECKS_SQL)
    else:
        Posting.objects.bulk_create(postings)
        Lot.objects.bulk_create(lots)
        Entry.objects.bulk_create(entries)
        bulk_update_rows(Wallet, list(touched.values()), WALLET_FIELDS)
    run_after_post_hooks([(row.posting, row.wallet) for row in rows])
    postings_committed(row.posting.kind for row in rows)


def write_lot_expiry_changes(changes: list[LotExpiryChange]) -> None:
    """Write lots' later expiries (activity-extended), with the availability of lots held for
    review, and the record of each move."""
    Lot.objects.bulk_update([change.lot for change in changes], ["expires_at", "available_at"])
    LotExpiryChange.objects.bulk_create(changes)


def write_lots_available(*, posting_id: int, at: datetime) -> list[tuple[int, datetime, datetime]]:
    """Move when the lots credited by `posting_id` become available to `at`, capped at each lot's
    expiry (a lot never becomes available after it expires): later holds them (pending a review),
    earlier releases them. The caller holds the wallet's lock. Returns (lot id, available before,
    available now) of every lot that moved."""
    moved, changes = [], []
    for lot in Lot.objects.filter(posting_id=posting_id).order_by("id"):
        available_at = min(at, lot.expires_at)
        if available_at != lot.available_at:
            changes.append((lot.pk, lot.available_at, available_at))
            lot.available_at = available_at
            moved.append(lot)
    Lot.objects.bulk_update(moved, ["available_at"])
    return changes


def write_wallet_frozen(wallet: Wallet, *, frozen: bool, reason: str, actor) -> None:
    """Freeze or unfreeze a wallet the caller has locked, with the record of who, when and why."""
    wallet.is_frozen = frozen
    wallet.frozen_reason = reason if frozen else ""
    wallet.save(update_fields=["is_frozen", "frozen_reason", "updated_at"])
    WalletStatusChange.objects.create(wallet=wallet, frozen=frozen, reason=reason, actor=actor)


def write_hold_rows(*, lots: list[Lot], wallets: list[Wallet]) -> None:
    """Write the held points of lots and wallets a hold reserved or released (the hold's own rows
    are written by points.ledger.holds)."""
    bulk_update_rows(Lot, lots, LOT_FIELDS)
    bulk_update_rows(Wallet, wallets, WALLET_FIELDS)


# Everything an expiry batch writes, in one statement, for wallets the caller has locked (so
# that the lots read here are final). A lot's due points are its free ones (remaining - held):
# points a hold reserved are expired by the first run after the hold ends. `done` holds the
# wallets that already have their posting under this run's key (such a posting occurred at
# `now`); it is found through the wallet's postings by time, never through the partial
# idempotency index, whose statistics may say the system scope is empty when a run starts:
# scanning the whole scope for every batch would make a run quadratic. The request fingerprint is
# request_fingerprint("expire", wallet=..., now=stamp) written out in SQL (a test compares the
# two). `= ANY(%(wallets)s)` lets the planner reach the batch's lots and wallets through their
# indexes; a join against the CTEs alone is estimated badly.
EXPIRE_SQL = """
WITH due AS (
    SELECT l.id, l.wallet_id, l.business_unit_id, l.remaining - l.held AS points
    FROM points_lot l
    WHERE l.wallet_id = ANY(%(wallets)s::bigint[]) AND l.remaining > l.held AND l.expires_at < %(now)s
), done AS (
    SELECT p.wallet_id FROM points_posting p
    WHERE p.wallet_id = ANY(%(wallets)s::bigint[]) AND p.occurred_at = %(now)s
      AND p.idempotency_scope = %(scope)s AND p.idempotency_key = 'expire:' || p.wallet_id || ':' || %(stamp)s
), postings AS (
    INSERT INTO points_posting (kind, wallet_id, points, receipt_no, event_type, reason, explanation,
                                idempotency_scope, idempotency_key, request_hash, occurred_at, created_at)
    SELECT %(kind)s, wallet_id, -SUM(points), '', '', 'expiry', '[]', %(scope)s,
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
    SELECT p.id, d.id, -d.points FROM due d JOIN postings p ON p.wallet_id = d.wallet_id
    RETURNING lot_id, amount
), entries AS (
    INSERT INTO points_entry (posting_id, account, wallet_id, business_unit_id, amount)
    SELECT id, %(wallet_account)s, wallet_id, NULL, points FROM postings
    UNION ALL
    SELECT p.id, %(expiry_account)s, NULL, d.business_unit_id, SUM(d.points)
    FROM due d JOIN postings p ON p.wallet_id = d.wallet_id
    GROUP BY p.id, d.business_unit_id
), balances AS (
    UPDATE points_wallet w SET balance = w.balance + p.points, updated_at = %(created_at)s
    FROM postings p WHERE w.id = ANY(%(wallets)s::bigint[]) AND w.id = p.wallet_id
), emptied AS (
    UPDATE points_lot l SET remaining = l.remaining + m.amount FROM moved m WHERE l.id = m.lot_id
)
SELECT id, wallet_id FROM postings
"""

# Set by a bulk write for the rest of its transaction, after its statement, for the checks that
# run at COMMIT, thousands of them (every check is kept):
# * The entries-balance trigger runs pgtrigger's ignore check for every entry. The check reads the
#   `pgtrigger.ignore` setting inside an exception block; in a session where it was never set,
#   the read raises, and each caught error rolls back a subtransaction, for which PostgreSQL walks
#   every deferred trigger event still pending: quadratic in the size of the batch. The empty list
#   (ignore no trigger) keeps that cost away.
# * Generic plans: on a ledger partitioned by month (points.partitioning) PostgreSQL plans every
#   foreign-key check into postings, and the balance check, afresh (its plan cache prefers a plan
#   pruned to one partition to a generic one costed for all). Measured on 1,000 earns, the
#   database's CPU for the statement and its checks went from 188 to 120 ms (107 ms unpartitioned,
#   where generic and custom plans are the same). The batch's own statement is planned before.
COMMIT_CHECKS_SQL = (
    "SELECT set_config('pgtrigger.ignore', '{}', true), set_config('plan_cache_mode', 'force_generic_plan', true)"
)


def write_expiry(*, wallet_ids: list[int], now: datetime) -> int:
    """Expire the free points of these wallets' lots whose validity ended before `now`: one
    posting per wallet with any, keyed `expire:<wallet>:<now>`, with a wallet leg and one expiry
    leg per issuing business unit. The caller holds the wallets' locks. Returns the postings written."""
    if connection.vendor != "postgresql":
        written = _expire_portably(wallet_ids=wallet_ids, now=now)
    else:
        with connection.cursor() as cursor:
            cursor.execute(EXPIRE_SQL, {
                "wallets": wallet_ids, "now": now, "stamp": now.isoformat(), "created_at": timezone.now(),
                "scope": SYSTEM_SCOPE, "kind": PostingKind.EXPIRE.value,
                "wallet_account": Account.WALLET.value, "expiry_account": Account.EXPIRY.value,
            })
            written = [posting_id for posting_id, _wallet_id in cursor.fetchall()]
            cursor.execute(COMMIT_CHECKS_SQL)
    if written and after_post_hooks():
        postings = Posting.objects.filter(pk__in=written).select_related("wallet").order_by("id")
        run_after_post_hooks([(posting, posting.wallet) for posting in postings])
    postings_committed([PostingKind.EXPIRE.value] * len(written))
    return len(written)


def _expire_portably(*, wallet_ids: list[int], now: datetime) -> list[int]:
    """What EXPIRE_SQL does, through the ORM, for the embedded SQLite demo database."""
    stamp = now.isoformat()
    due_lots = Lot.objects.filter(wallet_id__in=wallet_ids, remaining__gt=F("held"), expires_at__lt=now)
    due = dict(
        due_lots.values("wallet_id").annotate(total=Sum(F("remaining") - F("held"))).values_list("wallet_id", "total")
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
        lots = list(due_lots.filter(wallet_id=posting.wallet_id))
        per_bu: dict[int, int] = {}
        for lot in lots:
            per_bu[lot.business_unit_id] = per_bu.get(lot.business_unit_id, 0) + lot.remaining - lot.held
        LotMovement.objects.bulk_create(
            [LotMovement(posting=posting, lot=lot, amount=lot.held - lot.remaining) for lot in lots]
        )
        Lot.objects.filter(pk__in=[lot.pk for lot in lots]).update(remaining=F("held"))
        Entry.objects.bulk_create(
            [Entry(posting=posting, account=Account.WALLET, wallet_id=posting.wallet_id, amount=posting.points)]
            + [Entry(posting=posting, account=Account.EXPIRY, business_unit_id=bu, amount=amount)
               for bu, amount in sorted(per_bu.items())]
        )
        Wallet.objects.filter(pk=posting.wallet_id).update(
            balance=F("balance") + posting.points, updated_at=timezone.now()
        )
    return [posting.pk for posting in postings]

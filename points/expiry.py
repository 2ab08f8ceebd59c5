"""The expiry job: expire the due lots of a batch of wallets, one posting per wallet.

A batch is one durable transaction: lock the batch's wallets in id order, then, under the
locks, read what is due and write everything (points.ledger.write_expiry: one set-based
statement on PostgreSQL, the ORM on the embedded SQLite demo database). Every wallet with due lots gets one
posting keyed `expire:<wallet>:<now>`, with a wallet leg and one expiry leg per issuing
business unit; each due lot's free points are taken with a lot movement (points a hold
reserved wait for the first run after the hold ends); the wallet's balance drops by the same
total. A crash loses the batch in hand as a whole; the next run redoes it.

Why it cannot expire twice: every write to a wallet's lots holds the wallet's row lock, so
the lots read after the lock are exactly the ones written; a rerun, or a run overlapping
another, finds them empty. A retried run (same `now`) also skips every wallet that already
has its posting under the key.
"""

from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min

from points.ledger import wallets_lock_with_due_lots, write_expiry
from points.models import Lot

MAX_WALLET_ID = 2**63 - 1


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
        wallet_ids = wallets_lock_with_due_lots(now=now, after=after_wallet_id, through=through, limit=batch_size)
        written = write_expiry(wallet_ids=wallet_ids, now=now) if wallet_ids else 0
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

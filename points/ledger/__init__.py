"""The ledger core: the one place that locks wallets, checks idempotency, builds postings and
writes postings, entries, lots, lot movements, holds and wallet balances. Read this first.

Every operation, in points or in the apps above it, goes through here:

1. **Lock** the wallet(s) (`locks`; `wallet_open` and, for a bulk import, `wallets_open` create
   them): `wallet_lock(member_id=)` for one, `organization_wallet_lock(organization_id=)` for an
   organization's (opened first by `organization_wallet_open`), `wallets_lock(...)` for several,
   always in wallet id order. A wallet belongs to a member or an organization; everything below
   holds for both. Everything below runs under that lock, in one durable
   transaction the operation opens.
2. **Replay** an earlier request under the same idempotency key (`idempotency`):
   `posting_replay` returns its posting or raises IdempotencyConflict; `run_idempotent` wraps a
   write so that the loser of a race on the key answers with the winner's posting.
3. **Gate**: the spend gates registered in points.policies run before a spend, a hold or a
   capture (`run_spend_gates`); the earn gates before an earn.
4. **Build** the rows (`builder`): `posting_row`, `credit_rows` (the debt repaid first, once, in
   `debt_split`), `debit_rows` (free points only: a hold's reserved points are its own),
   `refund_rows` (an expired part reclaimed from the issuer's breakage, not charged to the member),
   `reversed_points` (how much of a posting its reversals took back), `give_back_rows` (to exactly
   the lots a debit consumed), `transfer_rows` (the two postings of a transfer between wallets,
   lots carried with their expiry and provenance).
5. **Write** them (`writer`): `write_posting` (one posting: one statement on PostgreSQL),
   `write_postings` (the bulk earn), `write_expiry` (an expiry batch); each runs the after-post
   hooks of points.policies for every posting it wrote. `write_hold_rows`,
   `write_lot_expiry_changes` and `write_wallet_frozen` write the other changes of lots and wallets.

`lots_extend_for_activity` (`activity`) moves lots' expiry later on every qualifying activity
under an activity-extends policy. Holds (`holds`) are a ledger primitive built the same way: `hold_place`, `hold_capture`,
`hold_void` and the sweep `holds_release_expired`; their rules are in that module's docstring.
For an operation above points whose own rows move with the hold in one transaction (a payment),
`hold_lock`, `hold_place_locked`, `hold_capture_locked` and `hold_void_locked` do the same
inside the caller's transaction, under the wallet lock it holds.

Nothing else writes these tables: services elsewhere (points.services, points.earning,
points.batch, points.expiry, and the apps above points) build with the builder and hand the rows
to the writer, or call the operations here. The hand-written SQL they need is in `sql` and `rows`.
"""

from points.ledger.activity import lots_extend_for_activity
from points.ledger.builder import (
    LotPart,
    PostingRows,
    credit_rows,
    debit_rows,
    debt_split,
    free_points,
    give_back_rows,
    open_lots,
    posting_row,
    refund_rows,
    reversed_points,
    transfer_rows,
)
from points.ledger.holds import (
    HoldResult,
    hold_capture,
    hold_capture_locked,
    hold_lock,
    hold_place,
    hold_place_locked,
    hold_void,
    hold_void_locked,
    holds_release_expired,
)
from points.ledger.idempotency import (
    OPERATOR_SCOPE,
    SYSTEM_SCOPE,
    Idempotency,
    PostingResult,
    posting_replay,
    request_fingerprint,
    run_idempotent,
)
from points.ledger.locks import (
    organization_wallet_lock,
    organization_wallet_open,
    wallet_lock,
    wallet_open,
    wallets_lock,
    wallets_lock_with_due_lots,
    wallets_open,
)
from points.ledger.writer import (
    write_expiry,
    write_hold_rows,
    write_lot_expiry_changes,
    write_posting,
    write_postings,
    write_wallet_frozen,
)

__all__ = [
    # locks
    "wallet_open", "wallets_open", "wallet_lock", "wallets_lock", "wallets_lock_with_due_lots",
    "organization_wallet_open", "organization_wallet_lock",
    # idempotency
    "Idempotency", "PostingResult", "OPERATOR_SCOPE", "SYSTEM_SCOPE", "request_fingerprint", "posting_replay",
    "run_idempotent",
    # builder
    "LotPart", "PostingRows", "posting_row", "open_lots", "free_points", "debt_split", "credit_rows", "debit_rows",
    "refund_rows", "reversed_points", "give_back_rows", "transfer_rows",
    # writer
    "write_posting", "write_postings", "write_expiry", "write_hold_rows", "write_lot_expiry_changes",
    "write_wallet_frozen",
    # activity-extended expiry
    "lots_extend_for_activity",
    # holds
    "HoldResult", "hold_place", "hold_capture", "hold_void", "holds_release_expired", "hold_lock", "hold_place_locked",
    "hold_capture_locked", "hold_void_locked",
]

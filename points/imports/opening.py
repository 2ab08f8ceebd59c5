"""Opening balances: the points a member brings from the old system, posted through the ledger.

One posting per file row, built by points.ledger's builder and written by its batch writer
(`write_postings`) for a whole chunk at once: kind `adjust` (a credit adjustment: statements
show it as adjusted, settlement as the issuer's credit adjustment, tiers do not count it as
earned), reason "opening balance", the issuing business unit's adjustment account on the other
side, and one lot of the issuing business unit, available now and valid until the end of the
file's expiry day in the group's time zone. A wallet in debt repays it first, as every credit.

Each posting carries the idempotency key of its row (`IMPORT_SCOPE`, `opening:<row id>`), so a
file imported twice, or two imports of one file at once, post each row once: a row whose key
was posted with the same figures replays, with other figures it is refused (a conflict).

The manual-adjustment gates (maker-checker) do not run: the import is an operation of its own,
behind its own permission (points.import_members), and the operator is recorded on every posting.
"""

from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from members.models import BusinessUnit
from points.ledger import Idempotency, LotPart, PostingRows, credit_rows, posting_row, request_fingerprint, wallets_lock
from points.ledger import write_postings
from points.models import Account, Posting, PostingKind
from points.rules.engine import LotTerms
from points.timeutils import end_of_local_day

IMPORT_SCOPE = "import"
OPENING_REASON = "opening balance"


@dataclass
class OpeningBalance:
    """One row's opening balance; `member_id` is known once the member row is written."""

    row: int
    key: str
    points: int
    expires_on: date
    business_unit: BusinessUnit
    member: object

    def fingerprint(self) -> str:
        return request_fingerprint("opening_balance", phone=self.member.phone, points=self.points,
                                   bu=self.business_unit.pk, expires_on=self.expires_on.isoformat())


@dataclass(frozen=True)
class OpeningOutcome:
    posted: list[OpeningBalance]
    replayed: list[OpeningBalance]
    conflicts: list[OpeningBalance]


def opening_balances_post(*, openings: list[OpeningBalance], actor=None, opened_wallets: dict | None = None) -> OpeningOutcome:
    """Post the opening balances of one chunk, inside the caller's transaction: the wallets
    locked in id order, the keys already posted looked up in one query, the rest built and
    written by the batch writer.

    `opened_wallets` (by member id) are the wallets this transaction has just opened: no other
    transaction sees those rows before it commits, so they need no lock and no second read."""
    if not openings:
        return OpeningOutcome(posted=[], replayed=[], conflicts=[])
    wallets = dict(opened_wallets or {})
    known = sorted({o.member.pk for o in openings} - wallets.keys())
    if known:
        wallets.update((wallet.member_id, wallet) for wallet in wallets_lock(member_ids=known))
    # The key is never blank here; saying so lets PostgreSQL use the partial unique index on
    # (scope, key): from an IN list of more than 100 keys it cannot prove the index's condition,
    # and would scan every posting for every chunk.
    written = dict(
        Posting.objects.filter(idempotency_scope=IMPORT_SCOPE, idempotency_key__in=[o.key for o in openings])
        .exclude(idempotency_key="").values_list("idempotency_key", "request_hash")
    )
    now = timezone.now()
    posted, replayed, conflicts, rows = [], [], [], []
    for opening in openings:
        fingerprint = opening.fingerprint()
        if opening.key in written:
            (replayed if written[opening.key] == fingerprint else conflicts).append(opening)
            continue
        wallet = wallets[opening.member.pk]
        posting = posting_row(
            wallet=wallet, kind=PostingKind.ADJUST, points=opening.points,
            idempotency=Idempotency(scope=IMPORT_SCOPE, key=opening.key), fingerprint=fingerprint, occurred_at=now,
            business_unit=opening.business_unit, reason=OPENING_REASON, actor=actor,
        )
        terms = LotTerms(available_at=now, expires_at=end_of_local_day(opening.expires_on), policy=None)
        lots, entries = credit_rows(
            posting=posting, wallet=wallet, parts=[LotPart(points=opening.points, rule_code="", terms=terms)],
            business_unit=opening.business_unit, merchant=None, source_account=Account.ADJUSTMENT, earned_at=now,
        )
        rows.append(PostingRows(posting=posting, wallet=wallet, lots=lots, movements=[], entries=entries, changed_lots=[]))
        written[opening.key] = fingerprint
        posted.append(opening)
    write_postings(rows)
    return OpeningOutcome(posted=posted, replayed=replayed, conflicts=conflicts)

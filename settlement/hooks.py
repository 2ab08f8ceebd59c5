"""The after-post hook that records clearing lines (registered in settlement.apps).

It runs inside every posting's transaction, on the hot paths, so it is one statement: an
INSERT ... SELECT that sums the posting's lot movements (and, for a cancel, the lots it re-granted
because their own had expired) per issuing BU, values them at the issuer's clearing value in
force on the posting's local booking day and writes one line per issuer. An earn (and a positive
adjustment) creates lots and moves none: it costs no statement at all.

Valuation: `amount_cny = ROUND(points * rate, 2)`, half away from zero (ROUND_HALF_UP in Python's
terms; PostgreSQL's ROUND of a numeric does the same), so a line and its exact negation round to
opposite amounts. A cancel or a refund is valued at the rate its original posting's line froze for
the same issuer (a cancel reverses exactly what its spend cleared), falling back to the rate in
force when the original has no line (a refund of an earn).

Kinds: a spend (or a hold's capture) is a redemption, an expiry breakage, a cancel of a spend a
reversal; a refund of an earn (and a repayment of debt from released points) is a reclaim, an
issuance corrected rather than a redemption: no BU owes another for it; a debit adjustment is an
adjustment.

Refund of expired points: what a refund reclaims from the issuer's expiry account (the earn's
lots had expired: points.ledger.refund_rows) is part of its reclaim line, and a
*breakage_reversal* line (points < 0: breakage given back) at the same rate undoes that breakage.

Transfers: the two postings of a transfer carry an issuer's points between wallets through its
`transfer` account, so they move no liability and write no line; except what the receiver's
posting repays of the receiver's debt: those points leave the lots (they settle a refund already
booked), so the receiver's posting writes a *reclaim* for each issuer whose pieces repaid it (its
lots plus its transfer entries: negative by what repaid the debt). The sender's posting writes
nothing and costs no statement.

Same BU: a line whose issuer is the redeemer is recorded too (it moves the issuer's liability,
which verify_settlement ties to the lots), but owes nothing: the inter-BU matrix leaves it out.
"""

from django.db import connection
from django.db.models import Sum

from points.models import Account, Entry, Lot, LotMovement, PostingKind
from points.timeutils import local_date
from settlement.models import ClearingKind, ClearingLine
from settlement.selectors import clearing_rate, cny

KINDS = {
    PostingKind.SPEND: ClearingKind.REDEMPTION,
    PostingKind.EXPIRE: ClearingKind.BREAKAGE,
    PostingKind.CANCEL: ClearingKind.REVERSAL,
    PostingKind.REFUND: ClearingKind.RECLAIM,
    PostingKind.REPAY: ClearingKind.RECLAIM,
    PostingKind.ADJUST: ClearingKind.ADJUSTMENT,
    PostingKind.TRANSFER: ClearingKind.RECLAIM,
}

INSERT_SQL = """
INSERT INTO settlement_clearingline
    (posting_id, kind, issuer_id, redeemer_id, merchant_id, points, rate_cny, amount_cny, created_at)
SELECT %(posting)s, %(kind)s, x.bu, %(redeemer)s, %(merchant)s, x.points, x.rate, ROUND(x.points * x.rate, 2),
       %(created_at)s
FROM (
    SELECT moved.bu, -SUM(moved.amount) AS points,
           COALESCE(MAX(orig.rate_cny),
                    (SELECT r.value_cny FROM settlement_clearingrate r
                     WHERE r.business_unit_id = moved.bu AND r.effective_from <= %(day)s
                     ORDER BY r.effective_from DESC LIMIT 1),
                    MAX(b.point_value_cny)) AS rate
    FROM (
        SELECT l.business_unit_id AS bu, m.amount FROM points_lotmovement m JOIN points_lot l ON l.id = m.lot_id
        WHERE m.posting_id = %(posting)s
        UNION ALL
        SELECT l.business_unit_id, l.amount FROM points_lot l WHERE l.posting_id = %(posting)s AND %(own_lots)s{also}
    ) moved
    JOIN members_businessunit b ON b.id = moved.bu
    LEFT JOIN settlement_clearingline orig ON orig.posting_id = %(reverses)s AND orig.issuer_id = moved.bu
    GROUP BY moved.bu
    HAVING SUM(moved.amount) <> 0
) x
"""


# A refund also takes back what the expiry account gives up (breakage reclaimed): part of the
# reclaim, and a breakage reversal of its own at the reclaim's rate.
RECLAIMED_FROM_BREAKAGE = """
        UNION ALL
        SELECT e.business_unit_id, e.amount FROM points_entry e WHERE e.posting_id = %(posting)s AND e.account = 'expiry'"""
# A transfer's posting balances through its issuers' transfer accounts: what is left moved the
# issuer's liability (the received points that repaid debt).
TRANSFERRED = """
        UNION ALL
        SELECT e.business_unit_id, e.amount FROM points_entry e WHERE e.posting_id = %(posting)s AND e.account = 'transfer'"""
INSERT_SQLS = {
    PostingKind.REFUND: INSERT_SQL.format(also=RECLAIMED_FROM_BREAKAGE),
    PostingKind.TRANSFER: INSERT_SQL.format(also=TRANSFERRED),
}
INSERT_SQL = INSERT_SQL.format(also="")
# The accounts whose entries of the posting count as lots moved, by posting kind.
ALSO_MOVED = {PostingKind.REFUND: Account.EXPIRY, PostingKind.TRANSFER: Account.TRANSFER}
BREAKAGE_REVERSAL_SQL = """
INSERT INTO settlement_clearingline
    (posting_id, kind, issuer_id, redeemer_id, merchant_id, points, rate_cny, amount_cny, created_at)
SELECT %(posting)s, %(reversal)s, e.business_unit_id, NULL, %(merchant)s, e.amount, c.rate_cny,
       ROUND(e.amount * c.rate_cny, 2), %(created_at)s
FROM points_entry e
JOIN settlement_clearingline c ON c.posting_id = %(posting)s AND c.issuer_id = e.business_unit_id AND c.kind = %(kind)s
WHERE e.posting_id = %(posting)s AND e.account = 'expiry'
"""


def record_clearing(*, posting, wallet) -> None:
    """After-post hook: the clearing lines of `posting` (nothing for a posting that moved no lot)."""
    kind = KINDS.get(posting.kind)
    if kind is None or (posting.kind == PostingKind.ADJUST and posting.points > 0):
        return  # an earn or a credit adjustment: it issues lots, takes none
    if posting.kind == PostingKind.TRANSFER and posting.points < 0:
        return  # a transfer's sent side: balanced by its transfer entries, it moves no liability
    params = {
        "posting": posting.pk, "kind": kind.value, "redeemer": posting.business_unit_id,
        "merchant": posting.merchant_id, "created_at": posting.created_at, "day": local_date(posting.created_at),
        "reverses": posting.reverses_id, "own_lots": posting.kind in (PostingKind.CANCEL, PostingKind.TRANSFER),
    }
    refund = posting.kind == PostingKind.REFUND
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(INSERT_SQLS.get(posting.kind, INSERT_SQL), params)
            if refund:
                cursor.execute(BREAKAGE_REVERSAL_SQL, {**params, "reversal": ClearingKind.BREAKAGE_REVERSAL.value})
        return
    _record_portably(posting=posting, kind=kind, params=params)


def _record_portably(*, posting, kind, params) -> None:
    """What INSERT_SQL does, through the ORM, for the embedded SQLite demo database."""
    moved: dict[int, int] = dict(
        LotMovement.objects.filter(posting_id=posting.pk).values("lot__business_unit_id")
        .annotate(total=Sum("amount")).values_list("lot__business_unit_id", "total")
    )
    if params["own_lots"]:
        for bu_id, amount in Lot.objects.filter(posting_id=posting.pk).values_list("business_unit_id", "amount"):
            moved[bu_id] = moved.get(bu_id, 0) + amount
    also_moved: dict[int, int] = {}
    if posting.kind in ALSO_MOVED:  # an expiry's own expiry entries are its breakage, not breakage reclaimed
        for bu_id, amount in Entry.objects.filter(posting_id=posting.pk, account=ALSO_MOVED[posting.kind]) \
                .values_list("business_unit_id", "amount"):
            also_moved[bu_id] = also_moved.get(bu_id, 0) + amount
    for bu_id, amount in also_moved.items():
        moved[bu_id] = moved.get(bu_id, 0) + amount
    reclaimed = also_moved if posting.kind == PostingKind.REFUND else {}
    frozen = {}
    if posting.reverses_id:
        frozen = dict(ClearingLine.objects.filter(posting_id=posting.reverses_id).values_list("issuer_id", "rate_cny"))
    lines = []
    for bu_id, total in sorted(moved.items()):
        if not total:
            continue
        rate = frozen[bu_id] if bu_id in frozen else clearing_rate(business_unit_id=bu_id, day=params["day"])
        lines.append(ClearingLine(
            posting_id=posting.pk, kind=kind, issuer_id=bu_id, redeemer_id=posting.business_unit_id,
            merchant_id=posting.merchant_id, points=-total, rate_cny=rate, amount_cny=cny(-total, rate),
            created_at=posting.created_at,
        ))
        if bu_id in reclaimed:
            lines.append(ClearingLine(
                posting_id=posting.pk, kind=ClearingKind.BREAKAGE_REVERSAL, issuer_id=bu_id, merchant_id=posting.merchant_id,
                points=reclaimed[bu_id], rate_cny=rate, amount_cny=cny(reclaimed[bu_id], rate), created_at=posting.created_at,
            ))
    ClearingLine.objects.bulk_create(lines)

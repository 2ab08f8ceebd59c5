"""Reads on the ledger: balances, history, holds, the accounts settlement reads and the invariant
checks behind verify_ledger. (The earning rules' reads are points.rules.selectors.)"""

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from members.models import BusinessUnit, Merchant
from points.models import Entry, Hold, HoldStatus, Lot, LotMovement, Posting, PostingKind, Wallet
from points.partitioning import PARTITION_INVARIANTS, ledger_partitioned, partition_problems
from points.policies import reserved_hold_purposes


@dataclass(frozen=True)
class Balance:
    total: int
    available: int
    pending: int
    frozen: int
    held: int
    expired_unswept: int
    debt: int
    expiring: list[dict]


def wallet_balance(*, wallet: Wallet, now: datetime | None = None) -> Balance:
    """The member's points by state. `total` is the cached balance; the parts add up to it:
    total = available + frozen + pending + held + expired_unswept (expired, awaiting the expiry
    job). `held` counts the live holds: a hold past its expiry is released, whether or not the
    sweep has come; only when the wallet is in debt do its points stay under `held`, as they will
    repay the debt when released.

    One query: the open lots summed per expiry instant (a handful of rows per wallet, since
    lots expire at the end of a day), split here into expired, pending and expiring, and the
    points of the live holds.
    """
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(WALLET_LOTS_BY_EXPIRY_SQL, {"wallet_id": wallet.pk, "now": now})
        rows = cursor.fetchall()
    held = rows[0][3] if rows else 0
    return _balance(total=wallet.balance, debt=wallet.debt, is_frozen=wallet.is_frozen, held=held,
                    by_expiry=[row[:3] for row in rows], now=now)


# wallet_balance's read, in plain SQL for the same reason as member_balance's: every write's
# response carries the balance.
WALLET_LOTS_BY_EXPIRY_SQL = """
    SELECT l.expires_at, CAST(SUM(l.remaining) AS bigint),
           CAST(SUM(l.remaining) FILTER (WHERE l.available_at > %(now)s) AS bigint),
           (SELECT CAST(COALESCE(SUM(h.points), 0) AS bigint) FROM points_hold h
            WHERE h.wallet_id = %(wallet_id)s AND h.status = 'held' AND h.expires_at > %(now)s)
    FROM points_lot l
    WHERE l.wallet_id = %(wallet_id)s AND l.remaining > 0
    GROUP BY l.expires_at
    ORDER BY l.expires_at
"""


MEMBER_BALANCE_SQL = """
    SELECT w.balance, w.debt, w.is_frozen,
           (SELECT CAST(COALESCE(SUM(h.points), 0) AS bigint) FROM points_hold h
            WHERE h.wallet_id = w.id AND h.status = 'held' AND h.expires_at > %(now)s),
           l.expires_at, CAST(SUM(l.remaining) AS bigint),
           CAST(SUM(l.remaining) FILTER (WHERE l.available_at > %(now)s) AS bigint)
    FROM points_wallet w
    LEFT JOIN points_lot l ON l.wallet_id = w.id AND l.remaining > 0
    WHERE w.member_id = %(member_id)s
    GROUP BY w.id, l.expires_at
    ORDER BY l.expires_at
"""


def member_balance(*, member_id: int, now: datetime | None = None) -> Balance | None:
    """`wallet_balance` of a member's wallet, or None when the member has none, in one statement.

    The balance is the API's most frequent read: the wallet row and its open lots summed per
    expiry (through the partial index lot_open_by_wallet) come in one plain SQL statement,
    because building the same query through the ORM costs several times the database's time.
    """
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(MEMBER_BALANCE_SQL, {"member_id": member_id, "now": now})
        rows = cursor.fetchall()
    if not rows:
        return None
    total, debt, is_frozen, held = rows[0][:4]
    by_expiry = [row[4:] for row in rows if row[4] is not None]
    return _balance(total=total, debt=debt, is_frozen=is_frozen, held=held, by_expiry=by_expiry, now=now)


def wallet_balances(*, wallets: list[Wallet], now: datetime | None = None) -> dict[int, Balance]:
    """`wallet_balance` of each of `wallets` (a console page of them), by wallet id, in two
    queries whatever their number: their open lots summed per expiry, their live holds."""
    now = now or timezone.now()
    ids = [wallet.pk for wallet in wallets]
    by_expiry: dict[int, list[tuple]] = {wallet_id: [] for wallet_id in ids}
    lots = (
        Lot.objects.filter(wallet_id__in=ids, remaining__gt=0).values("wallet_id", "expires_at")
        .annotate(points=Sum("remaining"), pending=Sum("remaining", filter=Q(available_at__gt=now)))
        .order_by("wallet_id", "expires_at")
    )
    for row in lots:
        by_expiry[row["wallet_id"]].append((row["expires_at"], row["points"], row["pending"]))
    held = dict(
        Hold.objects.filter(wallet_id__in=ids, status=HoldStatus.HELD, expires_at__gt=now)
        .values("wallet_id").annotate(points=Sum("points")).values_list("wallet_id", "points")
    )
    return {
        wallet.pk: _balance(total=wallet.balance, debt=wallet.debt, is_frozen=wallet.is_frozen,
                            held=held.get(wallet.pk, 0), by_expiry=by_expiry[wallet.pk], now=now)
        for wallet in wallets
    }


def _balance(*, total: int, debt: int, is_frozen: bool, held: int, by_expiry, now: datetime) -> Balance:
    """Split (expires_at, points, pending points) rows, earliest expiry first, into the states.

    (SQLite hands plain SQL's datetimes back naive, in UTC as Django stores them there.)"""
    by_expiry = [
        (expires_at if timezone.is_aware(expires_at) else timezone.make_aware(expires_at, dt_timezone.utc), *sums)
        for expires_at, *sums in by_expiry
    ]
    expired = sum(points for expires_at, points, _pending in by_expiry if expires_at < now)
    valid = [(expires_at, points, pending) for expires_at, points, pending in by_expiry if expires_at >= now]
    pending = sum(row_pending or 0 for _expires_at, _points, row_pending in valid)
    spendable = total - pending - expired - held
    # In debt, every point is a hold's (a refund took all the free ones): points of a hold past
    # its expiry repay the debt as soon as the hold is released, so they are not available.
    owed = min(spendable, debt) if debt and spendable > 0 else 0
    spendable -= owed
    return Balance(
        total=total,
        available=0 if is_frozen else spendable,
        pending=pending,
        frozen=spendable if is_frozen else 0,
        held=held + owed,
        expired_unswept=expired,
        debt=debt,
        expiring=[{"expires_at": expires_at, "points": points} for expires_at, points, _pending in valid[:12]],
    )


def wallet_postings(*, wallet: Wallet) -> QuerySet[Posting]:
    return Posting.objects.filter(wallet=wallet).select_related("business_unit", "merchant").order_by("-occurred_at", "-id")


def member_postings(*, member_id: int, business_unit: BusinessUnit | None = None) -> QuerySet[Posting]:
    """`wallet_postings` of a member's wallet, which the same query finds through the member;
    only those of `business_unit` when given (read through its related manager, which gives each
    posting its business unit without joining it)."""
    if business_unit is None:
        postings = Posting.objects.select_related("business_unit", "merchant")
    else:
        postings = business_unit.postings.select_related("merchant")
    return postings.filter(wallet__member_id=member_id).order_by("-occurred_at", "-id")


class MemberPostingList:
    """`member_postings` as a list read with plain SQL: a slice is one statement, `count()` one
    more. The API's unfiltered history pages read it, since building these statements through
    the ORM costs several times the database's time; a filtered page takes the queryset.

    Each posting has the fields the API shows (the others deferred), its business unit and its
    merchant (their codes).
    """

    SHOWN = ("id", "kind", "event_type", "business_unit", "merchant", "points", "amount_cny", "receipt_no", "reason",
             "explanation", "reverses", "occurred_at", "created_at")
    ordered = True  # as Django's paginator wants of a list it pages

    def __init__(self, *, member_id: int, business_unit: BusinessUnit | None = None):
        self.member_id = member_id
        self.business_unit = business_unit

    def count(self) -> int:
        sql, params = self._sql("COUNT(*)")
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0]

    def __getitem__(self, window: slice) -> list[Posting]:
        fields = [field for field in Posting._meta.concrete_fields if field.name in self.SHOWN]
        columns = ", ".join(f"p.{field.column}" for field in fields) + ", m.code"
        joins = "LEFT JOIN members_merchant m ON m.id = p.merchant_id"
        if self.business_unit is None:  # otherwise every posting's is known: one join less to plan
            columns += ", b.code"
            joins += " LEFT JOIN members_businessunit b ON b.id = p.business_unit_id"
        sql, params = self._sql(columns, joins=joins)
        sql += " ORDER BY p.occurred_at DESC, p.id DESC LIMIT %(limit)s OFFSET %(offset)s"
        with connection.cursor() as cursor:
            cursor.execute(sql, {**params, "limit": window.stop - window.start, "offset": window.start})
            rows = cursor.fetchall()
        explanation = Posting._meta.get_field("explanation")
        names = [field.attname for field in fields]
        postings = []
        for row in rows:
            posting = Posting.from_db(connection.alias, names, row[: len(names)])
            merchant_code, *unit_code = row[len(names) :]
            posting.explanation = explanation.from_db_value(posting.explanation, None, connection)
            for instant in ("occurred_at", "created_at"):  # SQLite's plain SQL hands them back naive, in UTC
                if timezone.is_naive(moment := getattr(posting, instant)):
                    setattr(posting, instant, moment.replace(tzinfo=dt_timezone.utc))
            if posting.business_unit_id is not None:
                posting.business_unit = self.business_unit or BusinessUnit.from_db(
                    connection.alias, ["id", "code"], [posting.business_unit_id, *unit_code]
                )
            if posting.merchant_id is not None:
                posting.merchant = Merchant.from_db(connection.alias, ["id", "code"], [posting.merchant_id, merchant_code])
            postings.append(posting)
        return postings

    def _sql(self, select: str, joins: str = "") -> tuple[str, dict]:
        sql = f"SELECT {select} FROM points_posting p JOIN points_wallet w ON w.id = p.wallet_id {joins} WHERE w.member_id = %(member_id)s"
        params = {"member_id": self.member_id}
        if self.business_unit is not None:
            sql += " AND p.business_unit_id = %(business_unit_id)s"
            params["business_unit_id"] = self.business_unit.pk
        return sql, params


def business_unit_account_totals(*, business_unit_id: int, start: datetime, end: datetime) -> dict[str, int]:
    """What each system account of a business unit (issuance, redemption, expiry, adjustment)
    received over [start, end), summed from its entries, by the time the postings were booked
    (`created_at`: a backdated earn booked after a period closed belongs to the next period, so
    a closed period's figures never change). Positive: points flowed into the account."""
    totals = (
        Entry.objects.filter(business_unit_id=business_unit_id, posting__created_at__gte=start,
                             posting__created_at__lt=end)
        .values("account").annotate(total=Sum("amount")).values_list("account", "total")
    )
    return dict(totals)


def posting_issuers(*, posting_id: int) -> dict[int, int]:
    """For a posting that took points from lots (a spend, a capture, an expiry, a refund) or gave
    them back (a cancel), the points per business unit that issued those lots: negative where
    points were taken, positive where given back. Settlement clears redemptions with it."""
    moved = (
        LotMovement.objects.filter(posting_id=posting_id)
        .values("lot__business_unit_id").annotate(total=Sum("amount")).values_list("lot__business_unit_id", "total")
    )
    return {business_unit_id: total for business_unit_id, total in moved if total}


def posting_regranted_points(*, posting_id: int) -> int:
    """Points a give-back posting credited as a new lot because their own lot had expired."""
    return Lot.objects.filter(posting_id=posting_id).aggregate(total=Sum("amount"))["total"] or 0


PARTNER_SCOPE_PREFIX = "partner:"


def partner_hold(*, hold_id: int, business_unit: BusinessUnit, reserved_too: bool = False) -> Hold | None:
    """A hold a partner placed through the holds API at `business_unit` (its key's scope names a
    partner); None for another BU's hold and for holds an app above points placed for its own
    rows, which only that app may move. `reserved_too` finds also the BU's holds of a purpose an
    app reserves (a payment's), so that a move of one is refused as such (hold_reserved)."""
    placed_here = Q(idempotency_scope__startswith=PARTNER_SCOPE_PREFIX)
    if reserved_too:
        placed_here |= Q(purpose__in=sorted(reserved_hold_purposes()))
    return (
        Hold.objects.select_related("business_unit", "merchant", "wallet")
        .filter(placed_here, pk=hold_id, business_unit=business_unit).first()
    )


def wallet_exists(*, member_id: int) -> bool:
    return Wallet.objects.filter(member_id=member_id).exists()


# Every invariant of the ledger as one SQL query returning the offending rows (none when sound).
INVARIANTS: dict[str, str] = {
    "posting entries do not sum to zero": """
        SELECT posting_id, SUM(amount) FROM points_entry GROUP BY posting_id HAVING SUM(amount) <> 0
    """,
    "posting points differ from its member entries": """
        SELECT p.id, p.points, COALESCE(SUM(e.amount), 0) FROM points_posting p
        LEFT JOIN points_entry e ON e.posting_id = p.id AND e.account IN ('wallet', 'debt')
        GROUP BY p.id, p.points HAVING p.points <> COALESCE(SUM(e.amount), 0)
    """,
    "member entry on another wallet than its posting": """
        SELECT e.id FROM points_entry e JOIN points_posting p ON p.id = e.posting_id
        WHERE e.wallet_id IS NOT NULL AND e.wallet_id <> p.wallet_id
    """,
    "wallet balance differs from its entries": """
        SELECT w.id, w.balance, COALESCE(x.s, 0) FROM points_wallet w
        LEFT JOIN (SELECT wallet_id, SUM(amount) s FROM points_entry WHERE account = 'wallet' GROUP BY wallet_id) x
            ON x.wallet_id = w.id
        WHERE w.balance <> COALESCE(x.s, 0)
    """,
    "wallet debt differs from its entries": """
        SELECT w.id, w.debt, COALESCE(x.s, 0) FROM points_wallet w
        LEFT JOIN (SELECT wallet_id, -SUM(amount) s FROM points_entry WHERE account = 'debt' GROUP BY wallet_id) x
            ON x.wallet_id = w.id
        WHERE w.debt <> COALESCE(x.s, 0)
    """,
    "wallet balance differs from its lots": """
        SELECT w.id, w.balance, COALESCE(x.s, 0) FROM points_wallet w
        LEFT JOIN (SELECT wallet_id, SUM(remaining) s FROM points_lot GROUP BY wallet_id) x ON x.wallet_id = w.id
        WHERE w.balance <> COALESCE(x.s, 0)
    """,
    "negative wallet balance or debt": "SELECT id FROM points_wallet WHERE balance < 0 OR debt < 0",
    "wallet of no holder or of two": """
        SELECT id FROM points_wallet WHERE (member_id IS NULL) = (organization_id IS NULL)
    """,
    # A transfer is a pair: the sender's posting and the receiver's, keyed transfer-in:<sender's>,
    # on another wallet, of the opposite points, their transfer legs netting to zero per issuer.
    "sent transfer without its received half": """
        SELECT s.id FROM points_posting s
        LEFT JOIN points_posting r ON r.idempotency_scope = 'system' AND r.idempotency_key = 'transfer-in:' || s.id
        WHERE s.kind = 'transfer' AND s.points < 0
          AND (r.id IS NULL OR r.kind <> 'transfer' OR r.points <> -s.points OR r.wallet_id = s.wallet_id)
    """,
    "received transfer without its sent half": """
        SELECT r.id FROM points_posting r WHERE r.kind = 'transfer' AND r.points >= 0 AND NOT EXISTS (
            SELECT 1 FROM points_posting s
            WHERE s.kind = 'transfer' AND s.points < 0
              AND r.idempotency_scope = 'system' AND r.idempotency_key = 'transfer-in:' || s.id)
    """,
    "transfer legs do not net to zero per issuer": """
        SELECT s.id, e.business_unit_id, SUM(e.amount) FROM points_posting s
        JOIN points_posting r ON r.idempotency_scope = 'system' AND r.idempotency_key = 'transfer-in:' || s.id
        JOIN points_entry e ON e.posting_id IN (s.id, r.id) AND e.account = 'transfer'
        WHERE s.kind = 'transfer' AND s.points < 0
        GROUP BY s.id, e.business_unit_id HAVING SUM(e.amount) <> 0
    """,
    "transfer account does not net to zero": """
        SELECT business_unit_id, SUM(amount) FROM points_entry WHERE account = 'transfer'
        GROUP BY business_unit_id HAVING SUM(amount) <> 0
    """,
    # Debt arises only when a refund has emptied every lot, and every credit repays it first:
    # points next to a debt mean a path paid the member before settling what they owe.
    # Points a hold reserves may sit beside a debt until the hold ends (a refund does not take them).
    "wallet holds points while in debt": "SELECT id, balance, held, debt FROM points_wallet WHERE debt > 0 AND balance > held",
    "lot remaining outside [0, amount]": "SELECT id FROM points_lot WHERE remaining < 0 OR remaining > amount OR amount <= 0",
    "lot remaining differs from its movements": """
        SELECT l.id, l.remaining, l.amount + COALESCE(m.s, 0) FROM points_lot l
        LEFT JOIN (SELECT lot_id, SUM(amount) s FROM points_lotmovement GROUP BY lot_id) m ON m.lot_id = l.id
        WHERE l.remaining <> l.amount + COALESCE(m.s, 0)
    """,
    "lot movements differ from the posting's wallet entries": """
        SELECT p.id FROM points_posting p
        LEFT JOIN (SELECT posting_id, SUM(amount) s FROM points_entry WHERE account = 'wallet' GROUP BY posting_id) e
            ON e.posting_id = p.id
        LEFT JOIN (SELECT posting_id, SUM(amount) s FROM points_lotmovement GROUP BY posting_id) m ON m.posting_id = p.id
        LEFT JOIN (SELECT posting_id, SUM(amount) s FROM points_lot GROUP BY posting_id) c ON c.posting_id = p.id
        WHERE COALESCE(e.s, 0) <> COALESCE(m.s, 0) + COALESCE(c.s, 0)
    """,
    "lot moved by a posting of another wallet": """
        SELECT m.id FROM points_lotmovement m JOIN points_lot l ON l.id = m.lot_id
        JOIN points_posting p ON p.id = m.posting_id WHERE l.wallet_id <> p.wallet_id
    """,
    "lot held outside [0, remaining]": "SELECT id FROM points_lot WHERE held < 0 OR held > remaining",
    "wallet held differs from its lots": """
        SELECT w.id, w.held, COALESCE(x.s, 0) FROM points_wallet w
        LEFT JOIN (SELECT wallet_id, SUM(held) s FROM points_lot GROUP BY wallet_id) x ON x.wallet_id = w.id
        WHERE w.held <> COALESCE(x.s, 0)
    """,
    "lot held differs from the allocations of its open holds": """
        SELECT l.id, l.held, COALESCE(x.s, 0) FROM points_lot l
        LEFT JOIN (SELECT a.lot_id, SUM(a.points) s FROM points_holdallocation a
                   JOIN points_hold h ON h.id = a.hold_id WHERE h.status = 'held' GROUP BY a.lot_id) x ON x.lot_id = l.id
        WHERE l.held <> COALESCE(x.s, 0)
    """,
    "hold allocations differ from its points": """
        SELECT h.id, h.points, COALESCE(SUM(a.points), 0) FROM points_hold h
        LEFT JOIN points_holdallocation a ON a.hold_id = h.id
        GROUP BY h.id, h.points HAVING h.points <> COALESCE(SUM(a.points), 0)
    """,
    "hold allocation on a lot of another wallet": """
        SELECT a.id FROM points_holdallocation a JOIN points_hold h ON h.id = a.hold_id
        JOIN points_lot l ON l.id = a.lot_id WHERE l.wallet_id <> h.wallet_id
    """,
    "captured hold differs from its posting": """
        SELECT h.id FROM points_hold h LEFT JOIN points_posting p ON p.id = h.capture_posting_id
        WHERE h.status = 'captured' AND (p.id IS NULL OR p.points <> -h.captured OR p.wallet_id <> h.wallet_id)
    """,
    "hold events disagree with its status": """
        SELECT h.id FROM points_hold h
        WHERE (SELECT e.to_status FROM points_holdevent e WHERE e.hold_id = h.id ORDER BY e.id DESC LIMIT 1)
              IS DISTINCT FROM h.status
           OR (SELECT COUNT(*) FROM points_holdevent e WHERE e.hold_id = h.id) <> CASE WHEN h.status = 'held' THEN 1 ELSE 2 END
    """,
    # What a reversal reversed: a cancel's points; a refund's issuance entry (its points are the
    # member's side only: the part reclaimed from breakage is not the member's).
    "reversals exceed their original": """
        SELECT o.id FROM points_posting o JOIN points_posting r ON r.reverses_id = o.id
        LEFT JOIN points_entry e ON e.posting_id = r.id AND e.account = 'issuance' AND r.kind = 'refund'
        GROUP BY o.id, o.points
        HAVING SUM(CASE WHEN r.kind = 'refund' THEN e.amount ELSE ABS(r.points) END) > ABS(o.points)
    """,
    "refund reclaims more breakage than its earn's lots expired": """
        SELECT o.id FROM points_posting o
        JOIN (SELECT r.reverses_id, -SUM(e.amount) s FROM points_posting r
              JOIN points_entry e ON e.posting_id = r.id AND e.account = 'expiry'
              WHERE r.kind = 'refund' GROUP BY r.reverses_id) reclaimed ON reclaimed.reverses_id = o.id
        LEFT JOIN (SELECT l.posting_id, -SUM(m.amount) s FROM points_lot l
                   JOIN points_lotmovement m ON m.lot_id = l.id JOIN points_posting x ON x.id = m.posting_id
                   WHERE x.kind = 'expire' GROUP BY l.posting_id) expired ON expired.posting_id = o.id
        WHERE reclaimed.s > COALESCE(expired.s, 0)
    """,
}


def ledger_problems(*, limit: int = 10) -> dict[str, list[tuple]]:
    """Run every invariant (a partitioned ledger's too); return the failing ones with up to
    `limit` offending rows each."""
    problems = {}
    with connection.cursor() as cursor:
        for name, sql in INVARIANTS.items():
            cursor.execute(f"SELECT * FROM ({sql}) AS offending LIMIT {int(limit)}")
            rows = cursor.fetchall()
            if rows:
                problems[name] = rows
    problems.update(partition_problems(limit=limit))
    return problems


def ledger_invariant_names() -> list[str]:
    """The invariants ledger_problems checks on this database."""
    return [*INVARIANTS, *(PARTITION_INVARIANTS if ledger_partitioned() else ())]


@dataclass(frozen=True)
class BusinessUnitFlow:
    """What a member earned (net of refunds, with credit adjustments and opening balances) at a
    business unit and spent there (net of cancels)."""

    code: str
    name: str
    earned: int
    spent: int


def member_points_by_business_unit(*, wallet: Wallet) -> list[BusinessUnitFlow]:
    """The member's points per business unit, earned and spent, largest first: one grouped
    query over the wallet's postings (served by the posting_wallet_history index)."""
    earned = Q(kind__in=[PostingKind.EARN, PostingKind.REFUND]) | Q(kind=PostingKind.ADJUST, points__gt=0)
    spent = Q(kind__in=[PostingKind.SPEND, PostingKind.CANCEL])
    rows = (
        Posting.objects.filter(wallet=wallet, business_unit__isnull=False)
        .values("business_unit__code", "business_unit__name")
        .annotate(earned=Sum("points", filter=earned, default=0), spent=Sum("points", filter=spent, default=0))
        .order_by("business_unit__code")
    )
    flows = [
        BusinessUnitFlow(code=row["business_unit__code"], name=row["business_unit__name"], earned=row["earned"],
                         spent=-row["spent"])
        for row in rows if row["earned"] or row["spent"]
    ]
    return sorted(flows, key=lambda flow: -(flow.earned + flow.spent))


def holds_outstanding(*, now: datetime) -> dict[str, tuple[int, int]]:
    """The holds still `held`, as (count, points): `live` ones and `expired` ones the sweep has
    not released yet. One query over the held holds (for /metrics, at scrape time)."""
    totals = Hold.objects.filter(status=HoldStatus.HELD).aggregate(
        live=Count("id", filter=Q(expires_at__gt=now)), live_points=Sum("points", filter=Q(expires_at__gt=now)),
        expired=Count("id", filter=Q(expires_at__lte=now)), expired_points=Sum("points", filter=Q(expires_at__lte=now)),
    )
    return {state: (totals[state], totals[f"{state}_points"] or 0) for state in ("live", "expired")}

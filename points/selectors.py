"""Reads on the ledger: balances, history and the invariant checks behind verify_ledger."""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet, Sum
from django.utils import timezone

from points.models import Lot, Posting, Wallet


@dataclass(frozen=True)
class Balance:
    total: int
    available: int
    pending: int
    frozen: int
    expired_unswept: int
    debt: int
    expiring: list[dict]


def wallet_balance(*, wallet: Wallet, now: datetime | None = None) -> Balance:
    """The member's points by state. `total` is the cached balance; the parts add up to it:
    total = available + frozen + pending + expired_unswept (expired, awaiting the expiry job)."""
    now = now or timezone.now()
    open_lots = Lot.objects.filter(wallet=wallet, remaining__gt=0)
    pending = open_lots.filter(available_at__gt=now, expires_at__gte=now).aggregate(s=Sum("remaining"))["s"] or 0
    expired = open_lots.filter(expires_at__lt=now).aggregate(s=Sum("remaining"))["s"] or 0
    spendable = wallet.balance - pending - expired
    expiring = [
        {"expires_at": row["expires_at"], "points": row["points"]}
        for row in open_lots.filter(expires_at__gte=now).values("expires_at").annotate(points=Sum("remaining"))
        .order_by("expires_at")[:12]
    ]
    return Balance(
        total=wallet.balance,
        available=0 if wallet.is_frozen else spendable,
        pending=pending,
        frozen=spendable if wallet.is_frozen else 0,
        expired_unswept=expired,
        debt=wallet.debt,
        expiring=expiring,
    )


def wallet_postings(*, wallet: Wallet) -> QuerySet[Posting]:
    return Posting.objects.filter(wallet=wallet).select_related("business_unit", "merchant").order_by("-occurred_at", "-id")


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
    "reversals exceed their original": """
        SELECT o.id FROM points_posting o JOIN points_posting r ON r.reverses_id = o.id
        GROUP BY o.id, o.points HAVING ABS(SUM(r.points)) > ABS(o.points)
    """,
}


def ledger_problems(*, limit: int = 10) -> dict[str, list[tuple]]:
    """Run every invariant; return the failing ones with up to `limit` offending rows each."""
    problems = {}
    with connection.cursor() as cursor:
        for name, sql in INVARIANTS.items():
            cursor.execute(f"SELECT * FROM ({sql}) AS offending LIMIT {int(limit)}")
            rows = cursor.fetchall()
            if rows:
                problems[name] = rows
    return problems

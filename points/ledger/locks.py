"""The wallet locks. Every write to a wallet's postings, lots, holds or balance holds its row
lock (SELECT ... FOR UPDATE) for the rest of its transaction; several wallets are always locked
in id order, so that two callers never deadlock. The wallet row exists from enrolment
(`wallet_open`), an organization's from its first use (`organization_wallet_open`, before any
lock): FOR UPDATE on a missing row would lock nothing."""

from datetime import datetime

from django.db import connection
from django.db.models import F

from members.models import Member, Organization
from points.exceptions import NotFound
from points.ledger import rows, sql
from points.models import Lot, Wallet


def wallet_open(member: Member) -> Wallet:
    """Enrolment hook: every member has a wallet row from the start, so it can be locked."""
    return Wallet.objects.get_or_create(member=member)[0]


def wallets_open(members: list[Member]) -> list[Wallet]:
    """wallet_open for many new members at once (a bulk import): one INSERT for all."""
    wallets = [Wallet(member=member) for member in members]
    if connection.vendor == "postgresql":
        sql.insert_many(wallets)
        return wallets
    return Wallet.objects.bulk_create(wallets)


def organization_wallet_open(organization: Organization) -> Wallet:
    """The organization's wallet, opened on first use (concurrent first uses meet on the unique
    organization column: one row). Call it before the transaction that locks the wallet."""
    return Wallet.objects.get_or_create(organization=organization)[0]


def organization_wallet_lock(*, organization_id: int) -> Wallet:
    """Lock the organization's wallet row, its organization with it. NotFound when there is none
    (open it first with `organization_wallet_open`)."""
    wallet = (
        Wallet.objects.select_for_update(of=("self",)).select_related("organization")
        .filter(organization_id=organization_id).first()
    )
    if wallet is None:
        raise NotFound(f"organization {organization_id} has no wallet")
    return wallet


def wallet_lock(*, member_id: int) -> Wallet:
    """Lock the member's wallet row; its member comes with it. NotFound when there is none.

    Hand-written SQL: every earn and redemption starts here."""
    lock = " FOR UPDATE OF w" if connection.features.has_select_for_update_of else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {rows.columns(Wallet, 'w')}, {rows.columns(Member, 'm')} FROM points_wallet w "
            f"JOIN members_member m ON m.id = w.member_id WHERE w.member_id = %s{lock}",
            [member_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"member {member_id} not found")
    wallet = rows.instance(Wallet, row)
    wallet.member = rows.instance(Member, row, rows.width(Wallet))
    return wallet


def wallets_lock(*, wallet_ids: list[int] | None = None, member_ids: list[int] | None = None) -> list[Wallet]:
    """Lock several wallets, named by their ids or their members' ids, in wallet id order; each
    with its holder (member or organization). Wallets that do not exist are left out."""
    wallets = Wallet.objects.select_for_update(of=("self",)).select_related("member", "organization")
    if wallet_ids is not None:
        wallets = wallets.filter(id__in=wallet_ids)
    if member_ids is not None:
        wallets = wallets.filter(member_id__in=member_ids)
    return list(wallets.order_by("id"))


# The next batch of wallets with due lots after the cursor, locked in id order. The open-lots
# index on (wallet, expiry) serves the search. Points a hold has reserved are not due.
LOCK_DUE_WALLETS_SQL = """
SELECT w.id FROM points_wallet w
WHERE w.id IN (
    SELECT l.wallet_id FROM points_lot l
    WHERE l.wallet_id > %(after)s AND l.wallet_id <= %(through)s AND l.remaining > l.held AND l.expires_at < %(now)s
    GROUP BY l.wallet_id ORDER BY l.wallet_id LIMIT %(limit)s
)
ORDER BY w.id
FOR UPDATE OF w
"""


def wallets_lock_with_due_lots(*, now: datetime, after: int, through: int, limit: int) -> list[int]:
    """Lock the next `limit` wallets in (after, through] that have points due to expire before
    `now`, in id order; their ids. One statement on PostgreSQL."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(LOCK_DUE_WALLETS_SQL, {"after": after, "through": through, "now": now, "limit": limit})
            return [row[0] for row in cursor.fetchall()]
    wallet_ids = list(
        Lot.objects.filter(remaining__gt=F("held"), expires_at__lt=now, wallet_id__gt=after, wallet_id__lte=through)
        .order_by("wallet_id").values_list("wallet_id", flat=True).distinct()[:limit]
    )
    wallets_lock(wallet_ids=wallet_ids)
    return wallet_ids

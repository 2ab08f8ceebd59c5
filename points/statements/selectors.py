"""Reads for statements: a period's figures computed from the ledger, the member's statements,
and the reconciliation of stored statements with the ledger (verify_statements).

How a batch reads the ledger (`statement_figures`): one statement reads each wallet's cached
balance and debt together with the sums of its entries booked since the period started (in the
period, and after it), so the balances at the period's boundaries are `balance - after` and
`balance - after - in period`. Being one SQL statement, it sees one consistent state of the
ledger even while postings are written, and it never depends on earlier statements. (The entries
are reached through the (wallet, account) index and their postings' booking time: a cost per
entry of the wallet, not per entry of the period; an index on postings by (wallet, created_at)
would bound it to the period.) The period's postings are then summed by kind, event type,
business unit and hold purpose (booked postings never change), and the lots at the period end
are rebuilt from today's lots minus what moved after the end (same single-statement rule).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Case, CharField, Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce

from points.ledger.idempotency import SYSTEM_SCOPE
from points.models import Account, Entry, Lot, LotExpiryChange, LotMovement, Posting, PostingKind, Wallet
from points.policies import redemption_channels
from points.statements.models import Statement
from points.statements.periods import Period, period_parse
from points.timeutils import local_date, start_of_local_day

# A posting kind's points (signed, as the member sees them) go to one line of the statement;
# the sign turns debits into the positive amounts a statement shows.
KIND_LINES = {
    PostingKind.EARN: ("earned", 1),
    PostingKind.SPEND: ("redeemed", -1),
    PostingKind.CANCEL: ("cancelled", 1),
    PostingKind.REFUND: ("refunded", -1),
    PostingKind.EXPIRE: ("expired", -1),
    PostingKind.ADJUST: ("adjusted", 1),
    PostingKind.TRANSFER: ("transferred", 1),
}
# A repay posting moves points from the wallet to the debt: its points are 0 and it shows in
# debt_repaid only.
ZERO_KINDS = {PostingKind.REPAY}
GROUP_WIDE = "group"  # the business-unit key of a posting without one
PLAIN_SPEND = "spend"  # the purpose (and channel) of a redemption that no hold preceded
# The channel of a captured hold whose purpose no registered channel claims: points held at a
# till or for a bill and then taken, i.e. points paid as cash.
HOLD_PAYMENT = "payment"
LINES = ("earned", "redeemed", "cancelled", "refunded", "expired", "adjusted", "transferred")


class UnknownPostingKind(Exception):
    """A posting kind the statement does not place: statements refuse to guess where it goes."""


@dataclass
class StatementFigures:
    member_id: int
    opening_balance: int = 0
    closing_balance: int = 0
    opening_debt: int = 0
    closing_debt: int = 0
    earned: int = 0
    redeemed: int = 0
    cancelled: int = 0
    refunded: int = 0
    expired: int = 0
    adjusted: int = 0
    transferred: int = 0
    postings: int = 0
    earned_by_source: dict = field(default_factory=dict)
    earned_by_business_unit: dict = field(default_factory=dict)
    redeemed_by_business_unit: dict = field(default_factory=dict)
    redeemed_by_purpose: dict = field(default_factory=dict)
    redeemed_by_business_unit_and_channel: dict = field(default_factory=dict)
    expiring_30_days: int = 0
    expiring_60_days: int = 0

    @property
    def debt_repaid(self) -> int:
        return self.opening_debt - self.closing_debt

    @property
    def is_due(self) -> bool:
        """Whether the member gets a statement: some activity in the period, or points or debt at
        its end. A member with neither gets none (nothing to tell, and a million empty letters)."""
        return self.postings > 0 or self.closing_balance != 0 or self.closing_debt != 0

    def model_fields(self) -> dict:
        names = [
            "opening_balance", "closing_balance", "opening_debt", "closing_debt", *LINES, "postings",
            "earned_by_source", "earned_by_business_unit", "redeemed_by_business_unit", "redeemed_by_purpose",
            "redeemed_by_business_unit_and_channel", "expiring_30_days", "expiring_60_days",
        ]
        return {name: getattr(self, name) for name in names} | {"debt_repaid": self.debt_repaid}


def _entries_sum(account: str, *, since, before=None):
    """The sum of the outer wallet's `account` entries booked at `since` or later (and before `before`)."""
    entries = Entry.objects.filter(wallet_id=OuterRef("pk"), account=account, posting__created_at__gte=since)
    if before is not None:
        entries = entries.filter(posting__created_at__lt=before)
    total = entries.order_by().values("wallet_id").annotate(total=Sum("amount")).values("total")
    return Coalesce(Subquery(total), Value(0))


def statement_figures(*, member_ids: list[int], period: Period) -> dict[int, StatementFigures]:
    """The figures of `period` for each of these members that has a wallet (due or not)."""
    start, end = period.start, period.end
    wallets = (
        Wallet.objects.filter(member_id__in=member_ids)
        .annotate(
            wallet_after=_entries_sum(Account.WALLET, since=end),
            wallet_in=_entries_sum(Account.WALLET, since=start, before=end),
            debt_after=_entries_sum(Account.DEBT, since=end),
            debt_in=_entries_sum(Account.DEBT, since=start, before=end),
        )
        .values_list("id", "member_id", "balance", "debt", "wallet_after", "wallet_in", "debt_after", "debt_in")
    )
    figures: dict[int, StatementFigures] = {}
    by_wallet: dict[int, StatementFigures] = {}
    for wallet_id, member_id, balance, debt, wallet_after, wallet_in, debt_after, debt_in in wallets:
        closing = balance - wallet_after
        # Wallet.debt is minus the sum of the debt entries.
        closing_debt = debt + debt_after
        one = StatementFigures(
            member_id=member_id, closing_balance=closing, opening_balance=closing - wallet_in,
            closing_debt=closing_debt, opening_debt=closing_debt + debt_in,
        )
        figures[member_id] = by_wallet[wallet_id] = one
    if by_wallet:
        _add_movements(by_wallet, start=start, end=end)
        _add_expiring(by_wallet, end=end)
    return figures


def redemption_channel():
    """What a spend posting paid for, from what it carries: the registered channels
    (points.policies: mall orders by their system key, payments by their hold's purpose), then
    any other captured hold (HOLD_PAYMENT), else a plain spend."""
    whens = []
    for channel in redemption_channels():
        if channel.hold_purposes:
            whens.append(When(captured_hold__purpose__in=channel.hold_purposes, then=Value(channel.name)))
        if channel.key_prefix:
            whens.append(When(idempotency_scope=SYSTEM_SCOPE, idempotency_key__startswith=channel.key_prefix,
                              then=Value(channel.name)))
    whens.append(When(captured_hold__isnull=False, then=Value(HOLD_PAYMENT)))
    return Case(*whens, default=Value(PLAIN_SPEND), output_field=CharField())


def _add_movements(by_wallet: dict[int, StatementFigures], *, start, end) -> None:
    rows = (
        Posting.objects.filter(wallet_id__in=list(by_wallet), created_at__gte=start, created_at__lt=end)
        .order_by()
        .annotate(channel=redemption_channel())
        .values("wallet_id", "kind", "event_type", "business_unit__code", "captured_hold__purpose", "channel")
        .annotate(points=Sum("points"), count=Count("id"))
    )
    channels = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    buckets = defaultdict(lambda: defaultdict(int))
    for row in rows:
        one = by_wallet[row["wallet_id"]]
        one.postings += row["count"]
        kind, points = row["kind"], row["points"]
        if kind in ZERO_KINDS:
            if points:
                raise UnknownPostingKind(f"a {kind} posting of wallet {row['wallet_id']} moved {points} points")
            continue
        if kind not in KIND_LINES:
            raise UnknownPostingKind(f"posting kind {kind!r} has no line on a statement")
        line, sign = KIND_LINES[kind]
        setattr(one, line, getattr(one, line) + sign * points)
        unit = row["business_unit__code"] or GROUP_WIDE
        if kind == PostingKind.EARN:
            buckets[(row["wallet_id"], "earned_by_source")][row["event_type"] or "other"] += points
            buckets[(row["wallet_id"], "earned_by_business_unit")][unit] += points
        elif kind == PostingKind.SPEND:
            buckets[(row["wallet_id"], "redeemed_by_business_unit")][unit] -= points
            buckets[(row["wallet_id"], "redeemed_by_purpose")][row["captured_hold__purpose"] or PLAIN_SPEND] -= points
            channels[row["wallet_id"]][unit][row["channel"]] -= points
    for (wallet_id, name), values in buckets.items():
        setattr(by_wallet[wallet_id], name, dict(sorted((key, value) for key, value in values.items() if value)))
    for wallet_id, units in channels.items():
        by_wallet[wallet_id].redeemed_by_business_unit_and_channel = {
            unit: dict(sorted((name, points) for name, points in split.items() if points))
            for unit, split in sorted(units.items()) if any(split.values())
        }


def lots_at(*, wallet_ids: list[int], at) -> QuerySet:
    """The lots these wallets held at `at` with points left then: `remaining_then` (today's
    remaining minus what moved after `at`) and `expires_then` (the expiry before any later move
    by activity-extended expiry). One statement: today's lots and their later movements agree."""
    moved_after = (
        LotMovement.objects.filter(lot_id=OuterRef("pk"), posting__created_at__gte=at)
        .order_by().values("lot_id").annotate(total=Sum("amount")).values("total")
    )
    first_later_change = (
        LotExpiryChange.objects.filter(lot_id=OuterRef("pk"), created_at__gte=at).order_by("id").values("previous_expires_at")[:1]
    )
    later_movement = LotMovement.objects.filter(lot_id=OuterRef("pk"), posting__created_at__gte=at)
    return (
        Lot.objects.filter(wallet_id__in=wallet_ids, posting__created_at__lt=at)
        .filter(Q(remaining__gt=0) | Exists(later_movement))
        .annotate(
            remaining_then=F("remaining") - Coalesce(Subquery(moved_after), Value(0)),
            expires_then=Coalesce(Subquery(first_later_change), F("expires_at")),
        )
        .filter(remaining_then__gt=0)
    )


def expiring_bounds(*, end) -> tuple:
    """The first instants after the 30 and the 60 days that follow a period ending at `end`."""
    first_day = local_date(end)
    return start_of_local_day(first_day + timedelta(days=30)), start_of_local_day(first_day + timedelta(days=60))


def _add_expiring(by_wallet: dict[int, StatementFigures], *, end) -> None:
    """What of the closing balance expires within 30 and 60 days of the period end: lots whose
    last valid day falls within the next 30 (60) days. Points whose validity ended with the
    period, which the expiry job removes in the first minutes of the next one, count too."""
    within_30, within_60 = expiring_bounds(end=end)
    lots = lots_at(wallet_ids=list(by_wallet), at=end).filter(expires_then__lt=within_60)
    for wallet_id, remaining, expires in lots.values_list("wallet_id", "remaining_then", "expires_then"):
        one = by_wallet[wallet_id]
        one.expiring_60_days += remaining
        if expires < within_30:
            one.expiring_30_days += remaining


# --- the member's statements ---------------------------------------------------------------


def member_statements(*, member_id: int) -> QuerySet[Statement]:
    return Statement.objects.filter(member_id=member_id).order_by("-period")


def member_statement(*, member_id: int, period: Period) -> Statement | None:
    return Statement.objects.filter(member_id=member_id, period=period.name).first()


def statement_batch(*, period: Period, after_member_id: int, through_member_id: int | None,
                    limit: int) -> list[tuple[int, int, bool]]:
    """The next `limit` members after `after_member_id` (up to `through_member_id`) that have a
    wallet and enrolled before the period ended, in id order: (member id, wallet id, whether
    their statement of `period` exists), the last read per member from the unique (member,
    period) index."""
    wallets = Wallet.objects.filter(member_id__gt=after_member_id, member__enrolled_at__lt=period.end)
    if through_member_id is not None:
        wallets = wallets.filter(member_id__lte=through_member_id)
    stated = Statement.objects.filter(member_id=OuterRef("member_id"), period=period.name)
    rows = wallets.order_by("member_id").annotate(stated=Exists(stated)).values_list("member_id", "id", "stated")
    return list(rows[:limit])


# --- reconciliation ------------------------------------------------------------------------

CHECKED = (
    "opening_balance", "closing_balance", "opening_debt", "closing_debt", *LINES, "postings",
    "earned_by_source", "earned_by_business_unit", "redeemed_by_business_unit", "redeemed_by_purpose",
    "expiring_30_days", "expiring_60_days",
)
# Checked when stored: statements generated before the split was recorded hold None there.
CHECKED_WHEN_STORED = ("redeemed_by_business_unit_and_channel",)


def ledger_balances_at(*, wallet_ids: list[int], at) -> dict[int, tuple[int, int]]:
    """(balance, debt) of each wallet at `at`, summed from every entry booked before it: the
    long way round, independent of the cached balances the generator starts from."""
    sums = (
        Entry.objects.filter(wallet_id__in=wallet_ids, posting__created_at__lt=at).order_by().values("wallet_id")
        .annotate(balance=Coalesce(Sum("amount", filter=Q(account=Account.WALLET)), 0),
                  debt=Coalesce(-Sum("amount", filter=Q(account=Account.DEBT)), 0))
        .values_list("wallet_id", "balance", "debt")
    )
    return {wallet_id: (balance, debt) for wallet_id, balance, debt in sums}


def period_differences(*, period: Period, member_ids: list[int]) -> list[str]:
    """What disagrees with the ledger for these members in `period`, one line each: a stored
    statement whose balances at either boundary differ from the sum of every entry booked
    before it, or whose lines differ from the period's postings recomputed; a member who was
    due a statement (activity, points or debt) and has none; a statement of a member who was
    not due one."""
    statements = {
        statement.member_id: statement
        for statement in Statement.objects.filter(period=period.name, member_id__in=member_ids)
    }
    wallets = dict(Wallet.objects.filter(member_id__in=member_ids).values_list("member_id", "id"))
    opening = ledger_balances_at(wallet_ids=list(wallets.values()), at=period.start)
    closing = ledger_balances_at(wallet_ids=list(wallets.values()), at=period.end)
    figures = statement_figures(member_ids=member_ids, period=period)
    problems = []
    for member_id in sorted(set(member_ids) | set(statements)):
        name = f"statement {period.name} of member {member_id}"
        statement, recomputed = statements.get(member_id), figures.get(member_id)
        if recomputed is None:
            if statement is not None:
                problems.append(f"{name}: the member has no wallet")
            continue
        if statement is None:
            if recomputed.is_due:
                problems.append(f"{name}: missing (the member had activity, points or debt)")
            continue
        if not recomputed.is_due:
            problems.append(f"{name}: the member had neither activity, points nor debt")
        wallet_id = wallets[member_id]
        ledger = {
            "opening_balance": opening.get(wallet_id, (0, 0))[0], "opening_debt": opening.get(wallet_id, (0, 0))[1],
            "closing_balance": closing.get(wallet_id, (0, 0))[0], "closing_debt": closing.get(wallet_id, (0, 0))[1],
        }
        stored = [attribute for attribute in CHECKED_WHEN_STORED if getattr(statement, attribute) is not None]
        for attribute in (*CHECKED, *stored):
            expected = ledger[attribute] if attribute in ledger else getattr(recomputed, attribute)
            if getattr(statement, attribute) != expected:
                problems.append(f"{name}: {attribute} is {getattr(statement, attribute)!r}, the ledger says {expected!r}")
        moved = sum(getattr(statement, line) * sign for line, sign in KIND_LINES.values())
        if statement.opening_balance + moved - statement.debt_repaid != statement.closing_balance:
            problems.append(f"{name}: opening + movements - debt repaid differs from closing")
    return problems


def statement_periods() -> list[Period]:
    """Every period that has statements, oldest first."""
    names = Statement.objects.order_by("period").values_list("period", flat=True).distinct()
    return [period_parse(name) for name in names]


def member_ids_after(*, after_member_id: int, limit: int) -> list[int]:
    """The next `limit` member ids with a wallet, in id order (verify_statements walks them)."""
    return list(
        Wallet.objects.filter(member_id__gt=after_member_id).order_by("member_id").values_list("member_id", flat=True)[:limit]
    )

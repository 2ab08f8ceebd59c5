"""Reads of settlement: clearing rates, periods, the lines of a run computed from the ledger's
rows and the clearing lines, liability at an instant, and the reconciliation behind
verify_settlement.

Periods are calendar months in the group's time zone, and a posting belongs to the period in
which it was **booked** (`created_at`), not the one it is dated in (`occurred_at`): a backdated
earn or a late refund booked after a period closed lands in the next open period, so a closed
period's figures never change (points.selectors.business_unit_account_totals reads the same way).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta
from django.db.models import Count, F, Max, Min, Q, Sum
from django.utils import timezone

from mall.models import PaymentEvent, PaymentStatus, WriteOff
from members.models import BusinessUnit
from points.models import Lot, LotMovement, PostingKind
from points.timeutils import local_date
from settlement.co_funding import co_funding_lines
from settlement.late import late_lines
from settlement.periods import CENT, cny, period_bounds, period_of
from settlement.models import (
    ClearingKind,
    ClearingLine,
    ClearingRate,
    LineKind,
    RunStatus,
    SettlementLine,
    SettlementRun,
    SourceKind,
)

# How each kind of line moves its BU's liability (the other kinds move none).
LIABILITY_SIGNS = {LineKind.ISSUANCE: 1, LineKind.ADJUSTMENT: 1, LineKind.REDEMPTION: -1, LineKind.RECLAIM: -1,
                   LineKind.BREAKAGE: -1, LineKind.BREAKAGE_REVERSAL: 1}


def clearing_rate(*, business_unit_id: int, day: date) -> Decimal:
    """The BU's clearing value per point in force on `day` (a local date): its latest clearing
    rate from that day or before, else its point_value_cny."""
    rate = (
        ClearingRate.objects.filter(business_unit_id=business_unit_id, effective_from__lte=day)
        .order_by("-effective_from").values_list("value_cny", flat=True).first()
    )
    if rate is not None:
        return rate
    return BusinessUnit.objects.values_list("point_value_cny", flat=True).get(pk=business_unit_id)


def previous_period(now: datetime | None = None) -> date:
    """The month that ended last (the beat job's period)."""
    return period_of(now or timezone.now()) - relativedelta(months=1)


def run_for_period(*, period: date) -> SettlementRun | None:
    return SettlementRun.objects.filter(period=period.replace(day=1)).first()


def _trace(row: dict) -> dict:
    return {"source_count": row["n"], "first_source_id": row["first"], "last_source_id": row["last"]}


def compute_lines(*, period: date) -> list[SettlementLine]:
    """The lines of a period, unsaved (no run set), ordered. See docs/settlement.md."""
    start, end = period_bounds(period)
    last_day = local_date(end) - relativedelta(days=1)
    lines: list[SettlementLine] = []
    booked = Q(created_at__gte=start, created_at__lt=end)
    clearing = ClearingLine.objects.filter(booked)
    trace = {"n": Count("posting_id", distinct=True), "first": Min("posting_id"), "last": Max("posting_id")}
    rates: dict[int, Decimal] = {}

    def rate(bu_id: int) -> Decimal:
        if bu_id not in rates:
            rates[bu_id] = clearing_rate(business_unit_id=bu_id, day=last_day)
        return rates[bu_id]

    # Issuance (and credit adjustments): lots created by the period's earns and adjustments,
    # valued at the issuer's clearing value on the period's last day.
    issued = (
        Lot.objects.filter(posting__created_at__gte=start, posting__created_at__lt=end,
                           posting__kind__in=[PostingKind.EARN, PostingKind.ADJUST])
        .values("business_unit_id", "posting__kind")
        .annotate(points=Sum("amount"), n=Count("posting_id", distinct=True), first=Min("posting_id"),
                  last=Max("posting_id"))
        .order_by("business_unit_id", "posting__kind")
    )
    adjustments: dict[int, dict] = {}
    for row in issued:
        bu_id = row["business_unit_id"]
        if row["posting__kind"] == PostingKind.EARN:
            lines.append(SettlementLine(
                kind=LineKind.ISSUANCE, payer_id=bu_id, points=row["points"], amount_cny=cny(row["points"], rate(bu_id)),
                source=SourceKind.POSTING, **_trace(row),
            ))
        else:
            adjustments[bu_id] = {"points": row["points"], "amount": cny(row["points"], rate(bu_id)), **row}

    # What the clearing lines took from each issuer's lots, by kind (same BU included).
    by_kind = (
        clearing.values("issuer_id", "kind").annotate(points=Sum("points"), amount=Sum("amount_cny"), **trace)
        .order_by("issuer_id", "kind")
    )
    kind_lines = {ClearingKind.BREAKAGE: LineKind.BREAKAGE, ClearingKind.RECLAIM: LineKind.RECLAIM,
                  ClearingKind.BREAKAGE_REVERSAL: LineKind.BREAKAGE_REVERSAL}
    redeemed: dict[int, dict] = {}
    for row in by_kind:
        bu_id, kind = row["issuer_id"], row["kind"]
        if kind in kind_lines:
            # A breakage reversal gives breakage back (clearing points < 0): shown as positive.
            sign = -1 if kind == ClearingKind.BREAKAGE_REVERSAL else 1
            lines.append(SettlementLine(
                kind=kind_lines[kind], payer_id=bu_id, points=sign * row["points"], amount_cny=sign * row["amount"],
                source=SourceKind.POSTING, **_trace(row),
            ))
        elif kind == ClearingKind.ADJUSTMENT:  # a debit adjustment: takes points, so negative here
            into = adjustments.setdefault(bu_id, {"points": 0, "amount": Decimal("0"), "n": 0, "first": row["first"],
                                                  "last": row["last"]})
            into["points"] -= row["points"]
            into["amount"] -= row["amount"]
            into["n"] += row["n"]
            into["first"], into["last"] = min(into["first"], row["first"]), max(into["last"], row["last"])
        else:  # redemption and reversal: the issuer's points redeemed, net of cancels
            into = redeemed.setdefault(bu_id, {"points": 0, "amount": Decimal("0"), "n": 0, "first": row["first"],
                                               "last": row["last"]})
            into["points"] += row["points"]
            into["amount"] += row["amount"]
            into["n"] += row["n"]
            into["first"], into["last"] = min(into["first"], row["first"]), max(into["last"], row["last"])
    for bu_id, row in sorted(redeemed.items()):
        lines.append(SettlementLine(kind=LineKind.REDEMPTION, payer_id=bu_id, points=row["points"],
                                    amount_cny=row["amount"], source=SourceKind.POSTING, **_trace(row)))
    for bu_id, row in sorted(adjustments.items()):
        lines.append(SettlementLine(kind=LineKind.ADJUSTMENT, payer_id=bu_id, points=row["points"],
                                    amount_cny=row["amount"], source=SourceKind.POSTING, **_trace(row)))

    # The inter-BU matrix: the issuer owes the redeeming BU (same BU owes itself nothing).
    matrix = (
        clearing.filter(kind__in=[ClearingKind.REDEMPTION, ClearingKind.REVERSAL], redeemer__isnull=False)
        .exclude(redeemer_id=F("issuer_id"))
        .values("issuer_id", "redeemer_id").annotate(points=Sum("points"), amount=Sum("amount_cny"), **trace)
        .order_by("issuer_id", "redeemer_id")
    )
    for row in matrix:
        lines.append(SettlementLine(
            kind=LineKind.CLEARING, payer_id=row["issuer_id"], payee_id=row["redeemer_id"], points=row["points"],
            amount_cny=row["amount"], source=SourceKind.POSTING, **_trace(row),
        ))

    lines += co_funding_lines(start=start, end=end, rate=rate)
    lines += _coupon_lines(start=start, end=end)
    lines += _payment_lines(start=start, end=end)
    lines += late_lines(period=period, rate=rate)
    return lines


def _coupon_lines(*, start: datetime, end: datetime) -> list[SettlementLine]:
    """Coupons written off at a merchant: the providing BU reimburses the merchant the item's
    settlement value (frozen on the order); an undo in the period takes it back."""
    totals: dict[tuple[int, int], dict] = {}
    done = WriteOff.objects.filter(merchant__isnull=False).select_related("coupon__order")
    for write_off, sign in [
        *((w, 1) for w in done.filter(at__gte=start, at__lt=end)),
        *((w, -1) for w in done.filter(undone_at__gte=start, undone_at__lt=end)),
    ]:
        key = (write_off.coupon.business_unit_id, write_off.merchant_id)
        row = totals.setdefault(key, {"amount": Decimal("0"), "ids": set()})
        row["amount"] += sign * write_off.coupon.order.settlement_value_cny
        row["ids"].add(write_off.pk)
    return [
        SettlementLine(kind=LineKind.COUPON, payer_id=payer, merchant_id=merchant, amount_cny=row["amount"],
                       source=SourceKind.WRITE_OFF, source_count=len(row["ids"]), first_source_id=min(row["ids"]),
                       last_source_id=max(row["ids"]))
        for (payer, merchant), row in sorted(totals.items())
    ]


def _payment_lines(*, start: datetime, end: datetime) -> list[SettlementLine]:
    """Points used as cash at a merchant's till: the BU that accepted the points pays the merchant
    the CNY captured; refunds in the period take it back."""
    signs = {PaymentStatus.CAPTURED: 1, PaymentStatus.PARTIALLY_REFUNDED: -1, PaymentStatus.REFUNDED: -1}
    events = (
        PaymentEvent.objects.filter(at__gte=start, at__lt=end, payment__merchant__isnull=False,
                                    to_status__in=list(signs))
        .values("payment__business_unit_id", "payment__merchant_id", "to_status")
        .annotate(points=Sum("points"), amount=Sum("amount_cny"), n=Count("id"), first=Min("id"), last=Max("id"))
    )
    totals: dict[tuple[int, int], dict] = {}
    for row in events:
        sign = signs[row["to_status"]]
        key = (row["payment__business_unit_id"], row["payment__merchant_id"])
        into = totals.setdefault(key, {"points": 0, "amount": Decimal("0"), "n": 0, "first": row["first"],
                                       "last": row["last"]})
        into["points"] += sign * row["points"]
        into["amount"] += sign * row["amount"]
        into["n"] += row["n"]
        into["first"], into["last"] = min(into["first"], row["first"]), max(into["last"], row["last"])
    return [
        SettlementLine(kind=LineKind.PAYMENT, payer_id=payer, merchant_id=merchant, points=row["points"],
                       amount_cny=row["amount"], source=SourceKind.PAYMENT_EVENT, **_trace(row))
        for (payer, merchant), row in sorted(totals.items())
    ]


def liability_at(moment: datetime) -> dict[int, int]:
    """Points outstanding per issuing BU at `moment`: its lots' amounts plus every movement, of
    postings booked before `moment` (the lots' remaining points at that boundary)."""
    totals: dict[int, int] = defaultdict(int)
    for bu_id, points in (
        Lot.objects.filter(posting__created_at__lt=moment).values("business_unit_id")
        .annotate(s=Sum("amount")).values_list("business_unit_id", "s")
    ):
        totals[bu_id] += points
    for bu_id, points in (
        LotMovement.objects.filter(posting__created_at__lt=moment).values("lot__business_unit_id")
        .annotate(s=Sum("amount")).values_list("lot__business_unit_id", "s")
    ):
        totals[bu_id] += points
    return {bu_id: points for bu_id, points in totals.items() if points}


@dataclass
class Reconciliation:
    period: date
    status: str  # the run's status, or "open" when no run exists
    rows: dict[int, dict] = field(default_factory=dict)  # per BU: opening, issued, ..., closing, lots
    problems: list[str] = field(default_factory=list)


def reconcile(*, period: date, now: datetime | None = None) -> Reconciliation:
    """Tie a period to the ledger: per BU, opening + issued + adjusted - redeemed - reclaimed -
    expired + breakage reversed = closing = the lots' remaining points at the period's end (or now, for a period not
    ended); the matrix's payables equal its receivables; a run's stored lines equal the lines
    computed afresh. A closed run is checked with its stored lines (and these against the ledger's
    lines now); a draft, which may be stale until recomputed, and an open month with fresh ones."""
    now = now or timezone.now()
    start, end = period_bounds(period)
    run = run_for_period(period=period)
    computed = compute_lines(period=period)
    closed = run is not None and run.status == RunStatus.CLOSED
    lines = list(run.lines.all()) if closed else computed
    result = Reconciliation(period=period, status=run.status if run else "open")
    if closed:
        stored, fresh = _comparable(lines), _comparable(computed)
        if stored != fresh:
            result.problems.append(
                f"{period:%Y-%m}: the run's lines differ from the ledger's ({len(stored ^ fresh)} lines differ)"
            )
    opening, closing = liability_at(start), liability_at(min(end, now))
    signs = LIABILITY_SIGNS
    moves: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in lines:
        if line.kind in signs:
            moves[line.payer_id][line.kind] += line.points
    codes = dict(BusinessUnit.objects.values_list("id", "code"))
    for bu_id in sorted(set(opening) | set(closing) | set(moves)):
        row = {"opening": opening.get(bu_id, 0), **{kind.value: moves[bu_id][kind] for kind in signs}}
        row["closing"] = row["opening"] + sum(sign * row[kind.value] for kind, sign in signs.items())
        row["lots"] = closing.get(bu_id, 0)
        result.rows[bu_id] = row
        if row["closing"] != row["lots"]:
            result.problems.append(
                f"{period:%Y-%m} {codes.get(bu_id, bu_id)}: closing liability {row['closing']} != lots' remaining "
                f"points {row['lots']} (difference {row['closing'] - row['lots']:+d})"
            )
    payables = sum((line.amount_cny for line in lines if line.kind == LineKind.CLEARING), Decimal("0"))
    receivables = _receivables(start=start, end=end)
    if payables != receivables:
        result.problems.append(
            f"{period:%Y-%m}: the matrix's payables {payables} != receivables {receivables} "
            f"(difference {payables - receivables})"
        )
    return result


def _receivables(*, start: datetime, end: datetime) -> Decimal:
    """What the redeeming BUs are owed, summed from the redeemers' side of the clearing lines."""
    total = Decimal("0")
    for redeemer_id, issuer_id, amount in (
        ClearingLine.objects.filter(created_at__gte=start, created_at__lt=end, redeemer__isnull=False,
                                    kind__in=[ClearingKind.REDEMPTION, ClearingKind.REVERSAL])
        .values("redeemer_id", "issuer_id").annotate(s=Sum("amount_cny")).values_list("redeemer_id", "issuer_id", "s")
    ):
        if redeemer_id != issuer_id:
            total += amount
    return total


def _comparable(lines) -> set[tuple]:
    return {
        (line.kind, line.payer_id, line.payee_id, line.merchant_id, line.points, line.amount_cny, line.source,
         line.source_count, line.first_source_id, line.last_source_id, line.original_period, line.original_posting_id)
        for line in lines
    }


def matrix(*, run: SettlementRun) -> tuple[list[BusinessUnit], list[BusinessUnit], dict[tuple[int, int], Decimal]]:
    """The run's inter-BU matrix: issuers (rows), redeemers (columns) and the amount of each pair."""
    cells = {(line.payer_id, line.payee_id): line.amount_cny for line in run.lines.filter(kind=LineKind.CLEARING)}
    units = {unit.pk: unit for unit in BusinessUnit.objects.filter(pk__in={bu for pair in cells for bu in pair})}
    rows = sorted({units[payer] for payer, _payee in cells}, key=lambda unit: unit.code)
    columns = sorted({units[payee] for _payer, payee in cells}, key=lambda unit: unit.code)
    return rows, columns, cells


def business_unit_statements(*, business_unit: BusinessUnit, period: date | None = None):
    """The closed runs' lines that concern a BU (as payer or payee), for its partner API."""
    lines = (
        SettlementLine.objects.filter(run__status=RunStatus.CLOSED)
        .filter(Q(payer=business_unit) | Q(payee=business_unit))
        .select_related("run", "payer", "payee", "merchant")
        .order_by("-run__period", "kind", "id")
    )
    if period is not None:
        lines = lines.filter(run__period=period.replace(day=1))
    return lines

"""Merchant co-funding: the lines of a period for earning rules co-funded by a merchant.

A rule's co-funding (merchant and share, points.models.EarningRule, fixed once the rule exists)
says the merchant pays that share of the cost of the points the rule gives. Which rule gave how
many points of an earn is the earn's explanation (points.earning), so:

* **co_funding** (payer: the issuing BU, merchant: the co-funder): the points the rule gave in
  the period's earns x the BU's clearing value (the period's last day, as issuance) x the
  share. The merchant owes the BU this amount (the line's direction is merchant -> BU). A tier
  bonus on those points is the group's, not the merchant's.
* **co_funded_breakage** (same payer and merchant): of the period's expired points, the
  co-funded part: each expired lot counts its earn's co-funded fraction (rule points / earn
  points), valued the same way. It reports what of the co-funded cost ended as breakage; it
  owes nothing.

A refund of a co-funded earn is a reclaim of the issuer's and does not reduce the co-funding
owed (finance settles such refunds with the merchant outside the run).
"""

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import reduce
from operator import or_

from django.db import connection
from django.db.models import Q

from points.models import EarningRule, LotMovement, Posting, PostingKind
from settlement.models import LineKind, SettlementLine, SourceKind
from settlement.periods import cny


def co_funded_rules() -> dict[str, tuple[int, Decimal]]:
    """Rule code -> (co-funding merchant id, share) of every co-funded rule, active or not."""
    return {
        code: (merchant_id, share)
        for code, merchant_id, share in EarningRule.objects.filter(co_funding_merchant__isnull=False)
        .values_list("code", "co_funding_merchant_id", "co_funding_share")
    }


def _explained_by(prefix: str, codes) -> Q:
    """PostgreSQL narrows to the postings whose explanation names a co-funded rule (jsonb @>);
    elsewhere (the SQLite demo) every posting is read and filtered in Python."""
    if connection.vendor != "postgresql":
        return Q()
    return reduce(or_, (Q(**{f"{prefix}explanation__contains": [{"rule": code}]}) for code in codes))


def co_funding_lines(*, start: datetime, end: datetime, rate: Callable[[int], Decimal]) -> list[SettlementLine]:
    """The co_funding and co_funded_breakage lines of [start, end) (none without co-funded rules)."""
    rules = co_funded_rules()
    if not rules:
        return []
    issued: dict[tuple, dict] = {}
    earns = Posting.objects.filter(kind=PostingKind.EARN, created_at__gte=start, created_at__lt=end).filter(
        _explained_by("", rules))
    for posting_id, bu_id, explanation in earns.values_list("id", "business_unit_id", "explanation").iterator():
        for item in explanation or []:
            if item.get("rule") in rules and item.get("points"):
                _add(issued, (bu_id, *rules[item["rule"]]), Decimal(item["points"]), posting_id)
    expired: dict[tuple, dict] = {}
    movements = LotMovement.objects.filter(
        posting__kind=PostingKind.EXPIRE, posting__created_at__gte=start, posting__created_at__lt=end,
        lot__posting__kind=PostingKind.EARN,
    ).filter(_explained_by("lot__posting__", rules))
    for posting_id, amount, bu_id, earn_points, explanation in movements.values_list(
        "posting_id", "amount", "lot__business_unit_id", "lot__posting__points", "lot__posting__explanation",
    ).iterator():
        for item in explanation or []:
            if item.get("rule") in rules and item.get("points") and earn_points > 0:
                share_of_lot = Decimal(-amount) * Decimal(item["points"]) / Decimal(earn_points)
                _add(expired, (bu_id, *rules[item["rule"]]), share_of_lot, posting_id)
    return (_lines(LineKind.CO_FUNDING, issued, rate) + _lines(LineKind.CO_FUNDED_BREAKAGE, expired, rate))


def _add(into: dict, key: tuple, points: Decimal, posting_id: int) -> None:
    row = into.setdefault(key, {"points": Decimal("0"), "ids": set()})
    row["points"] += points
    row["ids"].add(posting_id)


def _lines(kind: str, totals: dict[tuple, dict], rate) -> list[SettlementLine]:
    """One line per (BU, merchant): each share valued on its own, to the cent, then summed."""
    merged: dict[tuple[int, int], dict] = {}
    for (bu_id, merchant_id, share), row in sorted(totals.items()):
        into = merged.setdefault((bu_id, merchant_id), {"points": Decimal("0"), "amount": Decimal("0"), "ids": set()})
        into["points"] += row["points"]
        into["amount"] += cny(row["points"], rate(bu_id) * share)
        into["ids"] |= row["ids"]
    return [
        SettlementLine(
            kind=kind, payer_id=bu_id, merchant_id=merchant_id, points=int(row["points"].to_integral_value()),
            amount_cny=row["amount"], source=SourceKind.POSTING, source_count=len(row["ids"]),
            first_source_id=min(row["ids"]), last_source_id=max(row["ids"]),
        )
        for (bu_id, merchant_id), row in sorted(merged.items())
    ]

"""What a statement or reminder message says: the context its templates are rendered with.

A context is a plain JSON dict (it is stored on the notification log, so a retry and the
console's preview see exactly what was sent), built in the member's language: labels of
sources, business unit names and the tier line are resolved here.
"""

from decimal import Decimal

from django.utils import translation
from django.utils.translation import gettext as _

from members.models import BusinessUnit
from members.notifications.services import app_link, member_fields
from points.models import EventType
from points.policies import TierProgressInfo
from points.statements.models import Statement
from points.statements.selectors import GROUP_WIDE

SOURCE_LABELS = dict(EventType.choices)


def statement_link(period: str) -> str:
    return app_link(f"statements/{period}")


def tier_snapshot(progress: TierProgressInfo | None) -> dict | None:
    """The tier as a statement stores it (JSON: decimals as strings, whole points as integers)."""
    if progress is None:
        return None

    def amount(value: Decimal | None):
        if value is None:
            return None
        return int(value) if progress.basis == "points" else str(value)

    return {
        "code": progress.code, "name": progress.name, "basis": progress.basis,
        "qualifying_value": amount(progress.qualifying_value), "next_code": progress.next_code,
        "next_name": progress.next_name, "remaining": amount(progress.remaining),
    }


def tier_line(tier: dict | None) -> str:
    """E.g. "120 points to Gold", in the active language; "" without a tier programme."""
    if not tier:
        return ""
    if not tier.get("next_name"):
        return _("Top tier reached") if tier.get("code") else ""
    if tier.get("basis") == "points":
        return _("%(remaining)s points to %(tier)s") % {"remaining": tier["remaining"], "tier": tier["next_name"]}
    return _("¥%(remaining)s to %(tier)s") % {"remaining": tier["remaining"], "tier": tier["next_name"]}


def _named(amounts: dict, names: dict) -> list[dict]:
    return [{"label": names.get(key, key), "points": points} for key, points in amounts.items()]


def _redeemed_rows(statement: Statement, names: dict) -> list[dict]:
    """Each business unit's redemptions, split by channel (mall orders, payments, plain spends)."""
    split = statement.redeemed_by_business_unit_and_channel or {}
    return [
        {"label": names.get(code, code), "points": points, "mall_orders": split.get(code, {}).get("mall_order", 0),
         "payments": split.get(code, {}).get("payment", 0), "spends": split.get(code, {}).get("spend", 0)}
        for code, points in statement.redeemed_by_business_unit.items()
    ]


def statement_context(statement: Statement, *, units: dict[str, str]) -> dict:
    """The statement's message context; `units` maps business unit codes to names."""
    member = statement.member
    with translation.override(member.language):
        units = {GROUP_WIDE: _("Group-wide"), **units}
        return {
            **member_fields(member),
            "period": statement.period, "year": int(statement.period[:4]), "month": int(statement.period[5:]),
            "opening_balance": statement.opening_balance, "closing_balance": statement.closing_balance,
            "earned": statement.earned, "redeemed": statement.redeemed, "cancelled": statement.cancelled,
            "refunded": statement.refunded, "expired": statement.expired, "adjusted": statement.adjusted,
            "transferred": statement.transferred,
            "debt_repaid": statement.debt_repaid, "debt": statement.closing_debt,
            "earned_by_source": _named(
                statement.earned_by_source, {"other": _("Other"), **{key: str(label) for key, label in SOURCE_LABELS.items()}}
            ),
            "earned_by_business_unit": _named(statement.earned_by_business_unit, units),
            "redeemed_by_business_unit": _redeemed_rows(statement, units),
            "expiring_30_days": statement.expiring_30_days, "expiring_60_days": statement.expiring_60_days,
            "tier": statement.tier, "tier_line": tier_line(statement.tier),
            "link": statement_link(statement.period),
        }


def unit_names(codes: set[str]) -> dict[str, str]:
    return dict(BusinessUnit.objects.filter(code__in=codes).values_list("code", "name"))

"""Bulk earn: up to a thousand purchases in one call, each an earn of its own.

Each item runs through points_earn in its own durable transaction with its own idempotency
key, so an item is all-or-nothing and one bad item never holds back or undoes another. The
caller gets one outcome per item, in order. Retrying a whole batch is safe: the items that
were written replay (same posting, nothing posted again) and the others are tried afresh.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils.translation import gettext as _

from config.errors import DomainError
from members.models import BusinessUnit, Merchant
from members.selectors import merchant_for_partner
from points.models import Posting
from points.services import Idempotency, points_earn


@dataclass(frozen=True)
class EarnBatchItem:
    idempotency_key: str
    member_id: int
    amount_cny: Decimal
    receipt_no: str
    merchant_code: str = ""
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RejectedItem:
    """An item the caller found malformed before any write; it is reported with its error."""

    idempotency_key: str | None
    error: dict


@dataclass(frozen=True)
class EarnBatchOutcome:
    idempotency_key: str | None
    status: str
    posting: Posting | None = None
    error: dict | None = None


CREATED, REPLAYED, ERROR = "created", "replayed", "error"


def _merchant_error(code: str) -> dict:
    message = _("No active merchant of this business unit has this code.") if code else _("This field is required.")
    return {"code": "invalid", "detail": _("Invalid input."), "fields": {"merchant": [message]}}


def points_earn_batch(
    *,
    items: list[EarnBatchItem | RejectedItem],
    business_unit: BusinessUnit,
    key_merchant: Merchant | None,
    scope: str,
) -> list[EarnBatchOutcome]:
    """Earn for every item of a partner's batch; one outcome per item, in the items' order.

    `business_unit` and `key_merchant` are the partner key's scope (merchant codes resolve
    within it, as for a single earn); `scope` is its idempotency scope, shared with single earns,
    so an item retried through the single endpoint replays too.
    """
    merchants: dict[str, Merchant | None | DomainError] = {}
    outcomes = []
    for item in items:
        if isinstance(item, RejectedItem):
            outcomes.append(EarnBatchOutcome(idempotency_key=item.idempotency_key, status=ERROR, error=item.error))
            continue
        if item.merchant_code not in merchants:
            try:
                merchants[item.merchant_code] = merchant_for_partner(
                    business_unit=business_unit, key_merchant=key_merchant, code=item.merchant_code
                )
            except DomainError as exc:
                merchants[item.merchant_code] = exc
        merchant = merchants[item.merchant_code]
        if merchant is None or isinstance(merchant, DomainError):
            error = _merchant_error(item.merchant_code) if merchant is None else merchant.as_dict()
            outcomes.append(EarnBatchOutcome(idempotency_key=item.idempotency_key, status=ERROR, error=error))
            continue
        try:
            result = points_earn(
                member_id=item.member_id,
                business_unit=business_unit,
                merchant=merchant,
                amount_cny=item.amount_cny,
                receipt_no=item.receipt_no,
                occurred_at=item.occurred_at,
                idempotency=Idempotency(scope=scope, key=item.idempotency_key),
            )
        except DomainError as exc:
            outcomes.append(EarnBatchOutcome(idempotency_key=item.idempotency_key, status=ERROR, error=exc.as_dict()))
            continue
        outcomes.append(EarnBatchOutcome(
            idempotency_key=item.idempotency_key, status=REPLAYED if result.replayed else CREATED, posting=result.posting,
        ))
    return outcomes

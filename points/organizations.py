"""Organization wallets (To-B): a tenant company's own points account in the same ledger.

An organization's wallet opens on its first use (`organization_wallet_open`). Its bills earn
into it (`organization_earn`: the earning rules price the event as for a member, without a
member's facts: no tier, tags, birthday or referral; the member earn gates and after-earn hooks,
which judge members, do not run). Its administrators (members with `is_organization_admin`)
distribute its points to employees (points.transfers.organization_distribute) and may pay its
property bills with them (mall's payments, holding the organization's wallet).
"""

from datetime import datetime
from decimal import Decimal

from django.db import transaction

from members.models import BusinessUnit, Member, Merchant, Organization
from points.earning import MAX_BACKDATE, record_rule_awards, checked_occurred_at, earn_plan, earn_validate
from points.exceptions import NotOrganizationAdmin
from points.ledger import (
    Idempotency,
    PostingResult,
    PostingRows,
    credit_rows,
    organization_wallet_lock,
    organization_wallet_open,
    posting_replay,
    posting_row,
    request_fingerprint,
    run_idempotent,
    write_posting,
)
from points.models import Account, EventType, PostingKind, Wallet
from points.selectors import Balance, wallet_balance


def organization_of_admin(*, member: Member) -> Organization:
    """The organization `member` administers; NotOrganizationAdmin when none."""
    if not member.is_organization_admin or member.organization_id is None:
        raise NotOrganizationAdmin()
    return Organization.objects.get(pk=member.organization_id)


def organization_balance(*, organization: Organization) -> Balance:
    """The organization wallet's points by state (all zero before its first use)."""
    wallet = Wallet.objects.filter(organization=organization).first() or Wallet(organization=organization)
    return wallet_balance(wallet=wallet)


def organization_earn(
    *, organization: Organization, business_unit: BusinessUnit, merchant: Merchant | None = None,
    amount_cny: Decimal | None = None, points: int | None = None, event_type: str | None = EventType.BILL,
    receipt_no: str = "", reason: str = "", occurred_at: datetime | None = None,
    idempotency: Idempotency | None = None, actor=None,
) -> PostingResult:
    """Credit the organization's wallet for one event (a bill it paid), priced by the earning
    rules. An event that earns nothing writes nothing (posting None)."""
    event_type = earn_validate(amount_cny=amount_cny, points=points, event_type=event_type)
    occurred_at = checked_occurred_at(occurred_at, MAX_BACKDATE)
    organization_wallet_open(organization)
    fingerprint = request_fingerprint(
        "organization_earn", organization=organization.pk, bu=business_unit.pk,
        merchant=merchant.pk if merchant else None, amount_cny=str(amount_cny) if amount_cny is not None else None,
        points=points, receipt_no=receipt_no, reason=reason, event_type=event_type,
    )

    def write() -> PostingResult:
        with transaction.atomic(durable=True):
            wallet = organization_wallet_lock(organization_id=organization.pk)
            if replay := posting_replay(idempotency, fingerprint):
                return PostingResult(posting=replay, wallet=wallet, replayed=True)
            plan = earn_plan(
                wallet=wallet, business_unit=business_unit, merchant=merchant, event_type=event_type,
                amount_cny=amount_cny, points=points, occurred_at=occurred_at, tier=None, hold_until=None,
                lock_budgets=True,
            )
            if not plan.points:
                return PostingResult(posting=None, wallet=wallet)
            posting = posting_row(
                wallet=wallet, kind=PostingKind.EARN, points=plan.points, idempotency=idempotency,
                fingerprint=fingerprint, occurred_at=occurred_at, business_unit=business_unit, merchant=merchant,
                amount_cny=amount_cny, receipt_no=receipt_no, reason=reason, explanation=plan.explanation,
                actor=actor, event_type=event_type,
            )
            lots, entries = credit_rows(
                posting=posting, wallet=wallet, parts=plan.lots, business_unit=business_unit, merchant=merchant,
                source_account=Account.ISSUANCE, earned_at=occurred_at,
            )
            write_posting(PostingRows(posting=posting, wallet=wallet, lots=lots, movements=[], entries=entries,
                                      changed_lots=[]))
            record_rule_awards(posting=posting, wallet=wallet, plan=plan, earned_at=occurred_at)
            return PostingResult(posting=posting, wallet=wallet)

    return run_idempotent(idempotency, fingerprint, write)

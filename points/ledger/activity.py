"""Activity-extended expiry: under an "activity extends" policy, every qualifying activity of a
member pushes the expiry of their open lots under that policy forward."""

from datetime import datetime

from points.ledger.writer import write_lot_expiry_changes
from points.models import ExpiryKind, Lot, LotExpiryChange, Posting, Wallet
from points.policies import member_tier
from points.rules.engine import PolicySpec, activity_extended_expiry
from points.rules.selectors import rule_config

UNKNOWN = object()


def lots_extend_for_activity(*, wallet: Wallet, at: datetime, posting: Posting, tier=UNKNOWN) -> int:
    """A qualifying activity (an earn, a spend, a hold's capture): push forward the expiry of the
    wallet's open lots under an activity-extends policy. Nothing is read when no such policy
    exists. `tier` is the member's (points.policies.member_tier), when the caller has it; an
    organization's wallet has none.

    The caller holds the wallet lock. An expiry only ever moves later; each move is recorded
    (LotExpiryChange). Lots already past their expiry at `at` are left to the expiry job. A lot
    available only at its expiry (held for review) moves its availability with it.
    """
    if not rule_config().activity_extends:
        return 0
    if tier is UNKNOWN:
        tier = member_tier(wallet.member, at) if wallet.member_id is not None else None
    lots = list(
        Lot.objects.filter(
            wallet=wallet, remaining__gt=0, expires_at__gte=at, expiry_policy__kind=ExpiryKind.ACTIVITY_EXTENDS
        ).select_related("expiry_policy")
    )
    changes = []
    for lot in lots:
        extended = activity_extended_expiry(PolicySpec.from_model(lot.expiry_policy), activity_at=at, tier=tier)
        if extended > lot.expires_at:
            changes.append(LotExpiryChange(
                lot=lot, posting=posting, previous_expires_at=lot.expires_at, expires_at=extended,
                reason=f"activity at {at.isoformat()}",
            ))
            if lot.available_at == lot.expires_at:  # held for review (points.policies): it stays held
                lot.available_at = extended
            lot.expires_at = extended
    write_lot_expiry_changes(changes)
    return len(changes)

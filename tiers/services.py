"""Writes on tiers: immediate upgrade, requalification with a grace period, tiers set by hand.

Policy
------
* Upgrade at once: after every earn (points' after-earn hook, inside the earn transaction) the
  member's qualifying value is recomputed and, if it reaches a higher level, the member moves
  up there and then. The earn that crosses the threshold is itself credited at the old tier's
  multiplier; the next one gets the new tier's.
* Downgrade only at requalification (the daily job): a member found below their level is
  marked (`below_since`) and keeps the level for the programme's `grace_days`; a requalification
  on or after the end of the grace period that still finds them below moves them down to the
  level their value earns. Climbing back above the level meanwhile clears the mark.
* A tier set by hand overrides the earned level until its end date; the earned level keeps
  being evaluated underneath and applies again once the override ends.

Locks: every write on a member's tier holds the member's wallet row (points' lock helper), then
the member-tier row, in that order. The after-earn hook runs with the wallet already locked, so
an earn and a requalification of the same member never interleave.
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from points.ledger.sql import bulk_update_rows
from members.models import Member
from points.exceptions import ReasonRequired
from points.models import Posting, Wallet
from points.policies import EarnDone, TierInfo
from points.ledger import wallet_lock
from tiers.exceptions import ManualTierEndInPast, NoTierProgramme, TierLevelNotInProgramme
from tiers.models import MemberTier, TierChange, TierChangeKind, TierLevel
from tiers.notifications import tier_downgrade_warnings_queue
from tiers.selectors import (
    active_programme,
    level_for_value,
    programme_levels,
    qualifying_value,
    qualifying_values,
    rank_of,
)

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500


def _member_tier_for_update(*, member_id: int, now: datetime) -> MemberTier | None:
    """The member's tier row, locked, on the active programme; created (below every level) on
    first use; None without an active programme. The caller holds the member's wallet lock,
    which makes the creation race-free."""
    member_tier = (
        MemberTier.objects.select_for_update(of=("self",))
        .select_related("programme", "level", "override_level")
        .filter(member_id=member_id)
        .first()
    )
    if member_tier is not None:
        if not member_tier.programme.is_active:
            _move_to_active_programme(member_tier, at=now)
        return member_tier if member_tier.programme.is_active else None
    programme = active_programme()
    if programme is None:
        return None
    return MemberTier.objects.create(member_id=member_id, programme=programme, since=now, evaluated_at=now)


def _move_to_active_programme(member_tier: MemberTier, *, at: datetime) -> None:
    """Put a member whose programme was retired on the active one, at the level their value
    earns there. Levels of two programmes do not compare, so this is neither an upgrade nor a
    downgrade and no grace applies; a manual tier (a level of the old programme) ends here."""
    programme = active_programme()
    if programme is None:
        return
    value = qualifying_value(member_id=member_tier.member_id, programme=programme, at=at)
    level = level_for_value(levels=programme_levels(programme=programme), value=value)
    member_tier.qualifying_value = value
    _record(member_tier, kind=TierChangeKind.PROGRAMME, from_level=member_tier.effective_level(at), to_level=level,
            at=at)
    member_tier.programme = programme
    member_tier.level = level
    member_tier.since = at
    member_tier.below_since = None
    member_tier.evaluated_at = at
    _clear_override(member_tier)
    member_tier.save()


def _clear_override(member_tier: MemberTier) -> None:
    member_tier.override_level = None
    member_tier.override_reason = ""
    member_tier.override_ends_at = None
    member_tier.override_set_by = None


def _change(member_tier, *, kind, from_level, to_level, at, reason="", actor=None) -> TierChange:
    """A tier change to record (unsaved), with the member's qualifying value as it stands."""
    return TierChange(
        member_id=member_tier.member_id, kind=kind, from_level=from_level, to_level=to_level, reason=reason,
        actor=actor, qualifying_value=member_tier.qualifying_value, at=at,
    )


def _record(member_tier, **change) -> TierChange:
    recorded = _change(member_tier, **change)
    recorded.save()
    return recorded


def _move(member_tier: MemberTier, *, to_level: TierLevel | None, kind: str, at: datetime) -> TierChange:
    change = _change(member_tier, kind=kind, from_level=member_tier.level, to_level=to_level, at=at)
    member_tier.level = to_level
    member_tier.since = at
    member_tier.below_since = None
    return change


def _reevaluate(
    member_tier: MemberTier, *, value, at: datetime, requalify: bool, levels: list[TierLevel] | None = None
) -> list[TierChange]:
    """Move the member's earned level for their qualifying `value` (in memory): the changes to record.

    Upgrades always apply; downgrades only when `requalify` and after the grace period.
    `levels` are the programme's, when the caller has them at hand.
    """
    programme = member_tier.programme
    member_tier.qualifying_value = value
    member_tier.evaluated_at = at
    qualified = level_for_value(levels=levels or programme_levels(programme=programme), value=value)
    changes = []
    if rank_of(qualified) > rank_of(member_tier.level):
        changes.append(_move(member_tier, to_level=qualified, kind=TierChangeKind.UPGRADE, at=at))
    elif rank_of(qualified) == rank_of(member_tier.level):
        member_tier.below_since = None
    elif requalify:
        member_tier.below_since = member_tier.below_since or at
        if at >= member_tier.below_since + timedelta(days=programme.grace_days):
            changes.append(_move(member_tier, to_level=qualified, kind=TierChangeKind.DOWNGRADE, at=at))
    if requalify and member_tier.override_level_id and not member_tier.override_active(at):
        changes.append(_change(member_tier, kind=TierChangeKind.OVERRIDE_END, from_level=member_tier.override_level,
                               to_level=member_tier.level, at=at, reason=member_tier.override_reason))
        _clear_override(member_tier)
    return changes


EVALUATED_FIELDS = ["level", "since", "below_since", "qualifying_value", "evaluated_at"]


def _evaluate(
    *, member_id: int, at: datetime, requalify: bool, member_tier: MemberTier | None = None
) -> MemberTier | None:
    """Recompute the member's qualifying value and move their earned level, recorded.

    The caller holds the member's wallet lock; `member_tier` is the member's row on the active
    programme when the caller read it under that lock already.
    """
    member_tier = member_tier or _member_tier_for_update(member_id=member_id, now=at)
    if member_tier is None:
        return None
    value = qualifying_value(member_id=member_id, programme=member_tier.programme, at=at)
    TierChange.objects.bulk_create(_reevaluate(member_tier, value=value, at=at, requalify=requalify))
    if requalify or member_tier.pk is None:
        member_tier.save()
    else:
        bulk_update_rows(MemberTier, [member_tier], EVALUATED_FIELDS)  # what an upgrade check can change
    return member_tier


def tier_after_earn(*, posting: Posting, wallet: Wallet, tier: TierInfo | None) -> None:
    """points' after-earn hook: upgrade the member at once if the earn made them qualify.

    Runs inside the earn transaction with the wallet row locked; costs one aggregate query and
    the row's write, the row itself coming from the tier provider's read for this earn (a new
    unsaved row when the member has none yet; read again here when the provider passed none).
    """
    now = timezone.now()
    member_tier = tier.provider_state if tier is not None else None
    if member_tier is not None and member_tier.pk is None:
        member_tier.since = member_tier.evaluated_at = now
    _evaluate(member_id=wallet.member_id, at=now, requalify=False, member_tier=member_tier)


def tier_after_earn_many(earns: list[EarnDone]) -> None:
    """tier_after_earn for the bulk earn's earns of distinct members: one aggregate per programme
    for all of them, then the new rows, the changed rows and the tier changes written in bulk."""
    now = timezone.now()
    by_programme: dict[int, list[MemberTier]] = {}
    for earn in earns:
        member_tier = earn.tier.provider_state if earn.tier is not None else None
        if member_tier is None:
            tier_after_earn(posting=earn.posting, wallet=earn.wallet, tier=earn.tier)
            continue
        if member_tier.pk is None:
            member_tier.since = member_tier.evaluated_at = now
        by_programme.setdefault(member_tier.programme_id, []).append(member_tier)
    changes, created, updated = [], [], []
    for member_tiers in by_programme.values():
        programme = member_tiers[0].programme
        values = qualifying_values(
            member_ids=[member_tier.member_id for member_tier in member_tiers], programme=programme, at=now,
        )
        levels = programme_levels(programme=programme)
        for member_tier in member_tiers:
            changes += _reevaluate(
                member_tier, value=values[member_tier.member_id], at=now, requalify=False, levels=levels
            )
            (updated if member_tier.pk else created).append(member_tier)
    MemberTier.objects.bulk_create(created)
    bulk_update_rows(MemberTier, updated, EVALUATED_FIELDS)
    TierChange.objects.bulk_create(changes)


def tier_evaluate(*, member: Member) -> MemberTier | None:
    """Upgrade the member now if they qualify for a higher level; never downgrades."""
    with transaction.atomic(durable=True):
        wallet_lock(member_id=member.pk)
        return _evaluate(member_id=member.pk, at=timezone.now(), requalify=False)


def tier_requalify(*, member_id: int, now: datetime) -> MemberTier | None:
    """Requalify one member: upgrade, start or finish a downgrade's grace, end an expired manual tier.

    Running it again with the same `now` changes nothing more, so a rerun of the job is harmless.
    """
    with transaction.atomic(durable=True):
        wallet_lock(member_id=member_id)
        return _evaluate(member_id=member_id, at=now, requalify=True)


def tier_requalify_batch(
    *, now: datetime, after_member_id: int = 0, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[int, int | None]:
    """Requalify the next `batch_size` members after `after_member_id`, each in its own transaction.

    Returns (members requalified, cursor for the next batch or None when none is left). A member
    whose requalification fails is logged and skipped; the others go on. Then the members of the
    batch in a downgrade's grace are warned (tiers.notifications: once per grace period).
    """
    member_ids = list(
        Member.objects.filter(pk__gt=after_member_id).order_by("pk").values_list("pk", flat=True)[:batch_size]
    )
    done = 0
    for member_id in member_ids:
        try:
            tier_requalify(member_id=member_id, now=now)
            done += 1
        except Exception:
            logger.exception("tier requalification failed for member %s", member_id)
    try:
        tier_downgrade_warnings_queue(member_ids=member_ids, now=now)
    except Exception:
        # The tiers are requalified and committed; the next run queues the warnings still missing.
        logger.exception("tier downgrade warnings failed for the members after %s", after_member_id)
    cursor = member_ids[-1] if len(member_ids) == batch_size else None
    return done, cursor


def tier_set_manual(*, member_id: int, level: TierLevel, reason: str, ends_at: datetime, actor) -> MemberTier:
    """An operator puts the member in `level` until `ends_at`, whatever they qualify for.

    The earned level keeps being evaluated underneath; the requalification job after `ends_at`
    records the end and the member is back at the level they earned.
    """
    if not reason or not reason.strip():
        raise ReasonRequired()
    now = timezone.now()
    if ends_at <= now:
        raise ManualTierEndInPast()
    with transaction.atomic(durable=True):
        wallet_lock(member_id=member_id)
        member_tier = _member_tier_for_update(member_id=member_id, now=now)
        if member_tier is None:
            raise NoTierProgramme()
        if level.programme_id != member_tier.programme_id:
            raise TierLevelNotInProgramme()
        _record(member_tier, kind=TierChangeKind.MANUAL, from_level=member_tier.effective_level(now), to_level=level,
                at=now, reason=reason, actor=actor)
        member_tier.override_level = level
        member_tier.override_reason = reason
        member_tier.override_ends_at = ends_at
        member_tier.override_set_by = actor
        member_tier.save(update_fields=["override_level", "override_reason", "override_ends_at", "override_set_by"])
        return member_tier

"""Reads on tiers: the qualifying value, the level it earns, and a member's progress."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from config.cache import VersionedCache
from config.errors import NotFound
from members.models import Member
from points.policies import TierInfo, TierProgressInfo
from points.timeutils import group_timezone, local_date
from tiers.models import MemberTier, QualificationBasis, TierLevel, TierProgramme

CENT = Decimal("0.01")


@dataclass(frozen=True)
class TierConfig:
    programme: TierProgramme | None
    levels: tuple[TierLevel, ...]


def _tier_config_load() -> TierConfig:
    programme = TierProgramme.objects.filter(is_active=True).first()
    return TierConfig(programme=programme, levels=tuple(programme.levels.order_by("rank")) if programme else ())


# The active programme and its levels, read on every earn; invalidated by any change of a
# programme or level (TiersConfig.ready).
tier_configs = VersionedCache("tiers", _tier_config_load)


def active_programme() -> TierProgramme | None:
    return tier_configs.get().programme


def programme_levels(*, programme: TierProgramme) -> list[TierLevel]:
    config = tier_configs.get()
    if config.programme is not None and config.programme.pk == programme.pk:
        return list(config.levels)
    return list(programme.levels.order_by("rank"))


def window_start(*, programme: TierProgramme, at: datetime) -> datetime:
    """Midnight, in the group's time zone, of the same calendar day `window_months` before `at`.

    At 2026-11-22 15:00 Shanghai with 12 months the window opens 2025-11-22 00:00 Shanghai
    (2025-11-21 16:00 UTC): what counts is the group's calendar day, not the UTC date.
    """
    first_day = local_date(at) - relativedelta(months=programme.window_months)
    return datetime.combine(first_day, time.min, tzinfo=group_timezone())


def qualifying_value(*, member_id: int, programme: TierProgramme, at: datetime) -> Decimal:
    """Points earned (or CNY spent on earning purchases) in the window, minus refunds of them;
    earns held for review left out until released.

    One aggregate query over the member's earn postings in the window and the refunds of those
    earns made up to `at`. A refund takes back its share of the purchase amount in proportion to
    the points it reverses. Spends, expiry and adjustments do not count: the balance is irrelevant.
    """
    return qualifying_values(member_ids=[member_id], programme=programme, at=at)[member_id]


# qualifying_values in SQL: it runs in every earn and every tier read, and building it through
# the ORM cost more than running it. Refunds count when the earn they reverse is in the window.
# An earn held for review counts for nothing, nor do its refunds, until it is released: its lots
# are available only at their expiry (points.policies: an earn gate's hold is capped there), so
# an earn with such a lot is left out; approval moves its lots earlier and it counts from then.
QUALIFYING_SQL = """
SELECT w.member_id, SUM({value})
FROM points_posting p
JOIN points_wallet w ON w.id = p.wallet_id
LEFT JOIN points_posting original ON original.id = p.reverses_id
WHERE w.member_id IN ({members})
  AND ((p.kind = 'earn' AND p.occurred_at >= %(start)s AND p.occurred_at <= %(at)s)
    OR (p.kind = 'refund' AND p.occurred_at <= %(at)s
        AND original.occurred_at >= %(start)s AND original.occurred_at <= %(at)s))
  AND NOT EXISTS (
    SELECT 1 FROM points_lot held
    WHERE held.posting_id = COALESCE(original.id, p.id) AND held.available_at >= held.expires_at
  )
GROUP BY w.member_id
"""
# A refund's points are the member's side only; what it reverses is its issuance entry (the part
# reclaimed from breakage, after the earn's points expired, included): a refunded purchase never
# keeps its qualifying points.
REFUNDED = "(SELECT -e.amount FROM points_entry e WHERE e.posting_id = p.id AND e.account = 'issuance')"
QUALIFYING_POINTS = f"CASE WHEN p.kind = 'earn' THEN p.points ELSE {REFUNDED} END"
# A refund takes back its share of the purchase amount, in proportion to the points it reverses.
QUALIFYING_SPEND = (
    "CASE WHEN p.kind = 'earn' THEN COALESCE(p.amount_cny, 0) "
    f"ELSE original.amount_cny * {REFUNDED} / original.points END"
)


def qualifying_values(*, member_ids: list[int], programme: TierProgramme, at: datetime) -> dict[int, Decimal]:
    """qualifying_value of each member of `member_ids`, in one aggregate query grouped by member."""
    points = programme.basis == QualificationBasis.POINTS
    members = {f"member{number}": member_id for number, member_id in enumerate(member_ids)}
    sql = QUALIFYING_SQL.format(
        value=QUALIFYING_POINTS if points else QUALIFYING_SPEND,
        members=", ".join(f"%({name})s" for name in members),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {**members, "start": window_start(programme=programme, at=at), "at": at})
        # str(): SQLite sums a decimal column as a float; its shortest form is the exact amount.
        found = {member_id: Decimal(str(total or 0)) for member_id, total in cursor.fetchall()}
    if points:
        return {member_id: found.get(member_id, Decimal("0")) for member_id in member_ids}
    return {
        member_id: found.get(member_id, Decimal("0")).quantize(CENT, rounding=ROUND_HALF_UP)
        for member_id in member_ids
    }


def level_for_value(*, levels: list[TierLevel], value: Decimal) -> TierLevel | None:
    """The highest-ranked level whose threshold the value reaches (None below every threshold)."""
    reached = [level for level in levels if level.threshold <= value]
    return max(reached, key=lambda level: level.rank) if reached else None


def rank_of(level: TierLevel | None) -> int:
    return -1 if level is None else level.rank


@dataclass(frozen=True)
class TierProgress:
    programme: TierProgramme
    qualifying_value: Decimal
    window_start: datetime
    window_end: datetime
    level: TierLevel | None
    earned_level: TierLevel | None
    override_ends_at: datetime | None
    next_level: TierLevel | None
    remaining: Decimal | None
    downgrade_due_at: datetime | None

    @property
    def text(self) -> str:
        """E.g. "120 points to Gold", "¥350.00 to Gold", or that the top tier is reached."""
        if self.next_level is None:
            return _("Top tier reached") if self.level is not None else ""
        if self.programme.basis == QualificationBasis.POINTS:
            return _("%(remaining)s points to %(tier)s") % {"remaining": int(self.remaining), "tier": self.next_level.name}
        return _("¥%(remaining)s to %(tier)s") % {"remaining": self.remaining, "tier": self.next_level.name}


def tier_progress(*, member_id: int, at: datetime | None = None) -> TierProgress | None:
    """The member's tier, the next one and what is still needed; None without an active programme.

    Raises NotFound for an unknown member (looked up only when the member has no tier row)."""
    at = at or timezone.now()
    programme = active_programme()
    member_tier = member_tier_on_active(member_id=member_id)
    if member_tier is None and not Member.objects.filter(pk=member_id).exists():
        raise NotFound(_("Member not found."))
    if programme is None:
        return None
    value = qualifying_value(member_id=member_id, programme=programme, at=at)
    return _progress(programme=programme, levels=programme_levels(programme=programme), member_tier=member_tier,
                     value=value, at=at)


def _progress(*, programme: TierProgramme, levels: list[TierLevel], member_tier: MemberTier | None, value: Decimal,
              at: datetime) -> TierProgress:
    """The progress of a member with this tier row (None: none yet) and qualifying value."""
    if member_tier is None:
        earned = level_for_value(levels=levels, value=value)
        level, override_ends_at, downgrade_due_at = earned, None, None
    else:
        earned = member_tier.level
        level = member_tier.effective_level(at)
        override_ends_at = member_tier.override_ends_at if member_tier.override_active(at) else None
        downgrade_due_at = (
            member_tier.below_since + timedelta(days=programme.grace_days)
            if member_tier.below_since else None
        )
    higher = [candidate for candidate in levels if candidate.rank > rank_of(level)]
    next_level = higher[0] if higher else None
    remaining = max(next_level.threshold - value, Decimal("0")) if next_level else None
    return TierProgress(
        programme=programme, qualifying_value=value, window_start=window_start(programme=programme, at=at),
        window_end=at, level=level, earned_level=earned, override_ends_at=override_ends_at,
        next_level=next_level, remaining=remaining, downgrade_due_at=downgrade_due_at,
    )


def _progress_info(progress: TierProgress) -> TierProgressInfo:
    level, next_level = progress.level, progress.next_level
    return TierProgressInfo(
        code=level.code if level else "", name=level.name if level else "", basis=progress.programme.basis,
        qualifying_value=progress.qualifying_value, next_code=next_level.code if next_level else None,
        next_name=next_level.name if next_level else None, remaining=progress.remaining,
        downgrade_due_at=progress.downgrade_due_at,
    )


def tier_progress_info(member_id: int, at: datetime) -> TierProgressInfo | None:
    """points' tier progress provider (statements, near-upgrade nudges): `tier_progress` as plain
    values; None without an active programme or for an unknown member."""
    try:
        progress = tier_progress(member_id=member_id, at=at)
    except NotFound:
        return None
    return _progress_info(progress) if progress is not None else None


def tier_progress_info_many(member_ids: list[int], at: datetime) -> dict[int, TierProgressInfo | None]:
    """tier_progress_info of existing members at one moment: one query for their tier rows and
    one aggregate for their qualifying values, whatever their number (statement batches)."""
    programme = active_programme()
    if programme is None or not member_ids:
        return dict.fromkeys(member_ids)
    levels = programme_levels(programme=programme)
    rows = {
        row.member_id: _attach_programme(row, programme)
        for row in MemberTier.objects.filter(member_id__in=member_ids, programme_id=programme.pk)
    }
    values = qualifying_values(member_ids=member_ids, programme=programme, at=at)
    return {
        member_id: _progress_info(_progress(programme=programme, levels=levels, member_tier=rows.get(member_id),
                                            value=values[member_id], at=at))
        for member_id in member_ids
    }


def member_tier_history(*, member: Member):
    return member.tier_changes.select_related("from_level", "to_level").order_by("-at", "-id")


def _attach_programme(member_tier: MemberTier, programme: TierProgramme) -> MemberTier:
    """Give a tier row of the active programme that programme and its levels from the cache
    (no join to read them); a level the cache lacks is left to load on use."""
    levels = {level.pk: level for level in programme_levels(programme=programme)}
    member_tier.programme = programme
    for name in ("level", "override_level"):
        level = levels.get(getattr(member_tier, f"{name}_id"))
        if level is not None:
            setattr(member_tier, name, level)
    return member_tier


def member_tier_on_active(*, member_id: int) -> MemberTier | None:
    """The member's tier row if it is on the active programme."""
    programme = active_programme()
    if programme is None:
        return None
    member_tier = MemberTier.objects.filter(member_id=member_id, programme_id=programme.pk).first()
    return _attach_programme(member_tier, programme) if member_tier is not None else None


def tier_info(member: Member, at: datetime) -> TierInfo | None:
    """points' tier provider: the benefits of the member's effective tier at `at`.

    A member with no tier row on the active programme yet (nothing earned since tiers started,
    or a programme replaced since) gets the level their qualifying value earns on the active
    programme; the after-earn hook then records it. No active programme, no tier.

    The provider state handed to the after-earn hook is the row read here, or a new unsaved row
    when the member has none at all (the earn holds the wallet lock that every tier write takes
    first, so neither can change in between); None when the row is on a retired programme.
    """
    return tier_info_many([(member, at)])[0]


def tier_info_many(requests: list[tuple[Member, datetime]]) -> list[TierInfo | None]:
    """tier_info for each (member, at), in order, the members distinct: one query for the tier
    rows, and one aggregate per distinct `at` for the members with no row on the active programme."""
    programme = active_programme()
    if programme is None:
        return [None] * len(requests)
    rows = {
        member_tier.member_id: member_tier
        for member_tier in MemberTier.objects.filter(member_id__in={member.pk for member, _at in requests})
    }
    unranked: dict[datetime, list[int]] = {}
    for member, at in requests:
        row = rows.get(member.pk)
        if row is None or row.programme_id != programme.pk:
            unranked.setdefault(at, []).append(member.pk)
    values = {
        (member_id, at): value
        for at, member_ids in unranked.items()
        for member_id, value in qualifying_values(member_ids=member_ids, programme=programme, at=at).items()
    }
    levels = programme_levels(programme=programme)
    infos = []
    for member, at in requests:
        row = rows.get(member.pk)
        if row is not None and row.programme_id == programme.pk:
            level, state = _attach_programme(row, programme).effective_level(at), row
        else:
            level = level_for_value(levels=levels, value=values[(member.pk, at)])
            state = MemberTier(member_id=member.pk, programme=programme) if row is None else None
        infos.append(None if level is None else TierInfo(
            code=level.code, earn_multiplier=level.earn_multiplier,
            expiry_extension_months=level.expiry_extension_months, provider_state=state,
        ))
    return infos

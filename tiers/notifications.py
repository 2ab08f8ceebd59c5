"""Tier downgrade warnings: a member whom requalification found below their level keeps it for
the programme's grace days; at the start of that grace they are told which level they would drop
to, what they still need to keep theirs, and by when.

Sent through members.notifications (tiers sits above members and points: no registry needed to
reach the notification interface), once per member per requalification period: the key
`tier_downgrade:<member>:<day the grace began>` is unique, so the daily job running again, or
on every day of the grace, sends nothing twice; a member who climbs back and later falls below
again starts a new period and gets a new warning. Runs after the requalification transactions
have committed, outside the wallet lock. A service message: consent by channel, not marketing.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _

from members.notifications.models import NotificationKind
from members.notifications.services import Message, app_link, member_fields, notifications_queue, notifications_send
from points.timeutils import local_date
from tiers.models import MemberTier, QualificationBasis
from tiers.selectors import active_programme, level_for_value, programme_levels


def downgrade_warning_key(*, member_id: int, below_since: datetime) -> str:
    return f"tier_downgrade:{member_id}:{local_date(below_since).isoformat()}"


def needed_text(*, basis: str, needed: Decimal) -> str:
    """What is still needed to keep the tier, in the active language: "500 qualifying points"."""
    if basis == QualificationBasis.POINTS:
        return _("%(points)s qualifying points") % {"points": int(needed)}
    return _("¥%(amount)s of qualifying spend") % {"amount": needed}


def downgrade_warning_context(member_tier: MemberTier, *, levels) -> dict:
    """The warning's context, in the member's language: the tier kept in the grace, the level
    the member would drop to, what they need and by when (the first day the downgrade can apply)."""
    programme, member = member_tier.programme, member_tier.member
    value = member_tier.qualifying_value
    drop_to = level_for_value(levels=levels, value=value)
    needed = max(member_tier.level.threshold - value, Decimal("0"))
    if programme.basis == QualificationBasis.POINTS:
        needed = needed.to_integral_value()
    with translation.override(member.language):
        text = needed_text(basis=programme.basis, needed=needed)
    return {
        **member_fields(member), "tier": member_tier.level.name, "tier_code": member_tier.level.code,
        "drop_to": drop_to.name if drop_to else "", "drop_to_code": drop_to.code if drop_to else "",
        "basis": programme.basis, "needed": int(needed) if programme.basis == QualificationBasis.POINTS else str(needed),
        "needed_text": text, "window_months": programme.window_months,
        "downgrade_on": local_date(member_tier.below_since + timedelta(days=programme.grace_days)).isoformat(),
        "link": app_link("tier"),
    }


def tier_downgrade_warnings_queue(*, member_ids: list[int], now: datetime) -> int:
    """Queue the warning of each of these members who is in a downgrade's grace at `now` (on the
    active programme, with an earned level and no manual tier in force) and enqueue the sends on
    commit. Returns the sends enqueued."""
    programme = active_programme()
    if programme is None or not member_ids:
        return 0
    in_grace = list(
        MemberTier.objects.filter(member_id__in=member_ids, programme=programme, below_since__isnull=False,
                                  level__isnull=False)
        .select_related("member", "level")
    )
    in_grace = [row for row in in_grace if not row.override_active(now)]
    if not in_grace:
        return 0
    levels = programme_levels(programme=programme)
    messages = []
    for member_tier in in_grace:
        member_tier.programme = programme
        messages.append(Message(
            member=member_tier.member, kind=NotificationKind.TIER_DOWNGRADE, run=f"tier_downgrade:{local_date(now)}",
            key=downgrade_warning_key(member_id=member_tier.member_id, below_since=member_tier.below_since),
            context=downgrade_warning_context(member_tier, levels=levels),
        ))
    with transaction.atomic(durable=True):
        log_ids = notifications_queue(messages=messages)
        notifications_send(log_ids=log_ids)
    return len(log_ids)

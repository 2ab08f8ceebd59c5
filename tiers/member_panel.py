"""Tiers' panel of the member 360 page (points.member_panels), registered in tiers.apps."""

from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from members.models import Member
from points.member_panels import PANEL_ROWS, MemberPanel, changelist_link, html_table, local_date, local_minute
from tiers.selectors import member_tier_history, tier_progress

TIER_CHANGES_SHOWN = 5


def tier_panel_render(member: Member) -> str:
    """The member's tier, the way to the next one and the latest tier changes."""
    progress = tier_progress(member_id=member.pk)
    if progress is None:
        summary = format_html("<p>{}</p>", _("No active tier programme."))
    else:
        summary = html_table((_("tier"), _("qualifying value"), _("progress"), _("downgrade due")), [(
            progress.level.name if progress.level else "-", progress.qualifying_value, progress.text,
            local_date(progress.downgrade_due_at),
        )])
    changes = member_tier_history(member=member)[:min(TIER_CHANGES_SHOWN, PANEL_ROWS)]
    rows = [
        (local_minute(c.at), c.get_kind_display(), c.from_level.name if c.from_level else "-",
         c.to_level.name if c.to_level else "-", c.reason or "-")
        for c in changes
    ]
    return format_html(
        "{}{}{}", summary,
        html_table((_("at"), _("change"), _("from"), _("to"), _("reason")), rows) if rows else "",
        changelist_link("admin:tiers_tierchange_changelist", _("All tier changes of this member"),
                        member__id__exact=member.pk),
    )


TIER_PANEL = MemberPanel(code="tier", title=_("Tier and progress"), render=tier_panel_render, order=10)

"""Risk control's panel of the member 360 page (points.member_panels), registered in
riskcontrol.apps: the member's latest risk cases, and whether a risk freeze is in force."""

from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from members.models import Member
from points.member_panels import PANEL_ROWS, MemberPanel, change_link, changelist_link, html_table, local_minute
from riskcontrol.models import RiskCase, RiskFreeze


def risk_panel_render(member: Member) -> str:
    cases = RiskCase.objects.filter(member=member).select_related("rule").order_by("-created_at", "-id")[:PANEL_ROWS]
    rows = [
        (change_link("admin:riskcontrol_riskcase_change", c.pk, c.reference), local_minute(c.created_at),
         c.rule.name if c.rule else c.get_origin_display(), c.operation, c.points, c.get_action_display(),
         c.get_status_display())
        for c in cases
    ]
    frozen = RiskFreeze.objects.filter(member=member, lifted_at__isnull=True).exists()
    return format_html(
        "{}{}{}{}",
        format_html("<p><strong>{}</strong></p>", _("A risk freeze is in force.")) if frozen else "",
        html_table((_("case"), _("opened at"), _("rule"), _("operation"), _("points"), _("action"), _("status")), rows),
        changelist_link("admin:riskcontrol_riskcase_changelist", _("All risk cases of this member"),
                        member__id__exact=member.pk),
        changelist_link("admin:riskcontrol_riskfreeze_changelist", _("Risk freezes of this member"),
                        member__id__exact=member.pk),
    )


RISK_PANEL = MemberPanel(code="risk", title=_("Risk cases"), render=risk_panel_render, order=40)

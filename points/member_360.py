"""Member 360: the top of the member's console page, everything about one member at a glance.

The ledger's own figures (balance by state, points by business unit earned and spent, tags,
statements and notifications sent) are read here; the panels of the apps above points (tier and
progress, mall orders and coupons, payments, risk cases) come from the registry in
points.member_panels, which those apps fill in their AppConfig.ready.

Every panel reads at most PANEL_ROWS rows in a fixed number of queries and links to the full
changelist filtered for the member: the page costs the same for a member with ten postings as
for one with a million (tests/points/test_member_360.py pins it).
"""

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from members.notifications.models import NotificationLog
from points.member_panels import PANEL_ROWS, changelist_link, changelist_url, html_table, local_date, local_minute, member_panels
from points.models import MemberTag
from points.selectors import member_points_by_business_unit, wallet_balance
from points.statements.models import Statement

MEMBER_360_FIELDS = ("overview_panel", "business_units_panel", "contributed_panels", "messages_panel")
STATEMENTS_SHOWN = 6
TAGS_SHOWN = 50

CHART_STYLE = (
    "display:inline-block;height:0.9em;vertical-align:middle;min-width:1px;"
)


def _figure(label, value):
    return format_html(
        '<div style="display:inline-block;margin:0 1.5em 0.5em 0"><div style="font-size:0.8em;opacity:0.7">{}</div>'
        '<div style="font-size:1.4em;font-weight:bold">{}</div></div>', label, value,
    )


def _bar(points: int, largest: int, colour: str):
    width = round(200 * points / largest) if largest else 0
    return format_html('<span style="{}width:{}px;background:{}"></span> {}', CHART_STYLE, width, colour, points)


class Member360Mixin:
    """The member admin's 360 panels (read-only fields of the member page)."""

    @admin.display(description=_("at a glance"))
    def overview_panel(self, member):
        wallet = member.wallet
        state = wallet_balance(wallet=wallet)
        figures = [
            (_("balance"), state.total), (_("available"), state.available), (_("pending"), state.pending),
            (_("held"), state.held), (_("frozen"), state.frozen), (_("debt"), state.debt),
        ]
        tags = list(MemberTag.objects.filter(member=member).order_by("tag").values_list("tag", flat=True)[:TAGS_SHOWN])
        links = [
            (changelist_url("admin:points_posting_changelist", wallet__id__exact=wallet.pk), _("postings")),
            (changelist_url("admin:points_lot_changelist", wallet__id__exact=wallet.pk), _("lots")),
            (changelist_url("admin:points_hold_changelist", wallet__id__exact=wallet.pk), _("holds")),
            (changelist_url("admin:points_walletstatuschange_changelist", wallet__id__exact=wallet.pk),
             _("freeze records")),
            (changelist_url("admin:points_membertag_changelist", member__id__exact=member.pk), _("tags")),
            (changelist_url("admin:points_statement_changelist", member__id__exact=member.pk), _("statements")),
            (changelist_url("admin:members_notificationlog_changelist", member__id__exact=member.pk),
             _("notifications")),
        ]
        return format_html(
            "<div>{}</div><p><strong>{}</strong> {}</p><p>{}</p>",
            format_html_join("", "{}", ((_figure(label, value),) for label, value in figures)),
            _("tags:"), ", ".join(tags) or "-",
            format_html_join(" · ", '<a href="{}">{}</a>', ((url, label) for url, label in links if url)),
        )

    @admin.display(description=_("points by business unit"))
    def business_units_panel(self, member):
        flows = member_points_by_business_unit(wallet=member.wallet)[:PANEL_ROWS]
        if not flows:
            return "-"
        largest = max(max(flow.earned, flow.spent) for flow in flows)
        rows = [
            (flow.code, _bar(max(flow.earned, 0), largest, "#417690"), _bar(max(flow.spent, 0), largest, "#c9774f"))
            for flow in flows
        ]
        return html_table((_("business unit"), _("earned"), _("spent")), rows)

    @admin.display(description=_("across the group"))
    def contributed_panels(self, member):
        """The panels the apps above points registered (points.member_panels), in order."""
        return format_html_join(
            "", '<h3 style="margin-top:1em">{}</h3>{}', ((panel.title, panel.render(member)) for panel in member_panels())
        ) or "-"

    @admin.display(description=_("statements and notifications sent"))
    def messages_panel(self, member):
        statements = Statement.objects.filter(member=member).order_by("-period")[:STATEMENTS_SHOWN]
        statement_rows = [
            (s.period, s.opening_balance, s.earned, s.redeemed, s.expired, s.closing_balance, local_minute(s.created_at))
            for s in statements
        ]
        notifications = (
            NotificationLog.objects.filter(member=member)
            .only("kind", "channel", "status", "subject", "created_at", "sent_at").order_by("-id")[:PANEL_ROWS]
        )
        notification_rows = [
            (local_minute(n.created_at), n.get_kind_display(), n.get_channel_display(), n.get_status_display(),
             n.subject or "-", local_date(n.sent_at))
            for n in notifications
        ]
        return format_html(
            "{}{}{}{}",
            html_table((_("period"), _("opening balance"), _("earned"), _("redeemed"), _("expired"),
                        _("closing balance"), _("generated at")), statement_rows),
            changelist_link("admin:points_statement_changelist", _("All statements of this member"),
                            member__id__exact=member.pk),
            html_table((_("queued at"), _("kind"), _("channel"), _("status"), _("subject"), _("delivered at")),
                       notification_rows),
            changelist_link("admin:members_notificationlog_changelist", _("All notifications of this member"),
                            member__id__exact=member.pk),
        )

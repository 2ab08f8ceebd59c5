"""The member 360 page's registry: what the apps above points show on a member's console page.

The member admin lives in points (points.admin), which never imports tiers, mall or riskcontrol.
Each of them contributes its panels here, in its AppConfig.ready, as points.policies does for
the ledger: `register_member_panel(MemberPanel(...))`. The member page renders every registered
panel in `order`, so a reader sees in one list what the page shows.

A panel's `render(member)` returns safe HTML and reads a bounded number of rows (at most
`PANEL_ROWS`) in a fixed number of queries, whatever the member's history: the page must load
in one screen for a member with millions of postings. Each panel ends with a link to its full
changelist filtered for the member (`changelist_link`).
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from members.models import Member

PANEL_ROWS = 20


@dataclass(frozen=True)
class MemberPanel:
    """One panel of the member page: a title (translatable), its HTML and its place."""

    code: str
    title: str
    render: Callable[[Member], str]
    order: int = 100


_panels: dict[str, MemberPanel] = {}


def register_member_panel(panel: MemberPanel) -> None:
    """Register (or replace, by code) a panel of the member page."""
    _panels[panel.code] = panel


def unregister_member_panel(code: str) -> None:
    _panels.pop(code, None)


def member_panels() -> list[MemberPanel]:
    return sorted(_panels.values(), key=lambda panel: (panel.order, panel.code))


# --- helpers the panels share ------------------------------------------------------------------


def html_table(headers, rows):
    """A plain admin table for the read-only panels (cells are escaped by format_html_join)."""
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def balance_rows(state) -> list[tuple]:
    """A wallet's balance by state (points.selectors.Balance), a row each, for the wallet panels."""
    return [
        (_("balance"), state.total),
        (_("available"), state.available),
        (_("pending"), state.pending),
        (_("frozen"), state.frozen),
        (_("held"), state.held),
        (_("expired, awaiting the expiry job"), state.expired_unswept),
        (_("debt"), state.debt),
    ]


def expiring_rows(state) -> list[tuple]:
    """What the wallet's points expire when, a row per local date."""
    return [(_("expires %(date)s") % {"date": local_date(item["expires_at"])}, item["points"]) for item in state.expiring]


def changelist_url(url_name: str, **filters) -> str | None:
    """The admin changelist `url_name` (e.g. "admin:mall_order_changelist") filtered by `filters`
    (field lookups: `member__id__exact=7`); None when that admin is not registered."""
    try:
        url = reverse(url_name)
    except NoReverseMatch:
        return None
    query = "&".join(f"{lookup}={value}" for lookup, value in filters.items())
    return f"{url}?{query}" if query else url


def changelist_link(url_name: str, label, **filters):
    url = changelist_url(url_name, **filters)
    return format_html('<p><a href="{}">{}</a></p>', url, label) if url else ""


def change_link(url_name: str, pk, label):
    return format_html('<a href="{}">{}</a>', reverse(url_name, args=[pk]), label)


def local_date(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d}" if moment else "-"


def local_minute(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}" if moment else "-"

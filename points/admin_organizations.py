"""The organization admin with the organization's wallet (a tenant company's points).

members' OrganizationAdmin knows no ledger (members never imports points); this one replaces it
with the wallet's points by state on the list (for a page of organizations in two queries,
points.selectors.wallet_balances) and on the change page, and a link to the wallet's postings.
"""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ObjectDoesNotExist
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from members.admin import OrganizationAdmin
from members.models import Organization
from points.member_panels import balance_rows, expiring_rows, html_table
from points.models import Wallet
from points.selectors import Balance, wallet_balances

NO_POINTS = Balance(total=0, available=0, pending=0, frozen=0, held=0, expired_unswept=0, debt=0, expiring=[])


def _wallet(organization: Organization) -> Wallet | None:
    """The organization's wallet, None before its first use."""
    try:
        return organization.wallet
    except ObjectDoesNotExist:
        return None


def _points_of(organizations) -> None:
    """Give each organization its wallet's points by state (`points_state`), in two queries."""
    wallets = [wallet for wallet in map(_wallet, organizations) if wallet is not None]
    balances = wallet_balances(wallets=wallets)
    for organization in organizations:
        wallet = _wallet(organization)
        organization.points_state = balances[wallet.pk] if wallet is not None else NO_POINTS


class OrganizationChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        _points_of(self.result_list)


admin.site.unregister(Organization)


@admin.register(Organization)
class OrganizationWalletAdmin(OrganizationAdmin):
    list_display = ("code", "name", "available", "pending", "held", "total", "postings")
    list_select_related = ("wallet",)
    fieldsets = (
        (None, {"fields": ("code", "name")}),
        (_("Points"), {"fields": ("wallet_panel",)}),
    )
    readonly_fields = ("wallet_panel",)

    def get_changelist(self, request, **kwargs):
        return OrganizationChangeList

    def get_fieldsets(self, request, obj=None):
        return self.fieldsets if obj is not None else ((None, {"fields": ("code", "name")}),)

    # --- columns

    @admin.display(description=_("available"))
    def available(self, organization):
        return organization.points_state.available

    @admin.display(description=_("pending"))
    def pending(self, organization):
        return organization.points_state.pending

    @admin.display(description=_("held"))
    def held(self, organization):
        return organization.points_state.held

    @admin.display(description=_("balance"), ordering="wallet__balance")
    def total(self, organization):
        return organization.points_state.total

    @admin.display(description=_("postings"))
    def postings(self, organization):
        wallet = _wallet(organization)
        return _postings_link(wallet, _("postings")) if wallet is not None else "–"

    # --- the change page

    @admin.display(description=_("wallet"))
    def wallet_panel(self, organization):
        _points_of([organization])
        state = organization.points_state
        table = html_table((_("state"), _("points")), balance_rows(state) + expiring_rows(state))
        wallet = _wallet(organization)
        if wallet is None:
            return format_html('{}<p>{}</p>', table, _("The wallet opens on its first use."))
        return format_html('{}<p>{}</p>', table, _postings_link(wallet, _("All postings of this organization")))


def _postings_link(wallet: Wallet, label):
    url = reverse("admin:points_posting_changelist") + f"?wallet__id__exact={wallet.pk}"
    return format_html('<a href="{}">{}</a>', url, label)

"""The organization's wallet in the console: its points by state on the organizations' list (a
page in a fixed number of queries) and on the organization's page, with a link to its postings."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from points.ledger import hold_place_locked, organization_wallet_lock
from points.models import Lot, Wallet
from tests.factories import OrganizationFactory, fund_organization

pytestmark = pytest.mark.django_db
ORGANIZATIONS = reverse("admin:members_organization_changelist")


@pytest.fixture
def console(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def company(bu):
    """11,000 points: 8,000 available, 2,000 pending (their lot not yet available), 1,000 held."""
    from django.db import transaction

    organization = OrganizationFactory(code="blue-ocean", name="Blue Ocean")
    fund_organization(organization, 9000, bu)
    pending = fund_organization(organization, 2000, bu)
    Lot.objects.filter(posting=pending).update(available_at=timezone.now() + timedelta(days=7))
    with transaction.atomic():
        wallet = organization_wallet_lock(organization_id=organization.pk)
        hold_place_locked(wallet=wallet, points=1000, business_unit=bu, purpose="payment", reference="PF-1")
    return organization


def test_the_list_shows_each_organizations_points_by_state(console, company):
    OrganizationFactory(code="no-wallet-yet", name="New tenant")
    page = console.get(ORGANIZATIONS)
    assert page.status_code == 200
    rows = {organization.code: organization.points_state for organization in page.context["cl"].result_list}
    state = rows["blue-ocean"]
    assert (state.total, state.available, state.pending, state.held) == (11000, 8000, 2000, 1000)
    assert rows["no-wallet-yet"].total == 0
    wallet = Wallet.objects.get(organization=company)
    assert f"?wallet__id__exact={wallet.pk}".encode() in page.content


def test_the_lists_queries_do_not_grow_with_its_organizations(console, company, bu):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert console.get(ORGANIZATIONS).status_code == 200
        return len(captured)

    few = queries()
    for number in range(5):
        fund_organization(OrganizationFactory(code=f"tenant-{number}"), 100, bu)
    assert queries() == few


def test_the_organizations_page_shows_its_wallet_and_links_to_its_postings(console, company):
    wallet = Wallet.objects.get(organization=company)
    page = console.get(reverse("admin:members_organization_change", args=[company.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    html = page.content.decode()
    for cell in ("<td>available</td><td>8000</td>", "<td>pending</td><td>2000</td>", "<td>held</td><td>1000</td>",
                 "<td>balance</td><td>11000</td>"):
        assert cell in html, cell
    postings = reverse("admin:points_posting_changelist") + f"?wallet__id__exact={wallet.pk}"
    assert postings in html
    listed = console.get(postings)
    assert listed.status_code == 200 and len(listed.context["cl"].result_list) == 2

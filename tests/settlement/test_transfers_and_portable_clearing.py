"""Settlement ties to the ledger through organization wallets and transfers, and through the
portable clearing path the SQLite demo database takes.

Transfers move an issuer's points between wallets without moving its liability: neither issuance
nor redemption, except for what repays the receiver's debt (those points leave the lots: a
reclaim). Expiry on the portable path is breakage, as on PostgreSQL (its expiry entry is not a
refund's breakage reclaimed).
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from points.expiry import expiry_run_batch
from points.ledger import Idempotency
from points.models import Lot, Wallet
from points.services import points_spend, posting_reverse
from points.transfers import member_transfer, organization_distribute
from settlement import hooks
from settlement.models import ClearingKind, ClearingLine, LineKind
from settlement.selectors import compute_lines, period_of, reconcile
from tests.factories import OrganizationFactory, enrol_member, fund, fund_organization, organization_admin
from tests.settlement.helpers import earn, units

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["postgresql", "portable"])
def clearing_path(request, monkeypatch):
    """Every scenario runs with the hook's PostgreSQL statement and with its portable version."""
    if request.param == "portable":
        monkeypatch.setattr(hooks, "connection", SimpleNamespace(vendor="sqlite"))
    return request.param


def key(name: str) -> Idempotency:
    return Idempotency(scope="test", key=name)


def lines_by_kind(period) -> dict[str, int]:
    totals: dict[str, int] = {}
    for line in compute_lines(period=period):
        if line.points:
            totals[line.kind] = totals.get(line.kind, 0) + line.points
    return totals


def assert_ties(period) -> None:
    assert reconcile(period=period).problems == []
    call_command("verify_settlement", period=f"{period:%Y-%m}")


def test_an_organization_earn_distributed_and_transferred_is_issued_once_and_redeemed_never(
    settings, clearing_path, ledger_sound,
):
    settings.POINTS_MEMBER_TRANSFERS_ENABLED = True
    hotel, mall, park = units()
    company = OrganizationFactory(name="Acme")
    admin = organization_admin(company)
    employee, friend = enrol_member(organization=company), enrol_member()
    fund_organization(company, 1000, park)
    organization_distribute(admin=admin, member_id=employee.pk, points=600, idempotency=key("distribute"))
    member_transfer(sender=employee, recipient_phone=friend.phone, points=250, idempotency=key("gift"))
    points_spend(member_id=friend.pk, business_unit=mall, points=100, idempotency=key("spend"))
    period = period_of(timezone.now())
    assert lines_by_kind(period) == {LineKind.ISSUANCE: 1000, LineKind.REDEMPTION: 100, LineKind.CLEARING: 100}
    assert Lot.objects.filter(business_unit=park).aggregate(s=Sum("remaining"))["s"] == 900
    assert_ties(period)
    ledger_sound()


def test_points_received_that_repay_a_debt_are_reclaimed_from_their_issuer(clearing_path, ledger_sound):
    hotel, mall, park = units()
    company = OrganizationFactory(name="Acme")
    admin = organization_admin(company)
    employee = enrol_member(organization=company)
    earned = fund(employee, 300, hotel)
    points_spend(member_id=employee.pk, business_unit=mall, points=300, idempotency=key("spend"))
    posting_reverse(posting_id=earned.pk, business_unit=hotel, idempotency=key("refund"))  # 300 of debt
    fund_organization(company, 1000, park)
    received = organization_distribute(admin=admin, member_id=employee.pk, points=500,
                                       idempotency=key("distribute")).received
    assert Wallet.objects.get(member=employee).debt == 0
    assert list(ClearingLine.objects.filter(posting=received).values_list("kind", "issuer_id", "points")) == [
        (ClearingKind.RECLAIM, park.pk, 300)]
    period = period_of(timezone.now())
    reclaimed = [line for line in compute_lines(period=period) if line.kind == LineKind.RECLAIM]
    assert [(line.payer_id, line.points) for line in reclaimed] == [(park.pk, 300)]
    assert_ties(period)
    ledger_sound()


def test_expiry_is_breakage_and_a_refund_of_expired_points_reverses_it(clearing_path, ledger_sound):
    hotel, mall, _park = units()
    member, other = enrol_member(), enrol_member()
    earned = earn(member, hotel, 100)
    earn(other, mall, 40)
    expiry_run_batch(now=timezone.now() + timedelta(days=800))
    assert sorted(ClearingLine.objects.filter(kind=ClearingKind.BREAKAGE).values_list("issuer_id", "points")) == \
        sorted([(hotel.pk, 100), (mall.pk, 40)])
    posting_reverse(posting_id=earned.pk, business_unit=hotel, idempotency=key("refund"))
    period = period_of(timezone.now())
    assert lines_by_kind(period) == {LineKind.ISSUANCE: 140, LineKind.BREAKAGE: 140, LineKind.RECLAIM: 100,
                                     LineKind.BREAKAGE_REVERSAL: 100}
    assert_ties(period)
    ledger_sound()

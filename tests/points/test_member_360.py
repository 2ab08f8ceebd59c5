"""The member 360 page: a member with data from every app renders it all in one page, and the
page's queries are bounded whatever the member's history."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from mall.models_payments import BusinessUnitPaymentSettings
from mall.services import order_place
from mall.services_payments import payment_authorize
from members.notifications.models import Channel, NotificationKind, NotificationLog, NotificationStatus
from points.ledger import Idempotency
from points.member_panels import MemberPanel, member_panels, register_member_panel, unregister_member_panel
from points.models import MemberTag
from points.statements.models import Statement
from riskcontrol.models import RiskCase, RuleAction
from tests.factories import BusinessUnitFactory, fund, goods, ladder


@pytest.fixture
def admin_client_logged(client, operator):
    client.force_login(operator)
    return client


def rich_member(member, bu):
    """Give `member` a tier, an order and coupon-less goods, a payment, a risk case, a statement,
    a notification and tags."""
    ladder()
    hotel = BusinessUnitFactory(code="hotel360", name="Harbour Hotel")
    fund(member, 3000, bu)
    fund(member, 500, hotel)
    order_place(member_id=member.pk, item_id=goods(business_unit=bu, price_points=200).pk, idempotency_key="o-360")
    BusinessUnitPaymentSettings.objects.create(business_unit=hotel, accepts_points=True, min_unit=100, max_share_percent=50)
    payment_authorize(business_unit=hotel, merchant=None, partner_key=None, idempotency=Idempotency(scope="t", key="p"),
                      bill_no="BILL-360", bill_amount=Decimal("100.00"), member_id=member.pk, points=100)
    RiskCase.objects.create(member=member, operation="earn", action=RuleAction.FLAG, points=3000)
    now = timezone.now()
    Statement.objects.create(
        member=member, period="2026-01", period_start=now - timedelta(days=60), period_end=now - timedelta(days=30),
        opening_balance=0, earned=10, redeemed=0, cancelled=0, refunded=0, expired=0, adjusted=0, debt_repaid=0,
        closing_balance=10, opening_debt=0, closing_debt=0, expiring_30_days=0, expiring_60_days=0,
    )
    NotificationLog.objects.create(
        key=f"n-{member.pk}", run="statement:2026-01", kind=NotificationKind.STATEMENT, channel=Channel.SMS,
        member=member, language="zh-hans", subject="Your statement 360", status=NotificationStatus.QUEUED,
        not_before=now,
    )
    MemberTag.objects.create(member=member, tag="vip-tenant")


def test_every_app_contributes_its_panel_through_the_registry():
    assert [panel.code for panel in member_panels()] == ["tier", "mall_orders", "payments", "risk"]


def test_the_page_shows_the_member_from_every_app(admin_client_logged, member, bu):
    rich_member(member, bu)
    response = admin_client_logged.get(reverse("admin:members_member_change", args=[member.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    member.wallet.refresh_from_db()
    wallet_id = member.wallet.pk
    for expected in (
        f">{member.wallet.balance}<",  # the balance, the payment's 100 points held in it
        "vip-tenant", "Silver", "BILL-360", "Your statement 360", "2026-01", "hotel360",
        f"/admin/points/posting/?wallet__id__exact={wallet_id}",
        f"/admin/mall/order/?member__id__exact={member.pk}",
        f"/admin/mall/coupon/?member__id__exact={member.pk}",
        f"/admin/mall/payment/?member__id__exact={member.pk}",
        f"/admin/riskcontrol/riskcase/?member__id__exact={member.pk}",
        f"/admin/points/statement/?member__id__exact={member.pk}",
        f"/admin/members/notificationlog/?member__id__exact={member.pk}",
        f"/admin/tiers/tierchange/?member__id__exact={member.pk}",
    ):
        assert expected in page, expected


def test_a_filtered_changelist_link_lists_the_member_only(admin_client_logged, member, bu):
    rich_member(member, bu)
    response = admin_client_logged.get(f"/admin/mall/payment/?member__id__exact={member.pk}")
    assert response.status_code == 200
    assert "BILL-360" in response.content.decode()


def page_queries(client, member) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:members_member_change", args=[member.pk]))
    assert response.status_code == 200
    return len(queries)


def test_the_page_costs_the_same_queries_for_five_or_sixty_postings(admin_client_logged, member, bu):
    rich_member(member, bu)
    few = page_queries(admin_client_logged, member)
    for _n in range(60):
        fund(member, 10, bu)
    many = page_queries(admin_client_logged, member)
    assert many == few
    assert few < 60


def test_recent_postings_are_bounded(admin_client_logged, member, bu):
    for n in range(25):
        fund(member, 1000 + n, bu)
    page = admin_client_logged.get(reverse("admin:members_member_change", args=[member.pk])).content.decode()
    assert "+1024" in page and "+1005" in page
    assert "+1004" not in page  # only the latest 20 postings are listed; the link has the rest


def test_a_registered_panel_is_rendered_in_its_place(admin_client_logged, member):
    register_member_panel(MemberPanel(code="extra", title="Extra panel", render=lambda m: f"extra for {m.pk}", order=1))
    try:
        page = admin_client_logged.get(reverse("admin:members_member_change", args=[member.pk])).content.decode()
    finally:
        unregister_member_panel("extra")
    assert f"extra for {member.pk}" in page
    assert page.index(f"extra for {member.pk}") < page.index("/admin/tiers/tierchange/?member__id__exact")

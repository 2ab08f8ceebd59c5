"""An organization's mall orders: an administrator books a meeting room paid from the
organization's wallet (mall.services.organization_order_place, the member API under
/api/v1/me/organization/orders/); a cancel, or a coupon's expiry with points back, returns the
points to that wallet; the member's own orders and limits are apart from the organization's."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mall.models import Coupon, CouponStatus, Order, OrderStatus, Slot
from mall.services import coupon_expire, order_cancel, order_place, organization_order_place
from points.models import Posting, PostingKind, Wallet
from tests.factories import (
    BusinessUnitFactory,
    ItemFactory,
    OrganizationFactory,
    bookable,
    enrol_member,
    fund,
    fund_organization,
    ladder,
    organization_admin,
)

pytestmark = pytest.mark.django_db
ORDERS = "/api/v1/me/organization/orders/"


@pytest.fixture
def park(db):
    return BusinessUnitFactory(code="park", name="Harbour Park")


@pytest.fixture
def company(park):
    organization = OrganizationFactory(code="blue-ocean", name="Blue Ocean")
    fund_organization(organization, 5000, park)
    return organization


@pytest.fixture
def admin(company, park):
    member = organization_admin(company, name="Zhou Min")
    fund(member, 800, park)  # the administrator's own points: never touched by the organization's orders
    return member


@pytest.fixture
def room(park):
    return bookable(business_unit=park, price_points=2000, slots=3, capacity=2)


def organization_balance(organization):
    return Wallet.objects.get(organization=organization).balance


def own_balance(member):
    return Wallet.objects.get(member=member).balance


def book(client, room, key="book-1", slot=None, **body):
    slot = slot or room.slots.order_by("starts_at").first()
    return client.post(ORDERS, {"item": room.pk, "slot": slot.pk, **body}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_an_admin_books_a_room_paid_from_the_organizations_wallet(member_api, admin, company, room, ledger_sound):
    client = member_api(admin)
    response = book(client, room)
    assert response.status_code == 201, response.json()
    body = response.json()["order"]
    assert (body["organization"], body["placed_by"], body["placed_by_name"]) == ("blue-ocean", admin.pk, "Zhou Min")
    assert (body["status"], body["points"], body["unit_points"], body["discount_percent"]) == (
        "issued", 2000, 2000, "0.00")
    assert len(body["coupons"]) == 1, "the check-in coupon"
    order = Order.objects.get(pk=body["id"])
    assert order.organization == company and order.member == admin
    assert order.spend_posting.wallet == Wallet.objects.get(organization=company), "the wallet that paid"
    assert (organization_balance(company), own_balance(admin)) == (3000, 800)
    assert Coupon.objects.get(order=order).member == admin, "the administrator holds the check-in code"
    assert Slot.objects.get(pk=order.slot_id).booked == 1

    replay = book(client, room)
    assert (replay.status_code, replay.json()["replayed"], replay.json()["order"]["id"]) == (200, True, body["id"])
    assert organization_balance(company) == 3000

    listed = client.get(ORDERS).json()
    assert [order["id"] for order in listed["results"]] == [body["id"]]
    assert client.get(f"{ORDERS}{body['id']}/").json()["number"] == body["number"]
    own = client.get("/api/v1/me/mall/orders/").json()
    assert own["results"] == [], "the organization's orders are not the administrator's own"
    assert client.get(f"/api/v1/me/mall/orders/{body['id']}/").status_code == 404
    balance = client.get("/api/v1/me/organization/").json()["balance"]
    assert (balance["total"], balance["available"]) == (3000, 3000)
    ledger_sound()


def test_only_an_administrator_books_or_reads_the_organizations_orders(member_api, company, admin, room):
    employee = enrol_member(organization=company)
    outsider = enrol_member()
    for member in (employee, outsider):
        client = member_api(member)
        refused = book(client, room, key=f"try-{member.pk}")
        assert refused.status_code == 403, refused.json()
        assert refused.json()["code"] == "not_organization_admin"
        assert client.get(ORDERS).json()["code"] == "not_organization_admin"
    order = book(member_api(admin), room).json()["order"]
    for member in (employee, outsider):
        client = member_api(member)
        assert client.get(f"{ORDERS}{order['id']}/").status_code == 403
        assert client.post(f"{ORDERS}{order['id']}/cancel/", {}, format="json").status_code == 403
    assert Order.objects.count() == 1 and organization_balance(company) == 3000


def test_an_organization_books_bookable_items_only(member_api, admin, park, company):
    voucher = ItemFactory(business_unit=park, price_points=100)
    response = member_api(admin).post(ORDERS, {"item": voucher.pk}, format="json", HTTP_IDEMPOTENCY_KEY="v")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid" and "item" in response.json()["fields"]
    assert not Order.objects.exists() and organization_balance(company) == 5000


def test_the_organizations_points_not_the_admins_decide(member_api, admin, company, park, room):
    big = bookable(business_unit=park, price_points=6000, slots=1)
    fund(admin, 10000, park)
    response = book(member_api(admin), big, key="big")
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["available"], response.json()["requested"]) == (
        "insufficient_points", 5000, 6000)
    assert not Order.objects.exists()
    assert (organization_balance(company), own_balance(admin)) == (5000, 10800)


def test_the_same_key_for_an_own_order_and_an_organizations_is_a_conflict(member_api, admin, room, company):
    client = member_api(admin)
    own = client.post("/api/v1/me/mall/orders/", {"item": room.pk, "slot": room.slots.first().pk}, format="json",
                      HTTP_IDEMPOTENCY_KEY="same")
    assert own.status_code == 409 and own.json()["code"] == "insufficient_points", "800 points of their own"
    fund(admin, 2000, room.business_unit)
    assert client.post("/api/v1/me/mall/orders/", {"item": room.pk, "slot": room.slots.first().pk}, format="json",
                       HTTP_IDEMPOTENCY_KEY="same").status_code == 201
    conflict = book(client, room, key="same")
    assert (conflict.status_code, conflict.json()["code"]) == (409, "idempotency_conflict")
    assert organization_balance(company) == 5000


def test_no_tier_for_an_organization_the_list_price_and_no_tier_only_items(admin, company, park):
    _programme, levels = ladder()
    fund(admin, 6000, park)  # Gold: 5 % off for the administrator's own orders
    room = bookable(business_unit=park, price_points=1000, slots=2)
    own = order_place(member_id=admin.pk, item_id=room.pk, slot_id=room.slots.first().pk, idempotency_key="own")
    assert own.order.unit_points == 950
    booked = organization_order_place(admin=admin, item_id=room.pk, slot_id=room.slots.first().pk,
                                      idempotency_key="org")
    assert (booked.order.unit_points, booked.order.discount_percent) == (1000, 0)
    gold_only = bookable(business_unit=park, price_points=100, min_tier=levels["gold"])
    from mall.exceptions import TierRequired

    with pytest.raises(TierRequired):
        organization_order_place(admin=admin, item_id=gold_only.pk, slot_id=gold_only.slots.get().pk,
                                 idempotency_key="gold")
    assert order_place(member_id=admin.pk, item_id=gold_only.pk, slot_id=gold_only.slots.get().pk,
                       idempotency_key="gold-own").order.organization is None


def test_limits_count_the_organizations_orders_together_and_never_the_admins_own(company, admin, park):
    from mall.exceptions import LimitReached

    second_admin = organization_admin(company, name="Qian Li")
    fund(admin, 5000, park)
    room = bookable(business_unit=park, price_points=1000, slots=3, capacity=5, limit_total=1)
    slot = room.slots.first()
    assert order_place(member_id=admin.pk, item_id=room.pk, slot_id=slot.pk, idempotency_key="own-1").order
    placed = organization_order_place(admin=admin, item_id=room.pk, slot_id=slot.pk, idempotency_key="org-1")
    assert placed.order.organization == company, "the administrator's own order does not count for the organization"
    with pytest.raises(LimitReached) as refused:
        organization_order_place(admin=second_admin, item_id=room.pk, slot_id=slot.pk, idempotency_key="org-2")
    assert (refused.value.extra["period"], refused.value.extra["remaining"]) == ("total", 0)
    with pytest.raises(LimitReached):
        order_place(member_id=admin.pk, item_id=room.pk, slot_id=slot.pk, idempotency_key="own-2")
    fund(second_admin, 1000, park)
    own = order_place(member_id=second_admin.pk, item_id=room.pk, slot_id=slot.pk, idempotency_key="own-second")
    assert own.order.organization is None, "the organization's orders count against no administrator's own limit"


def test_any_admin_cancels_and_the_points_go_back_to_the_organizations_wallet(member_api, company, admin, room,
                                                                             ledger_sound):
    order = book(member_api(admin), room).json()["order"]
    assert member_api(admin).post(f"/api/v1/me/mall/orders/{order['id']}/cancel/", {}, format="json").status_code \
        == 404, "not through the member's own orders"
    other_company_admin = organization_admin(OrganizationFactory(code="other"))
    assert member_api(other_company_admin).post(f"{ORDERS}{order['id']}/cancel/", {}, format="json").status_code == 404
    second_admin = organization_admin(company)
    cancelled = member_api(second_admin).post(f"{ORDERS}{order['id']}/cancel/", {"reason": "meeting moved"},
                                              format="json")
    assert cancelled.status_code == 200, cancelled.json()
    assert cancelled.json()["order"]["status"] == "cancelled"
    assert (organization_balance(company), own_balance(admin), own_balance(second_admin)) == (5000, 800, 0)
    cancel = Posting.objects.get(kind=PostingKind.CANCEL)
    assert cancel.wallet == Wallet.objects.get(organization=company)
    assert Slot.objects.get(pk=order["slot"]["id"]).booked == 0
    again = member_api(admin).post(f"{ORDERS}{order['id']}/cancel/", {}, format="json")
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert organization_balance(company) == 5000
    ledger_sound()


def test_an_operators_cancel_gives_the_points_back_to_the_organization_too(admin, company, room, operator,
                                                                           ledger_sound):
    order = organization_order_place(admin=admin, item_id=room.pk, slot_id=room.slots.first().pk,
                                     idempotency_key="o").order
    Slot.objects.filter(pk=order.slot_id).update(starts_at=timezone.now() - timedelta(minutes=5))
    order_cancel(order_id=order.pk, reason="no-show waived", actor=operator)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert (organization_balance(company), own_balance(admin)) == (5000, 800)
    ledger_sound()


def test_a_booking_expired_unused_with_points_back_returns_them_to_the_organization(admin, company, park,
                                                                                    ledger_sound):
    room = bookable(business_unit=park, price_points=1500, points_back_on_expiry=True)
    order = organization_order_place(admin=admin, item_id=room.pk, slot_id=room.slots.get().pk,
                                     idempotency_key="o").order
    coupon = Coupon.objects.get(order=order)
    assert organization_balance(company) == 3500
    assert coupon_expire(coupon_id=coupon.pk, now=coupon.valid_until + timedelta(seconds=1))
    assert Coupon.objects.get(pk=coupon.pk).status == CouponStatus.EXPIRED
    assert (organization_balance(company), own_balance(admin)) == (5000, 800)
    ledger_sound()


def test_the_schema_holds_the_organizations_order_endpoints(tmp_path):
    import yaml
    from django.core.management import call_command

    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    paths = yaml.safe_load(path.read_text())["paths"]
    assert set(paths[ORDERS]) >= {"get", "post"}
    assert set(paths[ORDERS + "{order_id}/"]) >= {"get"}
    assert set(paths[ORDERS + "{order_id}/cancel/"]) >= {"post"}
    place = paths[ORDERS]["post"]
    assert place["security"] == [{"MemberBearer": []}]
    forbidden = place["responses"]["403"]["content"]["application/json"]["examples"]
    assert "not_organization_admin" in {example["value"]["code"] for example in forbidden.values()}

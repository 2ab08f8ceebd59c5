"""Placing, replaying, refusing, cancelling, refunding and fulfilling orders (mall.services)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from config.errors import IdempotencyConflict
from mall import codes
from mall.exceptions import (
    InvalidRequest,
    LimitReached,
    NotOnSale,
    OrderNotCancellable,
    OrderNotFulfillable,
    OutOfStock,
    SlotFull,
    TierRequired,
)
from mall.models import Coupon, CouponStatus, Item, ItemKind, Order, OrderEvent, OrderStatus, Slot
from mall.services import order_cancel, order_fulfil, order_place, order_refund, pool_codes_add
from points.exceptions import AccountFrozen, InsufficientPoints
from points.models import LotMovement, Posting, PostingKind, Wallet
from points.services import wallet_freeze
from tests.factories import enrol_member
from tests.factories import ItemFactory, bookable, fund, goods
from tiers.models import TierLevel, TierProgramme

pytestmark = pytest.mark.django_db


def balance(member):
    return Wallet.objects.get(member=member).balance


def place(member, item, key="k1", **fields):
    return order_place(member_id=member.pk, item_id=item.pk, idempotency_key=key, **fields)


@pytest.fixture
def rich(member, bu):
    fund(member, 1000, bu)
    return member


def test_an_order_spends_at_the_provider_takes_stock_and_issues_coupons(rich, bu, merchant, ledger_sound):
    item = ItemFactory(business_unit=bu, merchant=merchant, price_points=120, stock=5, cash_cny=Decimal("9.90"))

    result = place(rich, item, quantity=2)

    order = result.order
    assert not result.replayed
    assert (order.status, order.points, order.unit_points, order.quantity) == (OrderStatus.ISSUED, 240, 120, 2)
    assert order.cash_cny == Decimal("19.80")
    posting = order.spend_posting
    assert (posting.kind, posting.points, posting.business_unit, posting.merchant) == (PostingKind.SPEND, -240, bu,
                                                                                       merchant)
    assert posting.reason == f"mall order {order.number}"
    assert balance(rich) == 760
    assert Item.objects.get(pk=item.pk).stock == 3
    coupons = list(order.coupons.all())
    assert len(coupons) == 2 and all(codes.is_generated(c.code) for c in coupons)
    assert all(c.status == CouponStatus.ISSUED and c.merchant == merchant for c in coupons)
    # valid 30 days: through the end of the 30th day counting today, in the group's time zone
    assert coupons[0].valid_until - coupons[0].valid_from < timedelta(days=30)
    assert coupons[0].valid_until - coupons[0].valid_from > timedelta(days=29)
    assert list(OrderEvent.objects.filter(order=order).values_list("from_status", "to_status")) == [("", "issued")]
    ledger_sound()


def test_goods_await_fulfilment_and_a_shipped_order_needs_its_tracking_number(rich, bu, operator):
    item = goods(business_unit=bu, delivery="either")
    order = place(rich, item, delivery_method="shipping", delivery_address="上海市 静安区 1 号").order
    assert order.status == OrderStatus.AWAITING_FULFILMENT and not order.coupons.exists()

    with pytest.raises(InvalidRequest):
        order_fulfil(order_id=order.pk, actor=operator)
    order = order_fulfil(order_id=order.pk, actor=operator, tracking_no="SF123").order

    assert (order.status, Order.objects.get(pk=order.pk).tracking_no) == (OrderStatus.FULFILLED, "SF123")
    assert order_fulfil(order_id=order.pk, actor=operator, tracking_no="SF123").replayed
    with pytest.raises(OrderNotCancellable):
        order_cancel(order_id=order.pk, member_id=rich.pk)
    voucher = place(rich, ItemFactory(business_unit=bu), key="v").order
    with pytest.raises(OrderNotFulfillable):
        order_fulfil(order_id=voucher.pk, actor=operator)


def test_the_tier_discount_is_frozen_on_the_order_and_the_price_rounds_up(rich, bu):
    programme = TierProgramme.objects.create(code="p", name="P", basis="points")
    TierLevel.objects.create(programme=programme, code="gold", name="Gold", rank=1, threshold=0,
                             redemption_discount_percent=Decimal("12.5"))
    item = ItemFactory(business_unit=bu, price_points=99)

    order = place(rich, item).order

    # 99 x 12.5% = 12.375 points off, rounded down to 12: the member pays 87
    assert (order.list_price_points, order.discount_percent, order.unit_points, order.points) == (
        99, Decimal("12.50"), 87, 87)
    assert balance(rich) == 1000 - 87


def test_a_replay_returns_the_same_order_and_spends_nothing_more(rich, bu):
    item = ItemFactory(business_unit=bu, stock=10)
    first = place(rich, item, key="same")

    again = place(rich, item, key="same")

    assert again.replayed and again.order.pk == first.order.pk
    assert balance(rich) == 900 and Item.objects.get(pk=item.pk).stock == 9
    assert Order.objects.count() == 1 and Posting.objects.filter(kind=PostingKind.SPEND).count() == 1
    with pytest.raises(IdempotencyConflict):
        place(rich, item, key="same", quantity=2)


def test_refusals_write_nothing_and_a_retry_under_the_same_key_is_judged_afresh(member, bu):
    fund(member, 50, bu)
    item = ItemFactory(business_unit=bu, price_points=100, stock=3)

    with pytest.raises(InsufficientPoints):
        place(member, item, key="retry")
    assert not Order.objects.exists() and Item.objects.get(pk=item.pk).stock == 3 and not Coupon.objects.exists()
    assert balance(member) == 50

    fund(member, 50, bu)
    assert not place(member, item, key="retry").replayed
    assert balance(member) == 0


def test_sale_window_tier_limits_stock_and_frozen_accounts_refuse_with_their_codes(rich, bu, operator):
    now = timezone.now()
    flash = ItemFactory(business_unit=bu, sale_from=now + timedelta(hours=2))
    with pytest.raises(NotOnSale) as refused:
        place(rich, flash)
    assert refused.value.as_dict()["opens_at"] == flash.sale_from.isoformat()

    inactive = ItemFactory(business_unit=bu, is_active=False)
    with pytest.raises(NotOnSale):
        place(rich, inactive)

    programme = TierProgramme.objects.create(code="p", name="P", basis="points")
    TierLevel.objects.create(programme=programme, code="silver", name="Silver", rank=1, threshold=0)
    gold = TierLevel.objects.create(programme=programme, code="gold", name="Gold", rank=2, threshold=100000)
    with pytest.raises(TierRequired) as refused:
        place(rich, ItemFactory(business_unit=bu, min_tier=gold))
    assert refused.value.as_dict()["required_tier"] == "gold"

    daily = ItemFactory(business_unit=bu, limit_per_day=2)
    place(rich, daily, key="d1", quantity=2)
    with pytest.raises(LimitReached) as refused:
        place(rich, daily, key="d2")
    assert refused.value.as_dict() | {"detail": ""} == {"code": "limit_reached", "detail": "", "period": "day",
                                                        "limit": 2, "remaining": 0}

    scarce = ItemFactory(business_unit=bu, stock=1)
    with pytest.raises(OutOfStock):
        place(rich, scarce, key="s1", quantity=2)

    wallet_freeze(member_id=rich.pk, reason="review", actor=operator)
    with pytest.raises(AccountFrozen):
        place(rich, scarce, key="s2")
    assert Order.objects.count() == 1 and balance(rich) == 800


@pytest.mark.parametrize("quantity", [0, -1, 21, 10**9, "1", 1.5, True, None])
def test_a_bad_quantity_is_invalid_and_spends_nothing(rich, bu, quantity):
    item = ItemFactory(business_unit=bu, stock=5)
    with pytest.raises(InvalidRequest) as refused:
        place(rich, item, quantity=quantity)
    assert refused.value.as_dict()["fields"].keys() == {"quantity"}
    assert balance(rich) == 1000 and not Order.objects.exists()


def test_slots_unknown_of_another_item_started_or_full_are_refused(rich, bu, member):
    room = bookable(business_unit=bu, capacity=1)
    other = bookable(business_unit=bu)
    with pytest.raises(InvalidRequest):
        place(rich, room)  # no slot
    with pytest.raises(InvalidRequest):
        place(rich, room, slot_id=other.slots.get().pk)
    with pytest.raises(InvalidRequest):
        place(rich, room, slot_id=999999)
    with pytest.raises(InvalidRequest):
        place(rich, ItemFactory(business_unit=bu), slot_id=room.slots.get().pk)
    slot = room.slots.get()

    order = place(rich, room, key="b1", slot_id=slot.pk).order
    coupon = order.coupons.get()
    assert coupon.valid_until == slot.ends_at and coupon.valid_from < slot.starts_at
    with pytest.raises(SlotFull):
        place(rich, room, key="b2", slot_id=slot.pk)
    assert Slot.objects.get(pk=slot.pk).booked == 1

    Slot.objects.filter(pk=slot.pk).update(starts_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(InvalidRequest):
        place(rich, room, key="b3", slot_id=slot.pk)
    assert balance(rich) == 900


def test_cancel_gives_back_points_to_the_same_lots_stock_slot_and_limit_exactly_once(rich, bu, ledger_sound):
    room = bookable(business_unit=bu, capacity=2, limit_total=1, stock=4, price_points=300)
    slot = room.slots.get()
    order = place(rich, room, key="c1", slot_id=slot.pk).order
    consumed = {m.lot_id: -m.amount for m in LotMovement.objects.filter(posting=order.spend_posting)}

    result = order_cancel(order_id=order.pk, member_id=rich.pk, reason="plans changed")

    assert not result.replayed and result.order.status == OrderStatus.CANCELLED
    cancel = Posting.objects.get(kind=PostingKind.CANCEL, reverses=order.spend_posting)
    assert cancel.points == 300
    assert {m.lot_id: m.amount for m in LotMovement.objects.filter(posting=cancel)} == consumed
    assert balance(rich) == 1000
    assert Item.objects.get(pk=room.pk).stock == 4 and Slot.objects.get(pk=slot.pk).booked == 0
    assert order.coupons.get().status == CouponStatus.CANCELLED
    assert order_cancel(order_id=order.pk, member_id=rich.pk).replayed
    assert Posting.objects.filter(kind=PostingKind.CANCEL).count() == 1
    # the limit of one is free again
    assert place(rich, room, key="c2", slot_id=slot.pk).order.status == OrderStatus.ISSUED
    ledger_sound()


def test_another_members_order_is_not_found_and_a_used_coupon_cannot_be_cancelled(rich, bu, member):
    other = enrol_member(name="Other")
    order = place(rich, ItemFactory(business_unit=bu)).order
    from config.errors import NotFound

    with pytest.raises(NotFound):
        order_cancel(order_id=order.pk, member_id=other.pk)
    Coupon.objects.filter(order=order).update(status=CouponStatus.USED, redeemed_at=timezone.now())
    with pytest.raises(OrderNotCancellable):
        order_cancel(order_id=order.pk, member_id=rich.pk)
    assert balance(rich) == 900


def test_a_fulfilled_order_is_refunded_once_by_an_operator(rich, bu, operator, ledger_sound):
    order = place(rich, goods(business_unit=bu)).order
    with pytest.raises(OrderNotCancellable):
        order_refund(order_id=order.pk, reason="returned", actor=operator)
    order_fulfil(order_id=order.pk, actor=operator)
    with pytest.raises(OrderNotCancellable):
        order_cancel(order_id=order.pk)
    assert order_refund(order_id=order.pk, reason="returned", actor=operator).order.status == OrderStatus.REFUNDED
    assert order_refund(order_id=order.pk, reason="returned", actor=operator).replayed
    assert balance(rich) == 1000
    ledger_sound()


def test_a_pool_item_issues_uploaded_codes_and_is_sold_out_when_the_pool_is_empty(rich, bu):
    item = ItemFactory(business_unit=bu, kind=ItemKind.MERCHANT_COUPON, benefit="fixed_value",
                       face_value_cny=Decimal("40"), code_source="pool")
    counts = pool_codes_add(item_id=item.pk, raw_codes=["cine-0001", "CINE0001", "cine 0002", "bad!", ""], batch="b1")
    assert counts == {"added": 2, "duplicates": 1, "invalid": 1}
    assert pool_codes_add(item_id=item.pk, raw_codes=["CINE0002", "CINE0003"]) == {"added": 1, "duplicates": 1,
                                                                                 "invalid": 0}

    first = place(rich, item, key="p1", quantity=2).order
    assert sorted(first.coupons.values_list("code", flat=True)) == ["CINE0001", "CINE0002"]
    last = place(rich, item, key="p2").order
    assert last.coupons.get().code == "CINE0003"
    with pytest.raises(OutOfStock):
        place(rich, item, key="p3")

    # A cancelled order's codes were seen by the member: they are not issued again.
    order_cancel(order_id=first.pk, member_id=rich.pk)
    with pytest.raises(OutOfStock):
        place(rich, item, key="p4")
    assert balance(rich) == 1000 - 100

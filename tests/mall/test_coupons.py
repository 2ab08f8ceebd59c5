"""Codes, write-off and its undo, and the coupon expiry job (mall.codes, mall.services)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from config.errors import IdempotencyConflict, NotFound
from mall import codes
from mall.exceptions import (
    CouponMerchantNotPermitted,
    CouponNotValid,
    CouponUsed,
    InvalidRequest,
    MinSpendNotMet,
    NothingToUndo,
    OrderNotCancellable,
    UndoWindowPassed,
)
from mall.models import Coupon, CouponEvent, CouponStatus, ItemKind, OrderEvent, OrderStatus, WriteOff
from mall.services import coupon_redeem, coupon_redeem_undo, coupons_expire_batch, order_cancel, order_place
from points.ledger import Idempotency
from points.models import Posting, PostingKind, Wallet
from tests.factories import BusinessUnitFactory, MerchantFactory
from tests.factories import ItemFactory, bookable, fund

pytestmark = pytest.mark.django_db


def test_generated_codes_carry_65_random_bits_and_a_check_symbol_that_catches_typos():
    code = codes.generate()
    assert len(code) == 14 and set(code) <= set(codes.ALPHABET) and not set(code) & set("ILOU")
    assert codes.is_generated(code)
    for position in range(14):
        for symbol in codes.ALPHABET:
            if symbol != code[position]:
                typo = code[:position] + symbol + code[position + 1:]
                assert not codes.is_generated(typo), (code, typo)
    for position in range(13):
        swapped = code[:position] + code[position + 1] + code[position] + code[position + 2:]
        if swapped != code:
            # Luhn mod 32 misses exactly one swap of neighbours: 0 and Z (0 and 31)
            assert codes.is_generated(swapped) == ({code[position], code[position + 1]} == {"0", "Z"})
    blind = "0Z" + code[2:-1]
    assert codes.is_generated(blind + codes.check_symbol(blind))
    assert codes.is_generated("Z0" + code[2:-1] + codes.check_symbol(blind))
    assert len({codes.generate() for _ in range(2000)}) == 2000


def test_typed_codes_forgive_case_dashes_and_look_alike_letters():
    code = "0" + codes.generate()[1:-1]
    code = code + codes.check_symbol(code)
    typed = codes.grouped(code).lower().replace("0", "o")
    assert codes.grouped(code).count("-") == 3
    assert code in codes.lookup_candidates(typed)
    assert codes.lookup_candidates("x" * 10_000) == []
    assert codes.lookup_candidates("<script>") == []


@pytest.fixture
def shop(bu):
    return MerchantFactory(business_unit=bu, code="cinema")


@pytest.fixture
def order(member, bu, shop):
    fund(member, 1000, bu)
    item = ItemFactory(business_unit=bu, merchant=shop, kind=ItemKind.MERCHANT_COUPON, benefit="money_off",
                       face_value_cny=Decimal("50"), min_spend_cny=Decimal("200"), price_points=100)
    return order_place(member_id=member.pk, item_id=item.pk, idempotency_key="o1").order


def redeem(coupon, bu, merchant, key="w1", bill=Decimal("250.00")):
    return coupon_redeem(raw_code=codes.grouped(coupon.code).lower(), business_unit=bu, merchant=merchant,
                         bill_amount=bill, idempotency=Idempotency(scope="partner:test", key=key), by="partner:test")


def test_the_issuing_merchant_writes_a_coupon_off_once(order, bu, shop):
    coupon = order.coupons.get()

    result = redeem(coupon, bu, shop)

    assert not result.replayed
    coupon.refresh_from_db()
    assert (coupon.status, coupon.redeemed_by) == (CouponStatus.USED, shop)
    assert result.write_off.bill_amount_cny == Decimal("250.00")
    order.refresh_from_db()
    assert order.status == OrderStatus.USED
    assert redeem(coupon, bu, shop).replayed
    with pytest.raises(IdempotencyConflict):
        redeem(coupon, bu, shop, bill=Decimal("300"))
    with pytest.raises(CouponUsed):
        redeem(coupon, bu, shop, key="w2")
    assert WriteOff.objects.count() == 1
    with pytest.raises(OrderNotCancellable):
        order_cancel(order_id=order.pk)


def test_another_merchant_another_unit_a_low_bill_and_an_invalid_coupon_are_refused(order, bu, shop):
    coupon = order.coupons.get()
    neighbour = MerchantFactory(business_unit=bu, code="noodles")
    with pytest.raises(CouponMerchantNotPermitted):
        redeem(coupon, bu, neighbour)
    with pytest.raises(CouponMerchantNotPermitted):
        redeem(coupon, bu, None)
    hotel = BusinessUnitFactory(code="hotel")
    with pytest.raises(NotFound):
        redeem(coupon, hotel, MerchantFactory(business_unit=hotel))
    with pytest.raises(MinSpendNotMet):
        redeem(coupon, bu, shop, bill=Decimal("199.99"))
    with pytest.raises(MinSpendNotMet):
        redeem(coupon, bu, shop, bill=None)
    Coupon.objects.filter(pk=coupon.pk).update(valid_from=timezone.now() + timedelta(hours=1),
                                               valid_until=timezone.now() + timedelta(days=1))
    with pytest.raises(CouponNotValid):
        redeem(coupon, bu, shop)
    with pytest.raises(InvalidRequest):
        coupon_redeem(raw_code="A" * 10_000, business_unit=bu, merchant=shop, by="x")
    assert Coupon.objects.get(pk=coupon.pk).status == CouponStatus.ISSUED and not WriteOff.objects.exists()


def test_a_bu_wide_coupon_is_written_off_by_any_merchant_of_its_unit(member, bu, shop):
    fund(member, 500, bu)
    parking = ItemFactory(business_unit=bu, merchant=None)
    coupon = order_place(member_id=member.pk, item_id=parking.pk, idempotency_key="p").order.coupons.get()
    assert redeem(coupon, bu, shop).coupon.status == CouponStatus.USED


def test_the_same_merchant_undoes_a_write_off_within_the_window_only(order, bu, shop, settings):
    coupon = order.coupons.get()
    redeem(coupon, bu, shop)
    with pytest.raises(CouponMerchantNotPermitted):
        coupon_redeem_undo(raw_code=coupon.code, business_unit=bu, merchant=MerchantFactory(business_unit=bu), by="x")

    result = coupon_redeem_undo(raw_code=coupon.code, business_unit=bu, merchant=shop, by="partner:test")

    assert result.coupon.status == CouponStatus.ISSUED and result.write_off.undone_at is not None
    coupon.refresh_from_db()
    assert coupon.redeemed_at is None
    order.refresh_from_db()
    assert order.status == OrderStatus.ISSUED
    assert list(CouponEvent.objects.filter(coupon=coupon).values_list("to_status", flat=True)) == [
        "issued", "used", "issued"]
    with pytest.raises(NothingToUndo):
        coupon_redeem_undo(raw_code=coupon.code, business_unit=bu, merchant=shop, by="x")

    redeem(coupon, bu, shop, key="w2")
    WriteOff.objects.filter(undone_at__isnull=True).update(at=timezone.now() - timedelta(seconds=settings.MALL_WRITE_OFF_UNDO_SECONDS + 1))
    with pytest.raises(UndoWindowPassed):
        coupon_redeem_undo(raw_code=coupon.code, business_unit=bu, merchant=shop, by="x")
    assert list(OrderEvent.objects.filter(order=order).values_list("to_status", flat=True)) == [
        "issued", "used", "issued", "used"]


def test_a_booking_is_checked_in_from_shortly_before_its_slot(member, bu, shop):
    fund(member, 500, bu)
    room = bookable(business_unit=bu, merchant=shop)
    slot = room.slots.get()
    coupon = order_place(member_id=member.pk, item_id=room.pk, slot_id=slot.pk, idempotency_key="b").order.coupons.get()
    with pytest.raises(CouponNotValid):
        redeem(coupon, bu, shop, bill=None)
    Coupon.objects.filter(pk=coupon.pk).update(valid_from=timezone.now() - timedelta(minutes=1))
    assert redeem(coupon, bu, shop, key="w2", bill=None).coupon.status == CouponStatus.USED


def test_expiry_gives_points_back_only_if_the_item_said_so_and_runs_once(member, bu, ledger_sound):
    fund(member, 1000, bu)
    keep = ItemFactory(business_unit=bu, price_points=100)
    back = ItemFactory(business_unit=bu, price_points=70, points_back_on_expiry=True)
    kept = order_place(member_id=member.pk, item_id=keep.pk, idempotency_key="a").order
    returned = order_place(member_id=member.pk, item_id=back.pk, quantity=2, idempotency_key="b").order
    used = returned.coupons.order_by("id").first()
    used.status, used.redeemed_at = CouponStatus.USED, timezone.now()
    used.save()
    later = timezone.now() + timedelta(days=31)

    assert coupons_expire_batch(now=later) == (2, None)
    assert coupons_expire_batch(now=later) == (0, None)

    assert set(Coupon.objects.values_list("status", flat=True)) == {CouponStatus.EXPIRED, CouponStatus.USED}
    kept.refresh_from_db()
    returned.refresh_from_db()
    assert (kept.status, returned.status) == (OrderStatus.EXPIRED, OrderStatus.USED)
    cancels = Posting.objects.filter(kind=PostingKind.CANCEL)
    assert [(p.points, p.reverses_id) for p in cancels] == [(70, returned.spend_posting_id)]
    assert Wallet.objects.get(member=member).balance == 1000 - 100 - 140 + 70
    ledger_sound()


def test_expiry_works_in_bounded_batches(member, bu):
    fund(member, 1000, bu)
    item = ItemFactory(business_unit=bu, price_points=10)
    order_place(member_id=member.pk, item_id=item.pk, quantity=5, idempotency_key="a")
    later = timezone.now() + timedelta(days=31)
    expired, cursor = coupons_expire_batch(now=later, limit=2)
    assert expired == 2 and cursor is not None
    total = expired
    while cursor is not None:
        expired, cursor = coupons_expire_batch(now=later, after_id=cursor, limit=2)
        total += expired
    assert total == 5


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_negative_stock_overbooking_and_rewritten_events(member, bu):
    fund(member, 500, bu)
    item = ItemFactory(business_unit=bu, stock=1)
    order = order_place(member_id=member.pk, item_id=item.pk, idempotency_key="a").order
    room = bookable(business_unit=bu, capacity=1)
    from mall.models import Item, Slot

    for statement, error in (
        (lambda: Item.objects.filter(pk=item.pk).update(stock=-1), IntegrityError),
        (lambda: Slot.objects.filter(item=room).update(booked=2), IntegrityError),
        (lambda: Coupon.objects.filter(order=order).update(status=CouponStatus.USED), IntegrityError),  # no time
        (lambda: OrderEvent.objects.filter(order=order).update(reason="rewritten"), DatabaseError),
    ):
        with pytest.raises(error), transaction.atomic():
            statement()
    assert Item.objects.get(pk=item.pk).stock == 0 and Slot.objects.get(item=room).booked == 0
    assert OrderEvent.objects.get(order=order).reason == "placed"

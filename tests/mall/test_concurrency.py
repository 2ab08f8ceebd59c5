"""The mall's guarantees under real races: threads, each on its own PostgreSQL connection.

Every test commits (transaction=True), so the wallet and item row locks, the conditional updates
and the CHECK constraints behave as in production. Threads open their connection, meet at a
barrier, run, and close their connection; every wait is bounded and a thread still alive after
the bound fails the test. A deadlock would surface as a database error in an outcome, which the
tests count as a failure.

Scale: the issue's figures, 200 orders (200 threads, 200 connections: the test cluster allows
300) for a stock of 50, and 20 requests of one member against a limit of one.
"""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from mall.exceptions import (
    CouponNotValid,
    CouponUsed,
    LimitReached,
    OrderNotCancellable,
    OutOfStock,
    SlotFull,
)
from mall.models import Coupon, CouponStatus, Item, ItemKind, Order, OrderStatus, Slot, WriteOff
from mall.services import coupon_expire, coupon_redeem, order_cancel, order_place, organization_order_place
from points.exceptions import InsufficientPoints
from points.ledger import Idempotency
from points.models import Posting, PostingKind, Wallet
from points.selectors import ledger_problems
from tests.factories import BusinessUnitFactory, MerchantFactory, enrol_member
from tests.factories import ItemFactory, OrganizationFactory, bookable, fund, fund_organization, organization_admin

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 90


def run_together(calls):
    """Run each callable in its own thread, all released at once; [(ok, value or exception)] in order."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def worker(index, call):
        try:
            connection.ensure_connection()
            barrier.wait(timeout=WAIT_SECONDS)
            outcomes[index] = (True, call())
        except Exception as exc:  # noqa: BLE001 - the outcome is asserted by the test
            outcomes[index] = (False, exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call), daemon=True) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish: lock wait or deadlock"
    return outcomes


def successes(outcomes):
    return [value for ok, value in outcomes if ok]


def failures(outcomes):
    return [value for ok, value in outcomes if not ok]


def assert_ledger_sound():
    assert ledger_problems() == {}
    call_command("verify_ledger")


@pytest.fixture
def mall():
    return BusinessUnitFactory(code="mall")


def members_with(points, count, bu):
    members = [enrol_member(name=f"Racer {n}") for n in range(count)]
    for member in members:
        fund(member, points, bu)
    return members


def test_two_hundred_orders_for_a_stock_of_fifty_sell_exactly_fifty(mall):
    item = ItemFactory(business_unit=mall, price_points=120, stock=50)
    members = members_with(500, 200, mall)

    outcomes = run_together([
        lambda m=m: order_place(member_id=m.pk, item_id=item.pk, idempotency_key="flash") for m in members
    ])

    assert len(successes(outcomes)) == 50
    refused = failures(outcomes)
    assert len(refused) == 150 and all(isinstance(exc, OutOfStock) for exc in refused), refused
    assert Item.objects.get(pk=item.pk).stock == 0
    assert Order.objects.count() == 50 and Coupon.objects.count() == 50
    spent = Posting.objects.filter(kind=PostingKind.SPEND).aggregate(total=Sum("points"))["total"]
    assert spent == -50 * 120
    assert sum(Wallet.objects.filter(member__in=members).values_list("balance", flat=True)) == 200 * 500 - 50 * 120
    assert_ledger_sound()


def test_a_limit_of_one_raced_by_twenty_requests_of_one_member_orders_once(mall):
    item = ItemFactory(business_unit=mall, price_points=50, limit_total=1)
    member = members_with(1000, 1, mall)[0]

    outcomes = run_together([
        lambda n=n: order_place(member_id=member.pk, item_id=item.pk, idempotency_key=f"tap-{n}") for n in range(20)
    ])

    assert len(successes(outcomes)) == 1
    assert all(isinstance(exc, LimitReached) for exc in failures(outcomes)), failures(outcomes)
    assert Order.objects.count() == 1 and Wallet.objects.get(member=member).balance == 950
    assert_ledger_sound()


def test_ten_retries_of_one_key_place_one_order_and_spend_once(mall):
    item = ItemFactory(business_unit=mall, price_points=80, stock=5)
    member = members_with(1000, 1, mall)[0]

    outcomes = run_together([
        lambda: order_place(member_id=member.pk, item_id=item.pk, quantity=2, idempotency_key="retry") for _ in range(10)
    ])

    assert failures(outcomes) == []
    results = successes(outcomes)
    assert len({result.order.pk for result in results}) == 1 and sum(not r.replayed for r in results) == 1
    assert Wallet.objects.get(member=member).balance == 1000 - 160 and Item.objects.get(pk=item.pk).stock == 3
    assert Posting.objects.filter(kind=PostingKind.SPEND).count() == 1
    assert_ledger_sound()


def test_a_slot_of_capacity_three_raced_by_ten_members_books_three(mall):
    room = bookable(business_unit=mall, capacity=3, price_points=200)
    slot = room.slots.get()
    members = members_with(500, 10, mall)

    outcomes = run_together([
        lambda m=m: order_place(member_id=m.pk, item_id=room.pk, slot_id=slot.pk, idempotency_key="book")
        for m in members
    ])

    assert len(successes(outcomes)) == 3
    assert all(isinstance(exc, SlotFull) for exc in failures(outcomes)), failures(outcomes)
    assert Slot.objects.get(pk=slot.pk).booked == 3
    assert Posting.objects.filter(kind=PostingKind.SPEND).aggregate(total=Sum("points"))["total"] == -600
    assert_ledger_sound()


def test_one_code_redeemed_by_twenty_racing_tills_is_written_off_once(mall):
    cinema = MerchantFactory(business_unit=mall, code="cinema")
    item = ItemFactory(business_unit=mall, merchant=cinema, kind=ItemKind.MERCHANT_COUPON, benefit="fixed_value",
                       face_value_cny=Decimal("40"))
    member = members_with(500, 1, mall)[0]
    code = order_place(member_id=member.pk, item_id=item.pk, idempotency_key="o").order.coupons.get().code

    outcomes = run_together([
        lambda n=n: coupon_redeem(raw_code=code, business_unit=mall, merchant=cinema, by="partner:till",
                                  idempotency=Idempotency(scope="partner:till", key=f"scan-{n}"))
        for n in range(20)
    ])

    assert len(successes(outcomes)) == 1
    assert all(isinstance(exc, CouponUsed) for exc in failures(outcomes)), failures(outcomes)
    assert WriteOff.objects.count() == 1 and Coupon.objects.get().status == CouponStatus.USED
    assert Order.objects.get().status == OrderStatus.USED


def test_cancel_write_off_and_expiry_racing_on_one_coupon_exactly_one_wins(mall):
    cinema = MerchantFactory(business_unit=mall, code="cinema")
    item = ItemFactory(business_unit=mall, merchant=cinema, price_points=100, points_back_on_expiry=True)
    member = members_with(1000, 1, mall)[0]
    rounds = 6
    orders = [order_place(member_id=member.pk, item_id=item.pk, idempotency_key=f"o{n}").order for n in range(rounds)]
    # Each coupon is still valid for the till, and already past its end for the expiry job's clock.
    later = timezone.now() + timedelta(days=60)

    for order in orders:
        coupon = order.coupons.get()
        outcomes = run_together([
            lambda: order_cancel(order_id=order.pk, member_id=member.pk),
            lambda: coupon_redeem(raw_code=coupon.code, business_unit=mall, merchant=cinema, by="partner:till"),
            lambda: coupon_expire(coupon_id=coupon.pk, now=later),
        ])
        won = [ok and value is not False for ok, value in outcomes]
        assert sum(won) == 1, outcomes
        assert all(isinstance(exc, (OrderNotCancellable, CouponUsed, CouponNotValid)) for exc in failures(outcomes))
        coupon.refresh_from_db()
        order.refresh_from_db()
        expected = {0: (CouponStatus.CANCELLED, OrderStatus.CANCELLED), 1: (CouponStatus.USED, OrderStatus.USED),
                    2: (CouponStatus.EXPIRED, OrderStatus.EXPIRED)}[won.index(True)]
        assert (coupon.status, order.status) == expected

    # Points came back exactly once for each cancelled or expired order, never for a used one.
    back = Order.objects.filter(status__in=[OrderStatus.CANCELLED, OrderStatus.EXPIRED]).count()
    assert Posting.objects.filter(kind=PostingKind.CANCEL).count() == back
    assert Wallet.objects.get(member=member).balance == 1000 - 100 * rounds + 100 * back
    assert_ledger_sound()


def test_two_admins_racing_against_the_organizations_points_never_overspend_it():
    """Twelve bookings by two administrators at once, 1,000 points each, against a company
    wallet of 5,000: the organization wallet's lock serialises them; exactly five are placed."""
    park = BusinessUnitFactory(code="park-race")
    company = OrganizationFactory(code="race-co")
    fund_organization(company, 5000, park)
    admins = [organization_admin(company), organization_admin(company)]
    room = bookable(business_unit=park, price_points=1000, slots=1, capacity=20)
    slot = room.slots.get()
    outcomes = run_together([
        lambda i=i: organization_order_place(admin=admins[i % 2], item_id=room.pk, slot_id=slot.pk,
                                             idempotency_key=f"race-{i}")
        for i in range(12)
    ])
    placed, refused = successes(outcomes), failures(outcomes)
    assert len(placed) == 5, refused
    assert all(isinstance(error, InsufficientPoints) for error in refused), refused
    assert {result.order.member_id for result in placed} <= {admin.pk for admin in admins}
    organization_wallet = Wallet.objects.get(organization=company)
    assert (organization_wallet.balance, organization_wallet.held) == (0, 0)
    spent = Posting.objects.filter(wallet=organization_wallet, kind=PostingKind.SPEND).aggregate(total=Sum("points"))
    assert spent["total"] == -5000
    assert Order.objects.filter(organization=company).count() == 5
    assert Slot.objects.get(pk=slot.pk).booked == 5
    assert list(Wallet.objects.filter(member__in=admins).values_list("balance", flat=True)) == [0, 0]
    assert_ledger_sound()


def test_ten_retries_of_one_admins_key_book_once_for_the_organization():
    park = BusinessUnitFactory(code="park-retry")
    company = OrganizationFactory(code="retry-co")
    fund_organization(company, 5000, park)
    admin = organization_admin(company)
    room = bookable(business_unit=park, price_points=1000, slots=1, capacity=20)
    slot = room.slots.get()
    outcomes = run_together([
        lambda: organization_order_place(admin=admin, item_id=room.pk, slot_id=slot.pk, idempotency_key="once")
        for _ in range(10)
    ])
    results = successes(outcomes)
    assert len(results) == 10, failures(outcomes)
    assert len({result.order.pk for result in results}) == 1
    assert sum(not result.replayed for result in results) == 1
    assert Wallet.objects.get(organization=company).balance == 4000
    assert_ledger_sound()

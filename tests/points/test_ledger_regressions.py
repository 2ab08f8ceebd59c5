"""Regression tests for bugs that loyalty systems are known to ship, one family per section.

(Tiers computed from the current balance instead of points earned belong to the tiers tests.)
"""

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from math import floor
from unittest import mock

import pytest

from points.rules.engine import floor_points
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from points.exceptions import IdempotencyConflict, InsufficientPoints, InvalidOccurredAt, ReversalExceedsOriginal
from points.expiry import expiry_run_batch
from points.models import Account, Lot, LotMovement, Posting, PostingKind
from points.earning import points_earn
from points.ledger import Idempotency
from points.services import points_adjust, points_spend, posting_reverse
from tests.factories import BusinessUnitFactory, enrol_member


def wallet_state(member):
    member.wallet.refresh_from_db()
    return member.wallet.balance, member.wallet.debt


# --- a refund that keeps the earned points ------------------------------------------------


def test_full_refund_takes_back_every_earned_point(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("250.00")).posting
    posting_reverse(posting_id=earn.pk, reason="order returned")
    assert wallet_state(member) == (0, 0)
    assert Lot.objects.get(posting=earn).remaining == 0
    ledger_sound()


def test_refund_after_the_points_were_spent_leaves_a_debt_not_a_gift(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100).posting
    points_spend(member_id=member.pk, points=100, business_unit=bu)
    posting_reverse(posting_id=earn.pk, reason="order returned")
    assert wallet_state(member) == (0, 100)
    points_earn(member_id=member.pk, business_unit=bu, points=150)
    assert wallet_state(member) == (50, 0)
    ledger_sound()


def test_refund_of_an_earn_after_other_earnings_takes_from_them(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100).posting
    points_spend(member_id=member.pk, points=100, business_unit=bu)
    points_earn(member_id=member.pk, business_unit=bu, points=60)
    posting_reverse(posting_id=earn.pk)
    assert wallet_state(member) == (0, 40)
    ledger_sound()


def test_cancelled_spend_after_refund_repays_the_debt_first(bu, member, ledger_sound):
    """Earn on a purchase, spend it, return the purchase, cancel the spend: the member ends where
    they started. Giving the points back to the wallet while the debt stays would let the member
    spend the refunded purchase's points a second time."""
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100).posting
    spend = points_spend(member_id=member.pk, points=100, business_unit=bu).posting
    posting_reverse(posting_id=earn.pk, reason="purchase returned")
    assert wallet_state(member) == (0, 100)

    cancel = posting_reverse(posting_id=spend.pk, points=30, reason="voucher cancelled").posting
    assert wallet_state(member) == (0, 70)
    assert {(e.account, e.amount) for e in cancel.entries.all()} == {(Account.REDEMPTION, -30), (Account.DEBT, 30)}
    assert not LotMovement.objects.filter(posting=cancel).exists()

    posting_reverse(posting_id=spend.pk, reason="voucher cancelled")
    assert wallet_state(member) == (0, 0)
    with pytest.raises(InsufficientPoints):
        points_spend(member_id=member.pk, points=1, business_unit=bu)
    ledger_sound()


def test_cancel_larger_than_the_debt_gives_the_rest_back_to_the_lots(bu, member, ledger_sound):
    yesterday = timezone.now() - timedelta(days=1)
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100, occurred_at=yesterday)
    other = points_earn(member_id=member.pk, business_unit=bu, points=50).posting
    spend = points_spend(member_id=member.pk, points=120, business_unit=bu).posting
    posting_reverse(posting_id=other.pk)
    assert wallet_state(member) == (0, 20)
    posting_reverse(posting_id=spend.pk)
    assert wallet_state(member) == (100, 0)
    # The 100 go back to the lots the spend consumed, latest-expiring first (as far as it took).
    assert Lot.objects.get(posting=other).remaining == 20
    assert Lot.objects.get(posting=earn.posting).remaining == 80
    ledger_sound()


# --- a replayed order event earning twice --------------------------------------------------


def test_replayed_order_event_earns_once(bu, member, ledger_sound):
    key = Idempotency(scope="partner:7", key="pos-order-1001")
    event = {"member_id": member.pk, "business_unit": bu, "amount_cny": Decimal("99.50"), "receipt_no": "R1001"}
    first = points_earn(**event, idempotency=key)
    points_spend(member_id=member.pk, points=99, business_unit=bu)
    replays = [points_earn(**event, idempotency=key) for _ in range(5)]
    assert all(r.replayed and r.posting.pk == first.posting.pk for r in replays)
    assert Posting.objects.filter(kind=PostingKind.EARN).count() == 1
    assert wallet_state(member) == (0, 0)
    ledger_sound()


def test_backdated_order_event_retried_after_the_window_replays(bu, member, ledger_sound):
    """A POS queue retries an accepted earn backdated 29 days, two days later: same answer."""
    key = Idempotency(scope="partner:7", key="offline-order-9")
    event = {"member_id": member.pk, "business_unit": bu, "points": 40,
             "occurred_at": timezone.now() - timedelta(days=29)}
    first = points_earn(**event, idempotency=key)
    later = timezone.now() + timedelta(days=2)
    with mock.patch("django.utils.timezone.now", return_value=later):
        retry = points_earn(**event, idempotency=key)
        with pytest.raises(IdempotencyConflict):
            points_earn(**dict(event, points=41), idempotency=key)
        with pytest.raises(InvalidOccurredAt):
            points_earn(**event, idempotency=Idempotency(scope="partner:7", key="offline-order-10"))
    assert retry.replayed and retry.posting.pk == first.posting.pk
    assert wallet_state(member) == (40, 0)
    ledger_sound()


def test_order_event_reused_for_another_order_is_refused(bu, member):
    key = Idempotency(scope="partner:7", key="pos-order-1001")
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("99.50"), receipt_no="R1001", idempotency=key)
    with pytest.raises(IdempotencyConflict):
        points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("99.50"), receipt_no="R1002",
                    idempotency=key)
    assert wallet_state(member) == (99, 0)


def test_replayed_refund_refunds_once(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100).posting
    key = Idempotency(scope="partner:7", key="return-1")
    results = [posting_reverse(posting_id=earn.pk, points=40, idempotency=key) for _ in range(3)]
    assert [r.replayed for r in results] == [False, True, True]
    assert wallet_state(member) == (60, 0)
    ledger_sound()


# --- a bulk operation driving a balance negative -------------------------------------------


def test_spend_loop_stops_at_zero(bu, member, ledger_sound):
    points_earn(member_id=member.pk, business_unit=bu, points=100)
    succeeded, refused = 0, 0
    for i in range(25):
        try:
            points_spend(member_id=member.pk, points=7, business_unit=bu, idempotency=Idempotency("bulk", f"s{i}"))
            succeeded += 1
        except InsufficientPoints:
            refused += 1
        assert wallet_state(member)[0] >= 0
    assert (succeeded, refused) == (14, 11)
    assert wallet_state(member) == (2, 0)
    ledger_sound()


def test_negative_adjustment_loop_stops_at_zero(bu, member, operator, ledger_sound):
    points_earn(member_id=member.pk, business_unit=bu, points=50)
    outcomes = []
    for _ in range(8):
        try:
            points_adjust(member_id=member.pk, points=-15, business_unit=bu, reason="bulk correction", actor=operator)
            outcomes.append(True)
        except InsufficientPoints:
            outcomes.append(False)
    assert outcomes == [True, True, True, False, False, False, False, False]
    assert wallet_state(member) == (5, 0)
    ledger_sound()


def test_partial_refund_loop_stops_at_the_original(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100).posting
    refunded = 0
    for _ in range(10):
        try:
            posting_reverse(posting_id=earn.pk, points=30)
            refunded += 30
        except ReversalExceedsOriginal:
            break
    posting_reverse(posting_id=earn.pk)
    assert refunded == 90
    assert wallet_state(member) == (0, 0)
    ledger_sound()


def test_bulk_spend_cannot_use_pending_points(bu, member, ledger_sound):
    pending_bu = BusinessUnitFactory(code="hotel", pending_days=7)
    points_earn(member_id=member.pk, business_unit=bu, points=20)
    points_earn(member_id=member.pk, business_unit=pending_bu, points=500)
    spent = 0
    for _ in range(10):
        try:
            points_spend(member_id=member.pk, points=10, business_unit=bu)
            spent += 10
        except InsufficientPoints:
            pass
    assert spent == 20
    assert wallet_state(member) == (500, 0)
    ledger_sound()


# --- float rounding eating a point ---------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "rate", "points"),
    [
        ("0.29", "100", 29),  # 0.29 * 100 == 28.999999999999996 in float
        ("0.57", "100", 57),  # 56.99999999999999 in float
        ("19.99", "100", 1999),  # 1998.9999999999998 in float
        ("59.97", "100", 5997),  # three items at 19.99
        ("19.99", "3", 59),
        ("1.15", "100", 115),
        ("4.35", "100", 435),
        ("99.99", "1", 99),
        ("0.01", "0.5", 0),
        ("12.34", "1.5", 18),
    ],
)
def test_purchase_points_never_lose_a_point_to_float(member, amount, rate, points, ledger_sound):
    bu = BusinessUnitFactory(code="mall", earn_rate=Decimal(rate))
    bu.refresh_from_db()
    result = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal(amount))
    assert (result.posting.points if result.posting else 0) == points
    assert wallet_state(member) == (points, 0)
    ledger_sound()


def test_three_items_at_19_99_earn_every_point():
    per_item = floor_points((Decimal("19.99")) * Decimal("100"))
    assert per_item == 1999
    assert 3 * per_item == floor_points((Decimal("19.99") * 3) * Decimal("100")) == 5997
    assert floor(19.99 * 100) == 1998  # the float bug this guards against


@settings(max_examples=300, deadline=None)
@given(
    cents=st.integers(min_value=0, max_value=10**11),
    rate=st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
)
def test_purchase_points_is_the_exact_floor(cents, rate):
    amount = Decimal(cents) / 100
    assert floor_points((amount) * rate) == floor(Fraction(cents, 100) * Fraction(rate))


# --- expiry deducting twice ----------------------------------------------------------------


@pytest.fixture
def expiring(bu):
    members = [enrol_member(name=f"E{i}") for i in range(5)]
    for i, member in enumerate(members):
        points_earn(member_id=member.pk, business_unit=bu, points=10 * (i + 1))
    return members, timezone.now() + timedelta(days=800)


def test_expiry_run_twice_expires_once(expiring, ledger_sound):
    members, later = expiring
    assert expiry_run_batch(now=later) == (5, None)
    assert expiry_run_batch(now=later) == (0, None)
    assert expiry_run_batch(now=later + timedelta(days=1)) == (0, None)
    assert expiry_run_batch(now=later)[0] == 0
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 5
    assert sorted(Posting.objects.filter(kind=PostingKind.EXPIRE).values_list("points", flat=True)) == [
        -50, -40, -30, -20, -10]
    ledger_sound()


def test_expiry_restarted_after_a_crash_expires_nothing_twice(expiring, ledger_sound):
    """A run that stopped after its first batch, then a fresh run from the start."""
    members, later = expiring
    written, cursor = expiry_run_batch(now=later, batch_size=2)
    assert (written, cursor) == (2, members[1].wallet.pk)
    total, cursor = 0, 0
    while cursor is not None:
        written, cursor = expiry_run_batch(now=later, after_wallet_id=cursor, batch_size=2)
        total += written
    assert total == 3
    assert LotMovement.objects.filter(posting__kind=PostingKind.EXPIRE).count() == 5
    assert all(wallet_state(m) == (0, 0) for m in members)
    ledger_sound()


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 6])
def test_expiry_batches_never_skip_a_wallet(bu, batch_size, ledger_sound):
    """Wallets with nothing due sit between wallets with due lots; every batch size reaches all."""
    later = timezone.now() + timedelta(days=800)
    long_lived = BusinessUnitFactory(code="tourism", expiry_months=60)
    due = []
    for i in range(9):
        member = enrol_member(name=f"W{i}")
        points_earn(member_id=member.pk, business_unit=bu if i % 3 else long_lived, points=5)
        if i % 3:
            due.append(member)
    total, cursor, batches = 0, 0, 0
    while cursor is not None:
        written, cursor = expiry_run_batch(now=later, after_wallet_id=cursor, batch_size=batch_size)
        total += written
        batches += 1
    assert total == len(due) == 6
    assert batches == len(due) // batch_size + 1
    assert all(wallet_state(m) == (0, 0) for m in due)
    assert Lot.objects.filter(business_unit=long_lived, remaining=5).count() == 3
    ledger_sound()


def test_points_given_back_to_an_expired_lot_expire_once_more_only(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100).posting
    spend = points_spend(member_id=member.pk, points=40, business_unit=bu).posting
    later = timezone.now() + timedelta(days=800)
    assert expiry_run_batch(now=later) == (1, None)
    posting_reverse(posting_id=spend.pk)
    assert wallet_state(member) == (40, 0)
    assert expiry_run_batch(now=later + timedelta(seconds=1)) == (1, None)
    expired = Posting.objects.filter(kind=PostingKind.EXPIRE).order_by("id").values_list("points", flat=True)
    assert list(expired) == [-60, -40]
    assert Lot.objects.get(posting=earn).remaining == 0
    assert wallet_state(member) == (0, 0)
    ledger_sound()

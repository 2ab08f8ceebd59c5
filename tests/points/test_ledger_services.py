"""Unit tests of the ledger services: earn, spend, reverse, adjust, freeze, expire."""

from datetime import timedelta
from decimal import Decimal

import pytest

from points.rules.engine import floor_points
from django.utils import timezone

from points.exceptions import (
    AccountFrozen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidOccurredAt,
    InvalidPoints,
    NotReversible,
    ReasonRequired,
    ReversalExceedsOriginal,
)
from points.expiry import expiry_run_batch
from points.models import Account, Entry, Lot, Posting, PostingKind, Wallet
from points.selectors import wallet_balance
from points.earning import points_earn
from points.ledger import Idempotency
from points.services import (
    points_adjust,
    points_spend,
    posting_reverse,
    wallet_freeze,
    wallet_unfreeze,
)

KEY = Idempotency(scope="partner:1", key="k-1")


def balance_of(member):
    member.wallet.refresh_from_db()
    return member.wallet.balance


def state_of(member):
    member.wallet.refresh_from_db()
    return wallet_balance(wallet=member.wallet)


def test_purchase_earn_rounds_down_in_decimal(bu, member, ledger_sound):
    result = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("99.99"))
    assert result.posting.points == 99
    assert balance_of(member) == 99
    assert floor_points((Decimal("0.29")) * Decimal("100")) == 29  # float would give 28
    lot = Lot.objects.get(posting=result.posting)
    assert (lot.amount, lot.remaining) == (99, 99)
    entries = {(e.account, e.amount) for e in result.posting.entries.all()}
    assert entries == {(Account.ISSUANCE, -99), (Account.WALLET, 99)}
    ledger_sound()


def test_zero_point_purchase_writes_no_posting_and_a_retry_none_either(bu, member, ledger_sound):
    """A posting of nothing is noise in every history, export and statement: none is written."""
    result = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("0.50"), idempotency=KEY)
    assert result.posting is None and not result.replayed
    again = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("0.50"), idempotency=KEY)
    assert again.posting is None
    assert not Posting.objects.exists()
    assert Wallet.objects.get(member=member).balance == 0
    ledger_sound()


def test_earn_rejects_bad_input(bu, member):
    with pytest.raises(InvalidPoints):
        points_earn(member_id=member.pk, business_unit=bu, points=0)
    with pytest.raises(InvalidPoints):
        points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("10"), points=5)
    with pytest.raises(InvalidOccurredAt):
        points_earn(member_id=member.pk, business_unit=bu, points=5, occurred_at=timezone.now() + timedelta(hours=1))
    assert not Posting.objects.exists()


def test_idempotent_replay_and_conflict(bu, member):
    first = points_earn(member_id=member.pk, business_unit=bu, points=100, idempotency=KEY)
    replay = points_earn(member_id=member.pk, business_unit=bu, points=100, idempotency=KEY)
    assert replay.replayed and replay.posting.pk == first.posting.pk
    assert balance_of(member) == 100
    with pytest.raises(IdempotencyConflict):
        points_earn(member_id=member.pk, business_unit=bu, points=101, idempotency=KEY)
    assert Posting.objects.count() == 1


def test_same_key_in_another_scope_is_independent(bu, member):
    points_earn(member_id=member.pk, business_unit=bu, points=10, idempotency=KEY)
    points_earn(member_id=member.pk, business_unit=bu, points=10, idempotency=Idempotency(scope="partner:2", key="k-1"))
    assert balance_of(member) == 20


def test_spend_consumes_earliest_expiry_first(bu, member, ledger_sound):
    now = timezone.now()
    older = points_earn(member_id=member.pk, business_unit=bu, points=50, occurred_at=now - timedelta(days=20))
    newer = points_earn(member_id=member.pk, business_unit=bu, points=50, occurred_at=now - timedelta(days=1))
    points_spend(member_id=member.pk, points=70, business_unit=bu)
    assert Lot.objects.get(posting=older.posting).remaining == 0
    assert Lot.objects.get(posting=newer.posting).remaining == 30
    assert balance_of(member) == 30
    ledger_sound()


def test_spend_refused_when_insufficient_posts_nothing_and_retry_is_judged_afresh(bu, member):
    key = Idempotency(scope="partner:1", key="spend-1")
    points_earn(member_id=member.pk, business_unit=bu, points=10)
    with pytest.raises(InsufficientPoints):
        points_spend(member_id=member.pk, points=20, business_unit=bu, idempotency=key)
    assert Posting.objects.filter(kind=PostingKind.SPEND).count() == 0
    points_earn(member_id=member.pk, business_unit=bu, points=10)
    result = points_spend(member_id=member.pk, points=20, business_unit=bu, idempotency=key)
    assert not result.replayed and balance_of(member) == 0


def test_pending_points_cannot_be_spent(bu, member):
    bu.pending_days = 7
    bu.save()
    points_earn(member_id=member.pk, business_unit=bu, points=100)
    balance = state_of(member)
    assert (balance.total, balance.pending, balance.available) == (100, 100, 0)
    with pytest.raises(InsufficientPoints):
        points_spend(member_id=member.pk, points=1, business_unit=bu)


def test_frozen_wallet_cannot_spend_but_can_earn(bu, member, operator):
    points_earn(member_id=member.pk, business_unit=bu, points=100)
    with pytest.raises(ReasonRequired):
        wallet_freeze(member_id=member.pk, reason=" ", actor=operator)
    wallet_freeze(member_id=member.pk, reason="fraud review", actor=operator)
    with pytest.raises(AccountFrozen):
        points_spend(member_id=member.pk, points=1, business_unit=bu)
    points_earn(member_id=member.pk, business_unit=bu, points=5)
    balance = state_of(member)
    assert (balance.available, balance.frozen) == (0, 105)
    wallet_unfreeze(member_id=member.pk, reason="cleared", actor=operator)
    points_spend(member_id=member.pk, points=105, business_unit=bu)
    assert member.wallet.status_changes.count() == 2


def test_refund_after_spend_creates_debt_repaid_by_next_earn(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100)
    points_spend(member_id=member.pk, points=80, business_unit=bu)
    refund = posting_reverse(posting_id=earn.posting.pk, reason="goods returned")
    assert refund.posting.kind == PostingKind.REFUND and refund.posting.points == -100
    member.wallet.refresh_from_db()
    assert (member.wallet.balance, member.wallet.debt) == (0, 80)
    later = points_earn(member_id=member.pk, business_unit=bu, points=50)
    member.wallet.refresh_from_db()
    assert (member.wallet.balance, member.wallet.debt) == (0, 30)
    assert not Lot.objects.filter(posting=later.posting).exists()
    points_earn(member_id=member.pk, business_unit=bu, points=50)
    member.wallet.refresh_from_db()
    assert (member.wallet.balance, member.wallet.debt) == (20, 0)
    ledger_sound()


def test_refund_keeps_no_earned_points(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("300"))
    posting_reverse(posting_id=earn.posting.pk, points=100, reason="partial return")
    assert balance_of(member) == 200
    posting_reverse(posting_id=earn.posting.pk, reason="rest returned")
    assert balance_of(member) == 0
    with pytest.raises(ReversalExceedsOriginal):
        posting_reverse(posting_id=earn.posting.pk, points=1)
    ledger_sound()


def test_cancel_gives_back_to_the_consumed_lots(bu, member, ledger_sound):
    first = points_earn(member_id=member.pk, business_unit=bu, points=30, occurred_at=timezone.now() - timedelta(days=3))
    second = points_earn(member_id=member.pk, business_unit=bu, points=30)
    spend = points_spend(member_id=member.pk, points=50, business_unit=bu)
    posting_reverse(posting_id=spend.posting.pk, points=10)
    assert Lot.objects.get(posting=second.posting).remaining == 20
    posting_reverse(posting_id=spend.posting.pk)
    assert Lot.objects.get(posting=first.posting).remaining == 30
    assert Lot.objects.get(posting=second.posting).remaining == 30
    assert balance_of(member) == 60
    ledger_sound()


def test_cancel_after_the_lot_expired_gives_the_points_back_as_a_new_lot(bu, other_bu, member, ledger_sound):
    """Given back to the expired lot they came from, the points would expire again at the next
    run: they come back as a new lot of the same issuer, valid POINTS_REGRANT_DAYS days."""
    from points.ledger.builder import regrant_expiry

    hotel_lot = Lot.objects.get(posting=points_earn(member_id=member.pk, business_unit=other_bu, points=40).posting)
    spend = points_spend(member_id=member.pk, points=40, business_unit=bu).posting
    past = timezone.now() - timedelta(seconds=1)
    Lot.objects.filter(pk=hotel_lot.pk).update(available_at=past - timedelta(days=1), expires_at=past)
    cancel = posting_reverse(posting_id=spend.pk, points=25).posting
    assert Lot.objects.get(pk=hotel_lot.pk).remaining == 0, "the expired lot takes nothing back"
    regranted = Lot.objects.get(posting=cancel)
    assert (regranted.amount, regranted.business_unit_id, regranted.earned_at) == (25, other_bu.pk, hotel_lot.earned_at)
    assert regranted.expires_at == regrant_expiry(regranted.available_at)
    assert wallet_balance(wallet=Wallet.objects.get(member=member)).available == 25
    assert expiry_run_batch(now=timezone.now())[0] == 0, "nothing of it is due"
    ledger_sound()


def test_reverse_scoped_to_business_unit_and_kind(bu, other_bu, member, operator):
    from points.exceptions import NotFound

    earn = points_earn(member_id=member.pk, business_unit=bu, points=30)
    with pytest.raises(NotFound):
        posting_reverse(posting_id=earn.posting.pk, business_unit=other_bu)
    adjust = points_adjust(member_id=member.pk, points=5, business_unit=bu, reason="goodwill", actor=operator)
    with pytest.raises(NotReversible):
        posting_reverse(posting_id=adjust.posting.pk)


def test_adjust_needs_reason_and_never_drives_balance_negative(bu, member, operator, ledger_sound):
    with pytest.raises(ReasonRequired):
        points_adjust(member_id=member.pk, points=10, business_unit=bu, reason="", actor=operator)
    points_adjust(member_id=member.pk, points=10, business_unit=bu, reason="goodwill", actor=operator)
    with pytest.raises(InsufficientPoints):
        points_adjust(member_id=member.pk, points=-11, business_unit=bu, reason="correction", actor=operator)
    points_adjust(member_id=member.pk, points=-10, business_unit=bu, reason="correction", actor=operator)
    assert balance_of(member) == 0
    assert Entry.objects.filter(account=Account.ADJUSTMENT).count() == 2
    ledger_sound()


def test_expiry_boundary_end_of_local_day(bu, member, ledger_sound, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    earn = points_earn(member_id=member.pk, business_unit=bu, points=40)
    lot = Lot.objects.get(posting=earn.posting)
    local_expiry = timezone.localtime(lot.expires_at, timezone=__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert (local_expiry.hour, local_expiry.minute, local_expiry.second) == (23, 59, 59)
    assert expiry_run_batch(now=lot.expires_at) == (0, None)
    assert balance_of(member) == 40
    written, cursor = expiry_run_batch(now=lot.expires_at + timedelta(microseconds=1))
    assert (written, cursor) == (1, None)
    assert balance_of(member) == 0
    assert expiry_run_batch(now=lot.expires_at + timedelta(days=1)) == (0, None)
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 1
    ledger_sound()


def test_expiry_one_posting_per_member_across_lots_and_bus(bu, other_bu, member, ledger_sound):
    points_earn(member_id=member.pk, business_unit=bu, points=10)
    points_earn(member_id=member.pk, business_unit=other_bu, points=20)
    later = timezone.now() + timedelta(days=800)
    assert expiry_run_batch(now=later) == (1, None)
    expire = Posting.objects.get(kind=PostingKind.EXPIRE)
    assert expire.points == -30
    assert {(e.account, e.business_unit_id, e.amount) for e in expire.entries.all()} == {
        (Account.WALLET, None, -30), (Account.EXPIRY, bu.pk, 10), (Account.EXPIRY, other_bu.pk, 20)}
    ledger_sound()

"""The hold primitive of the points ledger, through its public functions.

A hold reserves available points of a wallet (points.ledger.hold_place) until it is captured
(hold_capture: a spend posting), voided (hold_void) or expired (the sweep holds_release_expired,
or the ledger itself when a spend needs the points), exactly once. These tests cover placing
(validation, consumption order, lifetime), idempotency, what held points are safe from (spends,
refunds, the expiry run), capture, void, the balance reads, the sweep, and real races between
them. Every test ends with the ledger's invariants (`ledger_sound`).

Time is never patched. Short-lived lots come from a business unit whose points expire at the end
of today (expiry_months=0), and the expiry run and the sweep are handed a `now` past those ends.
A hold is put past its expiry by moving its expires_at back through the ORM (holds are not
append-only).

The races (last section) commit for real (transactional_db): each operation runs in its own
thread on its own connection, closed when the thread ends; the threads start together at a
barrier, every wait is bounded, and a thread still alive fails the test.
"""

from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from points.earning import points_earn
from points.exceptions import (
    AccountFrozen,
    CaptureExceedsHold,
    HoldExpired,
    HoldResolved,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidHold,
)
from points.expiry import expiry_run_batch
from points.ledger import (
    Idempotency,
    hold_capture,
    hold_place,
    hold_void,
    holds_release_expired,
)
from points.models import (
    Entry,
    ExpiryKind,
    Hold,
    HoldAllocation,
    HoldEvent,
    HoldStatus,
    Lot,
    LotExpiryChange,
    LotMovement,
    Posting,
    PostingKind,
    Wallet,
)
from points.selectors import member_balance, wallet_balance
from points.services import points_spend, posting_reverse, wallet_freeze
from points.timeutils import expiry_after_months
from tests.concurrency import run_together
from tests.factories import BusinessUnitFactory, enrol_member
from tests.factories import ExpiryPolicyFactory

MAX_LIFETIME = timedelta(seconds=settings.POINTS_HOLD_MAX_SECONDS)
SECOND = timedelta(seconds=1)


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def park(db):
    """A business unit whose points expire after one month, before the mall's (twelve)."""
    return BusinessUnitFactory(code="park", expiry_months=1)


@pytest.fixture
def today_only(db):
    """A business unit whose points expire at the end of today (the group's time zone)."""
    return BusinessUnitFactory(code="kiosk", expiry_months=0)


@pytest.fixture
def pending_bu(db):
    """A business unit whose points stay pending for a week."""
    return BusinessUnitFactory(code="resort", pending_days=7)


def earn(member, business_unit, points, **fields) -> Lot:
    """Earn `points` fixed points; the one lot they make."""
    posting = points_earn(member_id=member.pk, business_unit=business_unit, points=points, **fields).posting
    return Lot.objects.get(posting=posting)


def place(member, points, business_unit, **fields) -> Hold:
    fields.setdefault("purpose", "mall_order")
    return hold_place(member_id=member.pk, points=points, business_unit=business_unit, **fields).hold


def sweep_after(hold):
    """Run the sweep one second after the hold's expiry."""
    return holds_release_expired(now=hold.expires_at + SECOND)


# How a hold can be resolved (or released) first, by name, for parametrized tests.
MOVES = {
    "capture": lambda hold: hold_capture(hold_id=hold.pk),
    "void": lambda hold: hold_void(hold_id=hold.pk),
    "sweep": sweep_after,
}


def expire(hold) -> Hold:
    """Move the hold past its expiry without resolving it (the sweep has not come yet)."""
    Hold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - SECOND)
    return refreshed(hold)


def refreshed(instance):
    instance.refresh_from_db()
    return instance


def wallet_of(member) -> Wallet:
    return Wallet.objects.get(member=member)


def balance_of(member, now=None):
    """The member's balance as both reads give it; its parts add up to the total."""
    now = now or timezone.now()
    balance = member_balance(member_id=member.pk, now=now)
    assert balance == wallet_balance(wallet=wallet_of(member), now=now)
    assert balance.total == (
        balance.available + balance.pending + balance.frozen + balance.held + balance.expired_unswept
    ), balance
    return balance


def lots_of(member) -> dict[int, tuple[int, int]]:
    """Each of the member's lots: (remaining, held)."""
    return {lot.pk: (lot.remaining, lot.held) for lot in Lot.objects.filter(wallet__member=member)}


def events_of(hold) -> list[tuple[str, str, int]]:
    return list(hold.events.order_by("id").values_list("from_status", "to_status", "points"))


def movements_of(posting) -> dict[int, int]:
    return dict(LotMovement.objects.filter(posting=posting).values_list("lot_id", "amount"))


def entries_of(posting) -> set[tuple[str, int | None, int]]:
    """The posting's entries: (account, business unit, amount)."""
    return set(Entry.objects.filter(posting=posting).values_list("account", "business_unit_id", "amount"))


def ledger_state() -> dict:
    """Everything a hold operation may write, to show that a refused one wrote nothing."""
    models = (Posting, Entry, Lot, LotMovement, Hold, HoldAllocation, HoldEvent)
    return {
        "rows": {model.__name__: model.objects.count() for model in models},
        "wallets": list(Wallet.objects.order_by("id").values_list("balance", "debt", "held")),
        "lots": list(Lot.objects.order_by("id").values_list("remaining", "held")),
        "holds": list(Hold.objects.order_by("id").values_list("status", "captured", "expires_at", "resolved_at")),
    }


# --- placing a hold ------------------------------------------------------------------------


def test_place_reserves_available_points_earliest_expiry_first(bu, park, member, ledger_sound):
    mall_lot = earn(member, bu, 100)
    park_lot = earn(member, park, 50)  # earned later, expires first

    hold = place(member, 80, bu, reference="order-1")

    assert (hold.status, hold.points, hold.captured, hold.resolved_at) == (HoldStatus.HELD, 80, 0, None)
    allocations = list(hold.allocations.order_by("id").values_list("lot_id", "points"))
    assert allocations == [(park_lot.pk, 50), (mall_lot.pk, 30)]
    assert lots_of(member) == {park_lot.pk: (50, 50), mall_lot.pk: (100, 30)}
    wallet = wallet_of(member)
    assert (wallet.balance, wallet.held) == (150, 80)
    balance = balance_of(member)
    assert (balance.total, balance.available, balance.held) == (150, 70, 80)
    assert events_of(hold) == [("", HoldStatus.HELD, 80)]
    ledger_sound()


def test_place_more_than_available_is_refused_and_writes_nothing(bu, member, ledger_sound):
    earn(member, bu, 100)
    place(member, 30, bu)
    before = ledger_state()

    with pytest.raises(InsufficientPoints) as refused:
        place(member, 71, bu)

    assert refused.value.extra == {"available": 70, "requested": 71}
    assert ledger_state() == before
    assert place(member, 70, bu).points == 70, "exactly what is available can be held"
    ledger_sound()


def test_place_on_a_frozen_wallet_is_refused(bu, member, ledger_sound):
    earn(member, bu, 100)
    wallet_freeze(member_id=member.pk, reason="fraud check")
    before = ledger_state()

    with pytest.raises(AccountFrozen):
        place(member, 10, bu)

    assert ledger_state() == before
    balance = balance_of(member)
    assert (balance.available, balance.frozen, balance.held) == (0, 100, 0)
    ledger_sound()


def test_pending_points_cannot_be_held(pending_bu, member, ledger_sound):
    earn(member, pending_bu, 100)
    assert balance_of(member).pending == 100

    with pytest.raises(InsufficientPoints) as refused:
        place(member, 1, pending_bu)

    assert refused.value.extra == {"available": 0, "requested": 1}
    assert not Hold.objects.exists()
    ledger_sound()


@pytest.mark.parametrize("request_fields, field", [
    ({"points": 0}, "points"),
    ({"points": -1}, "points"),
    ({"points": True}, "points"),
    ({"points": "5"}, "points"),
    ({"expires_in": timedelta(0)}, "expires_in"),
    ({"expires_in": MAX_LIFETIME + SECOND}, "expires_in"),
    ({"purpose": ""}, "purpose"),
], ids=["zero", "negative", "bool", "string", "no-lifetime", "beyond-max-lifetime", "no-purpose"])
def test_place_refuses_an_invalid_request(bu, member, ledger_sound, request_fields, field):
    earn(member, bu, 100)
    before = ledger_state()

    with pytest.raises(InvalidHold) as refused:
        hold_place(**{"member_id": member.pk, "points": 10, "business_unit": bu, "purpose": "mall_order",
                      **request_fields})

    assert refused.value.code == "invalid"
    assert list(refused.value.as_dict()["fields"]) == [field]
    assert ledger_state() == before
    ledger_sound()


def test_a_hold_lives_fifteen_minutes_by_default_and_up_to_the_maximum(bu, member, ledger_sound):
    earn(member, bu, 100)  # valid for a year: no lot shortens these holds

    for expires_in, lifetime in [(None, timedelta(minutes=15)), (MAX_LIFETIME, MAX_LIFETIME)]:
        before = timezone.now()
        hold = place(member, 10, bu, expires_in=expires_in)
        assert before + lifetime <= hold.expires_at <= timezone.now() + lifetime
    ledger_sound()


def test_a_hold_is_shortened_to_the_life_of_the_lots_it_reserves(bu, today_only, member, ledger_sound):
    earn(member, bu, 100)
    short = earn(member, today_only, 20)  # expires at the end of today, so it is reserved first

    on_both = place(member, 50, bu, expires_in=MAX_LIFETIME)
    before = timezone.now()
    on_the_year_lot = place(member, 50, bu, expires_in=MAX_LIFETIME)  # the short lot is all held already

    assert on_both.expires_at == short.expires_at
    assert on_the_year_lot.expires_at >= before + MAX_LIFETIME
    ledger_sound()


# --- idempotency ---------------------------------------------------------------------------


def test_the_same_key_and_request_answer_the_same_hold(bu, member, ledger_sound):
    earn(member, bu, 100)
    key = Idempotency(scope="partner:1", key="order-7")
    request = {"member_id": member.pk, "points": 30, "business_unit": bu, "purpose": "mall_order", "idempotency": key}

    first = hold_place(**request)
    again = hold_place(**request, expires_in=timedelta(minutes=15))  # the default, spelled out

    assert (first.replayed, again.replayed) == (False, True)
    assert again.hold.pk == first.hold.pk
    assert wallet_of(member).held == 30
    assert (Hold.objects.count(), HoldEvent.objects.count(), HoldAllocation.objects.count()) == (1, 1, 1)
    ledger_sound()


@pytest.mark.parametrize("change", [
    {"points": 31}, {"purpose": "pos_bill"}, {"reference": "bill-2"}, {"expires_in": timedelta(minutes=5)},
], ids=lambda change: next(iter(change)))
def test_the_same_key_for_another_request_conflicts(bu, member, ledger_sound, change):
    earn(member, bu, 100)
    key = Idempotency(scope="partner:1", key="order-7")
    place(member, 30, bu, idempotency=key)
    before = ledger_state()

    with pytest.raises(IdempotencyConflict):
        place(member, **{"points": 30, "business_unit": bu, "idempotency": key, **change})

    assert ledger_state() == before
    ledger_sound()


# --- what held points are safe from --------------------------------------------------------


def test_held_points_cannot_be_spent(bu, member, ledger_sound):
    lot = earn(member, bu, 100)
    hold = place(member, 30, bu)

    with pytest.raises(InsufficientPoints) as refused:
        points_spend(member_id=member.pk, points=71, business_unit=bu)
    assert refused.value.extra == {"available": 70, "requested": 71}
    points_spend(member_id=member.pk, points=70, business_unit=bu)

    assert lots_of(member) == {lot.pk: (30, 30)}
    assert (refreshed(hold).status, wallet_of(member).held) == (HoldStatus.HELD, 30)
    balance = balance_of(member)
    assert (balance.total, balance.available, balance.held) == (30, 0, 30)
    ledger_sound()


@pytest.mark.parametrize("release, status", [("void", HoldStatus.VOIDED), ("sweep", HoldStatus.EXPIRED)])
def test_a_refund_takes_no_held_points_and_released_ones_repay_the_debt(bu, member, ledger_sound, release, status):
    lot = earn(member, bu, 100)
    hold = place(member, 60, bu)

    refund = posting_reverse(posting_id=lot.posting_id, reason="goods returned").posting

    assert entries_of(refund) == {("issuance", bu.pk, 100), ("wallet", None, -40), ("debt", None, -60)}
    wallet = wallet_of(member)
    assert (wallet.balance, wallet.debt, wallet.held) == (60, 60, 60)
    assert lots_of(member) == {lot.pk: (60, 60)}
    ledger_sound()

    MOVES[release](hold)

    assert refreshed(hold).status == status
    repay = Posting.objects.get(wallet=wallet, kind=PostingKind.REPAY)
    assert repay.points == 0
    assert entries_of(repay) == {("wallet", None, -60), ("debt", None, 60)}
    assert movements_of(repay) == {lot.pk: -60}
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.debt, wallet.held) == (0, 0, 0)
    ledger_sound()


def test_a_partial_capture_repays_the_debt_from_the_rest_it_releases(bu, member, ledger_sound):
    lot = earn(member, bu, 100)
    hold = place(member, 60, bu)
    posting_reverse(posting_id=lot.posting_id, reason="goods returned")  # 40 taken, 60 owed

    _result, capture = hold_capture(hold_id=hold.pk, points=20)

    assert capture.points == -20
    repay = Posting.objects.get(kind=PostingKind.REPAY)
    assert entries_of(repay) == {("wallet", None, -40), ("debt", None, 40)}
    wallet = wallet_of(member)
    assert (wallet.balance, wallet.debt, wallet.held) == (0, 20, 0)
    ledger_sound()


@pytest.mark.parametrize("release", ["void", "sweep"])
def test_the_expiry_run_takes_only_free_points_while_the_hold_lives(bu, today_only, member, ledger_sound, release):
    lot = earn(member, today_only, 100)
    hold = place(member, 30, bu)
    after = lot.expires_at + SECOND

    assert expiry_run_batch(now=after) == (1, None)

    expiry = Posting.objects.get(kind=PostingKind.EXPIRE)
    assert (expiry.points, movements_of(expiry)) == (-70, {lot.pk: -70})
    assert lots_of(member) == {lot.pk: (30, 30)}
    assert expiry_run_batch(now=after + SECOND) == (0, None), "the held points wait for the hold to end"
    assert (refreshed(hold).status, wallet_of(member).balance) == (HoldStatus.HELD, 30)
    ledger_sound()

    MOVES[release](hold)
    assert expiry_run_batch(now=after + 2 * SECOND) == (1, None)

    last = Posting.objects.filter(kind=PostingKind.EXPIRE).latest("id")
    assert (last.points, movements_of(last)) == (-30, {lot.pk: -30})
    assert lots_of(member) == {lot.pk: (0, 0)}
    assert wallet_of(member).balance == 0
    ledger_sound()


# --- capture -------------------------------------------------------------------------------


def test_a_full_capture_spends_exactly_the_reserved_lots(bu, park, other_bu, member, ledger_sound):
    mall_lot = earn(member, bu, 100)
    park_lot = earn(member, park, 50)
    hold = place(member, 80, other_bu, reference="bill-9")

    result, posting = hold_capture(hold_id=hold.pk)

    assert (posting.kind, posting.points, posting.business_unit_id) == (PostingKind.SPEND, -80, other_bu.pk)
    assert entries_of(posting) == {("wallet", None, -80), ("redemption", other_bu.pk, 80)}
    allocated = dict(hold.allocations.values_list("lot_id", "points"))
    assert movements_of(posting) == {lot_id: -points for lot_id, points in allocated.items()}
    assert movements_of(posting) == {park_lot.pk: -50, mall_lot.pk: -30}
    hold.refresh_from_db()
    assert (hold.status, hold.captured, hold.capture_posting_id) == (HoldStatus.CAPTURED, 80, posting.pk)
    assert hold.resolved_at is not None and result.hold.status == HoldStatus.CAPTURED
    assert lots_of(member) == {park_lot.pk: (0, 0), mall_lot.pk: (70, 0)}
    wallet = wallet_of(member)
    assert (wallet.balance, wallet.held) == (70, 0)
    assert events_of(hold) == [("", HoldStatus.HELD, 80), (HoldStatus.HELD, HoldStatus.CAPTURED, 80)]
    ledger_sound()


def test_a_partial_capture_releases_the_rest(bu, park, member, ledger_sound):
    mall_lot = earn(member, bu, 100)
    park_lot = earn(member, park, 50)
    hold = place(member, 80, bu)

    _result, posting = hold_capture(hold_id=hold.pk, points=30)

    assert (posting.points, movements_of(posting)) == (-30, {park_lot.pk: -30})
    hold.refresh_from_db()
    assert (hold.status, hold.captured) == (HoldStatus.CAPTURED, 30)
    assert events_of(hold)[-1] == (HoldStatus.HELD, HoldStatus.CAPTURED, 30)
    assert lots_of(member) == {park_lot.pk: (20, 0), mall_lot.pk: (100, 0)}
    assert wallet_of(member).held == 0
    balance = balance_of(member)
    assert (balance.total, balance.available, balance.held) == (120, 120, 0)
    ledger_sound()


def test_a_capture_of_more_than_held_is_refused(bu, member, ledger_sound):
    earn(member, bu, 100)
    hold = place(member, 30, bu)
    before = ledger_state()

    with pytest.raises(CaptureExceedsHold) as refused:
        hold_capture(hold_id=hold.pk, points=31)

    assert refused.value.extra == {"held": 30, "requested": 31}
    assert ledger_state() == before
    ledger_sound()


@pytest.mark.parametrize("first, error, code", [
    ("capture", HoldResolved, "hold_resolved"),
    ("void", HoldResolved, "hold_resolved"),
    ("sweep", HoldExpired, "hold_expired"),
])
def test_a_capture_of_a_resolved_hold_is_refused(bu, member, ledger_sound, first, error, code):
    earn(member, bu, 100)
    hold = place(member, 30, bu)
    MOVES[first](hold)
    before = ledger_state()

    with pytest.raises(error) as refused:
        hold_capture(hold_id=hold.pk)

    assert (refused.value.status_code, refused.value.code) == (409, code)
    assert ledger_state() == before
    ledger_sound()


def test_a_capture_past_the_holds_expiry_is_refused_and_writes_nothing(bu, member, ledger_sound):
    earn(member, bu, 100)
    hold = expire(place(member, 30, bu))
    before = ledger_state()

    with pytest.raises(HoldExpired) as refused:
        hold_capture(hold_id=hold.pk)

    assert (refused.value.status_code, refused.value.code) == (409, "hold_expired")
    assert ledger_state() == before
    assert not Posting.objects.filter(kind=PostingKind.SPEND).exists()
    ledger_sound()


def test_a_retried_capture_under_its_key_replays_its_posting(bu, member, ledger_sound):
    earn(member, bu, 100)
    hold = place(member, 30, bu)
    key = Idempotency(scope="partner:1", key="capture-1")

    first, posting = hold_capture(hold_id=hold.pk, points=20, idempotency=key)
    retry, replayed = hold_capture(hold_id=hold.pk, points=20, idempotency=key)

    assert (first.replayed, retry.replayed) == (False, True)
    assert replayed.pk == posting.pk
    assert Posting.objects.filter(kind=PostingKind.SPEND).count() == 1
    assert wallet_of(member).balance == 80
    with pytest.raises(IdempotencyConflict):
        hold_capture(hold_id=hold.pk, points=25, idempotency=key)
    ledger_sound()


def test_a_capture_can_be_cancelled_back_to_the_lots_it_took(bu, park, member, ledger_sound):
    mall_lot = earn(member, bu, 100)
    park_lot = earn(member, park, 50)
    hold = place(member, 80, bu)
    _result, capture = hold_capture(hold_id=hold.pk)

    cancel = posting_reverse(posting_id=capture.pk, reason="order cancelled").posting

    assert (cancel.kind, cancel.points, cancel.reverses_id) == (PostingKind.CANCEL, 80, capture.pk)
    assert movements_of(cancel) == {park_lot.pk: 50, mall_lot.pk: 30}
    assert lots_of(member) == {park_lot.pk: (50, 0), mall_lot.pk: (100, 0)}
    assert wallet_of(member).balance == 150
    assert refreshed(hold).status == HoldStatus.CAPTURED
    ledger_sound()


@pytest.mark.parametrize("activity", ["spend", "capture"])
def test_a_capture_is_a_qualifying_activity_like_a_spend(bu, member, ledger_sound, activity):
    """points.earning.lots_extend_for_activity: "A qualifying activity other than an earn (a
    spend, a hold's capture): extend the wallet's lots under activity-extends"."""
    ExpiryPolicyFactory(code="active-1m", kind=ExpiryKind.ACTIVITY_EXTENDS, months=1, is_default=True)
    lot = earn(member, bu, 100, occurred_at=timezone.now() - timedelta(days=20))

    if activity == "spend":
        posting = points_spend(member_id=member.pk, points=10, business_unit=bu).posting
    else:
        _result, posting = hold_capture(hold_id=place(member, 10, bu).pk)

    assert refreshed(lot).expires_at == expiry_after_months(posting.occurred_at, 1), f"the {activity} extends the lot"
    assert LotExpiryChange.objects.filter(lot=lot, posting=posting).count() == 1
    ledger_sound()


# --- void ----------------------------------------------------------------------------------


def test_void_releases_the_points(bu, member, ledger_sound):
    lot = earn(member, bu, 100)
    hold = place(member, 30, bu)

    result = hold_void(hold_id=hold.pk, reason="order abandoned")

    assert not result.replayed
    hold.refresh_from_db()
    assert (hold.status, hold.captured, hold.capture_posting_id) == (HoldStatus.VOIDED, 0, None)
    assert hold.resolved_at is not None
    assert events_of(hold)[-1] == (HoldStatus.HELD, HoldStatus.VOIDED, 30)
    assert lots_of(member) == {lot.pk: (100, 0)}
    assert wallet_of(member).held == 0
    assert balance_of(member).available == 100
    assert not Posting.objects.exclude(kind=PostingKind.EARN).exists(), "a void posts nothing"
    ledger_sound()


def test_a_second_void_replays_the_first(bu, member, ledger_sound):
    earn(member, bu, 100)
    hold = place(member, 30, bu)
    hold_void(hold_id=hold.pk)
    before = ledger_state()

    again = hold_void(hold_id=hold.pk)

    assert again.replayed and again.hold.status == HoldStatus.VOIDED
    assert ledger_state() == before
    assert len(events_of(hold)) == 2
    ledger_sound()


def test_a_void_of_a_captured_hold_is_refused(bu, member, ledger_sound):
    earn(member, bu, 100)
    hold = place(member, 30, bu)
    hold_capture(hold_id=hold.pk)
    before = ledger_state()

    with pytest.raises(HoldResolved) as refused:
        hold_void(hold_id=hold.pk)

    assert (refused.value.code, refused.value.extra["status"]) == ("hold_resolved", HoldStatus.CAPTURED)
    assert ledger_state() == before
    ledger_sound()


def test_a_void_past_the_holds_expiry_resolves_it_as_expired(bu, member, ledger_sound):
    earn(member, bu, 100)
    hold = expire(place(member, 30, bu))

    result = hold_void(hold_id=hold.pk)

    assert not result.replayed
    assert refreshed(hold).status == HoldStatus.EXPIRED
    assert events_of(hold)[-1] == (HoldStatus.HELD, HoldStatus.EXPIRED, 30)
    assert wallet_of(member).held == 0
    ledger_sound()


# --- reads ---------------------------------------------------------------------------------


def test_reads_never_count_a_hold_past_its_expiry_as_held(bu, member, ledger_sound):
    earn(member, bu, 100)
    hold = place(member, 30, bu)

    live = balance_of(member, now=hold.expires_at - timedelta(microseconds=1))
    ended = balance_of(member, now=hold.expires_at)

    assert (live.available, live.held) == (70, 30)
    assert (ended.available, ended.held) == (100, 0)
    expire(hold)
    assert (balance_of(member).available, balance_of(member).held) == (100, 0)
    assert wallet_of(member).held == 30, "not swept yet: the wallet still carries it"
    ledger_sound()


@pytest.mark.parametrize("operation", ["spend", "hold"])
def test_an_operation_needing_the_points_of_an_ended_hold_releases_it_first(bu, member, ledger_sound, operation):
    earn(member, bu, 100)
    hold = expire(place(member, 60, bu))

    if operation == "spend":
        points_spend(member_id=member.pk, points=100, business_unit=bu)
    else:
        place(member, 100, bu)

    assert refreshed(hold).status == HoldStatus.EXPIRED
    assert events_of(hold)[-1] == (HoldStatus.HELD, HoldStatus.EXPIRED, 60)
    wallet = wallet_of(member)
    assert (wallet.balance, wallet.held) == ((0, 0) if operation == "spend" else (100, 100))
    ledger_sound()


# --- the sweep -----------------------------------------------------------------------------


def test_the_sweep_releases_only_holds_past_their_expiry_once(bu, member, ledger_sound):
    other = enrol_member(name="Han Meimei")
    earn(member, bu, 100)
    earn(other, bu, 100)
    first = place(member, 10, bu, expires_in=timedelta(minutes=1))
    second = place(other, 20, bu, expires_in=timedelta(minutes=10))
    live = place(member, 30, bu, expires_in=timedelta(minutes=60))
    now = second.expires_at  # a hold ends at its expires_at

    assert holds_release_expired(now=now) == (2, False)
    assert holds_release_expired(now=now) == (0, False)

    statuses = [refreshed(hold).status for hold in (first, second, live)]
    assert statuses == [HoldStatus.EXPIRED, HoldStatus.EXPIRED, HoldStatus.HELD]
    released = HoldEvent.objects.filter(to_status=HoldStatus.EXPIRED)
    assert sorted(released.values_list("hold_id", "from_status")) == [(first.pk, "held"), (second.pk, "held")]
    assert (wallet_of(member).held, wallet_of(other).held) == (30, 0)
    ledger_sound()


def test_the_sweep_says_holds_are_left_when_its_batch_leaves_some(bu, member, ledger_sound):
    """holds_release_expired returns (released, whether any are left); the celery task re-queues
    itself on the second. A batch of two wallets must not stop while a due hold is left."""
    other = enrol_member(name="Han Meimei")
    earn(member, bu, 100)
    earn(other, bu, 100)
    place(member, 10, bu, expires_in=timedelta(minutes=1))
    place(member, 10, bu, expires_in=timedelta(minutes=2))
    last = place(other, 10, bu, expires_in=timedelta(minutes=3))
    now = last.expires_at

    released, more = holds_release_expired(now=now, batch_size=1)

    left = Hold.objects.filter(status=HoldStatus.HELD, expires_at__lte=now).count()
    assert (released, left) == (2, 1), "a batch is of wallets: both holds of the first wallet go together"
    assert more, "a hold past its expiry is left, yet the sweep reports nothing left"
    assert holds_release_expired(now=now, batch_size=1) == (1, True)
    assert holds_release_expired(now=now, batch_size=1) == (0, False)
    ledger_sound()


# --- races ---------------------------------------------------------------------------------


def test_holds_and_spends_racing_on_one_wallet_never_take_more_than_it_has(transactional_db, bu, member, ledger_sound):
    earn(member, bu, 1000)
    kinds = ["hold", "spend"] * 15
    calls = {
        "hold": lambda: place(member, 50, bu),
        "spend": lambda: points_spend(member_id=member.pk, points=50, business_unit=bu),
    }

    outcomes = run_together([calls[kind] for kind in kinds])

    succeeded = Counter(kind for kind, (ok, _value) in zip(kinds, outcomes, strict=True) if ok)
    refused = [value for ok, value in outcomes if not ok]
    assert all(isinstance(exc, InsufficientPoints) for exc in refused), refused
    assert succeeded["hold"] + succeeded["spend"] + len(refused) == 30
    held, spent = 50 * succeeded["hold"], 50 * succeeded["spend"]
    assert held + spent == 1000, "every point is taken once, and no point more"
    wallet = wallet_of(member)
    assert (wallet.balance, wallet.held) == (1000 - spent, held)
    assert Hold.objects.filter(status=HoldStatus.HELD).count() == succeeded["hold"]
    assert Posting.objects.filter(kind=PostingKind.SPEND).count() == succeeded["spend"]
    balance = balance_of(member)
    assert (balance.available, balance.held) == (0, held)
    ledger_sound()


# The status a hold ends in when each of the three racers wins.
WINNER_STATUS = {"capture": HoldStatus.CAPTURED, "void": HoldStatus.VOIDED, "sweep": HoldStatus.EXPIRED}


def round_winner(capture, void, sweep) -> str:
    """Which of capture, void and sweep resolved the hold; asserts the other two lost as they should."""
    (capture_ok, capture_value), (void_ok, void_value), (sweep_ok, sweep_value) = capture, void, sweep
    assert sweep_ok, sweep_value
    released, _more = sweep_value
    won = {"capture": capture_ok, "void": void_ok and not void_value.replayed, "sweep": released == 1}
    assert sum(won.values()) == 1, (capture, void, sweep)
    winner = next(name for name, ok in won.items() if ok)
    if winner != "capture":
        assert isinstance(capture_value, HoldExpired if winner == "sweep" else HoldResolved), capture_value
    if winner == "capture":
        assert isinstance(void_value, HoldResolved), void_value
    elif winner == "sweep":
        assert void_value.replayed and void_value.hold.status == HoldStatus.EXPIRED, "a void finding it expired answers it"
    if winner != "sweep":
        assert released == 0
    return winner


def test_capture_void_and_sweep_racing_on_one_hold_resolve_it_once(transactional_db, bu, member, ledger_sound):
    rounds = 50
    earn(member, bu, 1000)
    winners = []

    for _ in range(rounds):
        hold = place(member, 10, bu)
        outcomes = run_together([
            lambda: hold_capture(hold_id=hold.pk),  # noqa: B023 - each round's threads end within the round
            lambda: hold_void(hold_id=hold.pk),  # noqa: B023
            lambda: holds_release_expired(now=hold.expires_at + SECOND),  # noqa: B023
        ])
        winner = round_winner(*outcomes)
        assert refreshed(hold).status == WINNER_STATUS[winner], (winner, outcomes)
        winners.append(winner)

    out_of_held = HoldEvent.objects.filter(from_status=HoldStatus.HELD).values("hold_id").annotate(moves=Count("id"))
    assert sorted(row["moves"] for row in out_of_held) == [1] * rounds
    captured = winners.count("capture")
    wallet = wallet_of(member)
    assert (wallet.balance, wallet.held) == (1000 - 10 * captured, 0), Counter(winners)
    assert Posting.objects.filter(kind=PostingKind.SPEND).count() == captured
    ledger_sound()

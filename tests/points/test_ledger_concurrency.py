"""Races on the ledger, run for real: threads, each on its own PostgreSQL connection.

Every test commits (transaction=True), so row locks, the unique idempotency constraint and the
deferred balance trigger behave as in production. Threads open their connection first, then
meet at a barrier so that they really start together; every wait is bounded, and a thread that
is still alive after the bound fails the test instead of hanging it. A deadlock would surface
as a database error in a thread's outcome, which the tests treat as a failure.
"""

import random
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from points.exceptions import IdempotencyConflict, InsufficientPoints, ReversalExceedsOriginal
from points import earning
from points.ledger import idempotency as ledger_idempotency
from points.expiry import expiry_run_batch
from points.models import EventType, Lot, LotMovement, Posting, PostingKind, Wallet
from points.selectors import ledger_problems
from points.earning import points_earn
from points.ledger import Idempotency
from points.services import points_spend, posting_reverse
from tests.concurrency import errors_of, results_of, run_together
from tests.factories import BusinessUnitFactory, enrol_member
from tests.factories import EarningRuleFactory

pytestmark = pytest.mark.django_db(transaction=True)

def assert_ledger_sound():
    assert ledger_problems() == {}
    call_command("verify_ledger")


@pytest.fixture
def bu():
    return BusinessUnitFactory(code="mall")


def wallet_of(member):
    return Wallet.objects.get(member=member)


def test_fifty_spends_from_one_wallet_only_the_affordable_ones_succeed(bu):
    member = enrol_member(name="Spender")
    points_earn(member_id=member.pk, business_unit=bu, points=1000)

    outcomes = run_together([
        lambda i=i: points_spend(
            member_id=member.pk, points=30, business_unit=bu, idempotency=Idempotency(scope="partner:1", key=f"s-{i}"),
        )
        for i in range(50)
    ])

    assert len(results_of(outcomes)) == 33
    errors = errors_of(outcomes)
    assert len(errors) == 17 and all(isinstance(exc, InsufficientPoints) for exc in errors), errors
    wallet = wallet_of(member)
    assert wallet.balance == 1000 - 33 * 30 == 10
    assert Posting.objects.filter(kind=PostingKind.SPEND).count() == 33
    assert Lot.objects.get(wallet=wallet).remaining == 10
    assert_ledger_sound()


def test_twenty_retries_of_one_key_post_once_and_replay(bu):
    member = enrol_member(name="Retrier")
    key = Idempotency(scope="partner:1", key="order-42")

    outcomes = run_together([
        lambda: points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("88.80"), idempotency=key)
        for _ in range(20)
    ])

    assert errors_of(outcomes) == []
    results = results_of(outcomes)
    assert len({result.posting.pk for result in results}) == 1
    assert sum(not result.replayed for result in results) == 1
    assert Posting.objects.filter(idempotency_key="order-42").count() == 1
    assert wallet_of(member).balance == 88
    assert_ledger_sound()


def test_twenty_retries_of_one_spend_key_debit_once(bu):
    member = enrol_member(name="Retrier")
    points_earn(member_id=member.pk, business_unit=bu, points=100)
    key = Idempotency(scope="partner:1", key="pay-7")

    outcomes = run_together([
        lambda: points_spend(member_id=member.pk, points=60, business_unit=bu, idempotency=key) for _ in range(20)
    ])

    assert errors_of(outcomes) == []
    assert len({result.posting.pk for result in results_of(outcomes)}) == 1
    assert wallet_of(member).balance == 40
    assert_ledger_sound()


def test_one_key_used_for_different_members_posts_once_and_refuses_the_rest(bu):
    """Different members lock different wallets, so only the unique constraint can decide."""
    members = [enrol_member(name=f"Member {i}") for i in range(20)]
    key = Idempotency(scope="partner:1", key="shared-key")

    outcomes = run_together([
        lambda m=m: points_earn(member_id=m.pk, business_unit=bu, points=10, idempotency=key) for m in members
    ])

    results = results_of(outcomes)
    errors = errors_of(outcomes)
    assert len(results) == 1 and not results[0].replayed
    assert len(errors) == 19 and all(isinstance(exc, IdempotencyConflict) for exc in errors), errors
    posting = Posting.objects.get(idempotency_key="shared-key")
    assert posting.pk == results[0].posting.pk
    assert sorted(Wallet.objects.values_list("balance", flat=True)) == [0] * 19 + [10]
    assert_ledger_sound()


def test_refunds_and_spends_racing_on_the_same_lots(bu):
    member = enrol_member(name="Racer")
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100).posting
    refunds = [lambda: posting_reverse(posting_id=earn.pk, points=20, reason="return") for _ in range(5)]
    spends = [lambda: points_spend(member_id=member.pk, points=20, business_unit=bu) for _ in range(5)]

    outcomes = run_together([call for pair in zip(refunds, spends, strict=True) for call in pair])

    errors = errors_of(outcomes)
    assert all(isinstance(exc, InsufficientPoints) for exc in errors), errors
    spent = Posting.objects.filter(kind=PostingKind.SPEND).count()
    assert Posting.objects.filter(kind=PostingKind.REFUND).count() == 5
    assert len(errors) == 5 - spent
    wallet = wallet_of(member)
    # The refund takes every earned point back: what was spent meanwhile is owed.
    assert (wallet.balance, wallet.debt) == (0, 20 * spent)
    assert_ledger_sound()


def test_cancels_and_spends_racing_on_the_same_lots(bu):
    member = enrol_member(name="Racer")
    points_earn(member_id=member.pk, business_unit=bu, points=100)
    spend = points_spend(member_id=member.pk, points=50, business_unit=bu).posting
    cancels = [lambda: posting_reverse(posting_id=spend.pk, points=10) for _ in range(6)]
    spends = [lambda: points_spend(member_id=member.pk, points=25, business_unit=bu) for _ in range(6)]

    outcomes = run_together(cancels + spends)

    cancelled = sum(1 for ok, value in outcomes[:6] if ok)
    spent = sum(1 for ok, value in outcomes[6:] if ok)
    assert cancelled == 5, "only 50 points can be given back"
    assert [type(exc) for exc in errors_of(outcomes[:6])] == [ReversalExceedsOriginal]
    assert all(isinstance(exc, InsufficientPoints) for exc in errors_of(outcomes[6:]))
    wallet = wallet_of(member)
    assert wallet.balance == 100 - 50 + 50 - 25 * spent >= 0
    assert_ledger_sound()


def expiry_fixture(count):
    """`count` members, each with 10 points earned long ago enough to expire at `later`."""
    bu = BusinessUnitFactory(code="park", expiry_months=1)
    members = [enrol_member(name=f"Expiring {i}") for i in range(count)]
    for member in members:
        points_earn(member_id=member.pk, business_unit=bu, points=10)
    return members, timezone.now() + timedelta(days=90)


def run_expiry_to_the_end(now, batch_size):
    written, cursor, batches = 0, 0, 0
    while cursor is not None:
        done, cursor = expiry_run_batch(now=now, after_wallet_id=cursor, batch_size=batch_size)
        written += done
        batches += 1
        assert batches < 100
    return written


@pytest.mark.parametrize("shift_seconds", [(0, 0, 0, 0), (0, 1, 3600, 86400)], ids=["same-now", "different-now"])
def test_overlapping_expiry_runs_expire_nothing_twice(shift_seconds):
    members, later = expiry_fixture(12)

    outcomes = run_together([
        lambda s=s: run_expiry_to_the_end(later + timedelta(seconds=s), batch_size=5) for s in shift_seconds
    ])

    assert errors_of(outcomes) == []
    expiries = Posting.objects.filter(kind=PostingKind.EXPIRE)
    assert expiries.count() == 12
    assert sum(results_of(outcomes)) == 12, "a run must not count another run's posting as its own"
    assert sorted(expiries.values_list("wallet__member_id", flat=True)) == sorted(m.pk for m in members)
    assert set(expiries.values_list("points", flat=True)) == {-10}
    assert LotMovement.objects.filter(posting__kind=PostingKind.EXPIRE).count() == 12
    assert set(Wallet.objects.values_list("balance", flat=True)) == {0}
    assert_ledger_sound()


def _replay_missing_the_winner_once():
    """Stand-in for `posting_replay` whose first look misses a posting committed meanwhile (the race window)."""
    real = earning.posting_replay
    looks = []

    def replay(idempotency, fingerprint):
        looks.append(idempotency.key)
        return None if len(looks) == 1 else real(idempotency, fingerprint)

    return replay, looks


@pytest.mark.parametrize("same_request", [True, False], ids=["retry-replays", "other-member-conflicts"])
def test_losing_the_key_race_at_the_unique_constraint(bu, same_request):
    """Deterministic version of the race: the loser's insert hits the unique constraint inside
    its durable transaction; it must roll back cleanly and answer from the winner's posting."""
    winner_member, other_member = enrol_member(name="Winner"), enrol_member(name="Loser")
    key = Idempotency(scope="partner:1", key="race")
    winner = points_earn(member_id=winner_member.pk, business_unit=bu, points=10, idempotency=key).posting
    loser_member = winner_member if same_request else other_member
    replay, looks = _replay_missing_the_winner_once()

    with mock.patch.object(earning, "posting_replay", replay), \
            mock.patch.object(ledger_idempotency, "posting_replay", replay):
        if same_request:
            result = points_earn(member_id=loser_member.pk, business_unit=bu, points=10, idempotency=key)
            assert result.replayed and result.posting.pk == winner.pk
        else:
            with pytest.raises(IdempotencyConflict):
                points_earn(member_id=loser_member.pk, business_unit=bu, points=10, idempotency=key)

    assert looks == ["race", "race"], "the second look is the one after the unique-constraint violation"
    assert Posting.objects.count() == 1
    assert sorted(Wallet.objects.values_list("balance", flat=True)) == [0, 10]
    assert_ledger_sound()


def test_mixed_operations_on_shared_wallets_never_deadlock_or_break_the_ledger(bu):
    """Single-wallet locks (earn, spend, refund, cancel) racing multi-wallet locks (a referee's
    first purchase locks the referrer's wallet too; an expiry batch locks all its wallets), all
    in id order. A lock-order bug shows as a deadlock error or a thread that never finishes."""
    park = BusinessUnitFactory(code="park", expiry_months=1)
    EarningRuleFactory(code="referral", event_type=EventType.REFERRAL, points=50)
    referrer = enrol_member(name="Referrer")
    members = [referrer] + [enrol_member(name=f"Referee {i}", referral_code=referrer.referral_code) for i in range(3)]
    earns, spends = [], []
    for member in members:
        points_earn(member_id=member.pk, business_unit=park, points=100)
        earns.append(points_earn(member_id=member.pk, business_unit=bu, points=200).posting.pk)
        spends.append(points_spend(member_id=member.pk, points=120, business_unit=bu).posting.pk)
    later = timezone.now() + timedelta(days=40)
    expected_errors = (InsufficientPoints, ReversalExceedsOriginal)

    def worker(seed):
        rng = random.Random(seed)
        done = []
        for _ in range(12):
            member = rng.choice(members)
            operation = rng.choice(["purchase", "spend", "refund", "cancel", "expire"])
            try:
                if operation == "purchase":
                    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal(rng.randint(1, 90)))
                elif operation == "spend":
                    points_spend(member_id=member.pk, points=rng.randint(1, 150), business_unit=bu)
                elif operation in ("refund", "cancel"):
                    original = rng.choice(earns if operation == "refund" else spends)
                    posting_reverse(posting_id=original, points=rng.randint(1, 40))
                else:
                    expiry_run_batch(now=later, batch_size=2)
                done.append(operation)
            except expected_errors:
                done.append(f"{operation} refused")
        return done

    outcomes = run_together([lambda seed=seed: worker(seed) for seed in range(8)])

    assert errors_of(outcomes) == []
    assert sum(len(done) for done in results_of(outcomes)) == 96
    purchasers = set(Posting.objects.filter(event_type=EventType.PURCHASE).values_list("wallet__member_id", flat=True))
    referrals = Posting.objects.filter(event_type=EventType.REFERRAL, wallet__member=referrer)
    assert sorted(referrals.values_list("idempotency_key", flat=True)) == sorted(
        f"referral:{m.pk}" for m in members[1:] if m.pk in purchasers)
    assert referrals.count() == 3, "the seeded operations include a first purchase by every referee"
    assert all(w.balance >= 0 and w.debt >= 0 for w in Wallet.objects.all())
    assert_ledger_sound()

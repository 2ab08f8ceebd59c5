"""Races on payments, run for real: threads, each on its own PostgreSQL connection, released
together at a barrier; every wait is bounded and a thread still alive fails the test."""

import random
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from mall.exceptions_payments import PaymentExpired, PaymentResolved
from mall.models_payments import Payment, PaymentPresence, PaymentStatus
from mall.selectors_payments import payment_status_now
from mall.services_payments import payment_authorize, payment_capture, payment_void
from members.models import PartnerKey
from points.exceptions import InsufficientPoints
from points.ledger import Idempotency, holds_release_expired
from points.models import Hold, HoldStatus, Posting, PostingKind, Wallet
from points.selectors import ledger_problems
from points.services import points_spend

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 60


def run_together(calls):
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


@pytest.fixture
def tills_key(restaurant):
    key, _secret = PartnerKey.objects.create_key(name="parking", business_unit=restaurant, may_spend_without_presence=True)
    return key


def authorise(restaurant, key, member, n, points):
    return payment_authorize(
        business_unit=restaurant, merchant=None, partner_key=key,
        idempotency=Idempotency(scope="partner:parking", key=f"pay-{n}"), bill_no=f"B-{n}",
        bill_amount=Decimal("1000.00"), member_id=member.pk, points=points,
    )


def test_thirty_authorisations_and_spends_never_take_more_than_available(restaurant, payer, tills_key):
    rng = random.Random(11)
    amounts = [rng.choice([300, 500, 800, 1000]) for _ in range(30)]
    assert sum(amounts) > 10000  # some must be refused
    calls = []
    for n, points in enumerate(amounts):
        if n % 2:
            calls.append(lambda n=n, points=points: ("spend", points, points_spend(
                member_id=payer.pk, points=points, business_unit=restaurant,
                idempotency=Idempotency(scope="partner:parking", key=f"spend-{n}"))))
        else:
            calls.append(lambda n=n, points=points: ("hold", points, authorise(restaurant, tills_key, payer, n, points)))
    outcomes = run_together(calls)
    refused = [value for ok, value in outcomes if not ok]
    assert refused and all(isinstance(exc, InsufficientPoints) for exc in refused), refused
    done = [value for ok, value in outcomes if ok]
    held = sum(points for kind, points, _result in done if kind == "hold")
    spent = sum(points for kind, points, _result in done if kind == "spend")
    assert held + spent <= 10000
    wallet = Wallet.objects.get(member=payer)
    assert (wallet.held, wallet.balance) == (held, 10000 - spent)
    assert Payment.objects.filter(status=PaymentStatus.AUTHORIZED).count() == sum(
        1 for kind, _points, _result in done if kind == "hold")
    # What is left is less than the smallest refused request: the refusals were right.
    assert 10000 - held - spent < min(amounts[i] for i, (ok, _v) in enumerate(outcomes) if not ok)
    assert ledger_problems() == {}


def test_capture_racing_void_racing_the_sweep_exactly_one_wins(restaurant, payer, tills_key):
    wins = {"capture": 0, "void": 0, "sweep": 0}
    for n in range(50):
        payment = authorise(restaurant, tills_key, payer, n, 100).payment
        later = timezone.now() + timedelta(days=1)
        outcomes = run_together([
            lambda: payment_capture(payment_id=payment.pk, business_unit=restaurant,
                                    idempotency=Idempotency(scope="partner:parking", key=f"cap-{n}")),
            lambda: payment_void(payment_id=payment.pk, business_unit=restaurant),
            lambda: holds_release_expired(now=later),
        ])
        (captured, capture_value), (voided, void_value), (_swept, sweep_value) = outcomes
        assert _swept, sweep_value
        winners = [name for name, won in [("capture", captured), ("void", voided), ("sweep", sweep_value[0] == 1)]
                   if won]
        assert len(winners) == 1, (n, outcomes)
        for ok, value in outcomes[:2]:
            if not ok:
                assert isinstance(value, (PaymentExpired, PaymentResolved)), value
        wins[winners[0]] += 1
        payment.refresh_from_db()
        hold = Hold.objects.get(pk=payment.hold_id)
        expected = {"capture": (PaymentStatus.CAPTURED, HoldStatus.CAPTURED),
                    "void": (PaymentStatus.VOIDED, HoldStatus.VOIDED),
                    "sweep": (PaymentStatus.EXPIRED, HoldStatus.EXPIRED)}[winners[0]]
        assert (payment_status_now(payment), hold.status) == expected, n
        # The losers of a sweep wrote the payment's expired move: the stored status follows the hold.
        assert (payment.status, payment.events.count()) == (expected[0], 2), n
    print("winners over 50 rounds:", wins)
    spends = Posting.objects.filter(wallet__member=payer, kind=PostingKind.SPEND).count()
    assert spends == wins["capture"]
    wallet = Wallet.objects.get(member=payer)
    assert (wallet.held, wallet.balance) == (0, 10000 - 100 * wins["capture"])
    assert ledger_problems() == {}


def test_one_key_retried_at_once_authorises_once(restaurant, payer, tills_key):
    outcomes = run_together([lambda: authorise(restaurant, tills_key, payer, 0, 1000) for _ in range(10)])
    assert all(ok for ok, _v in outcomes), outcomes
    ids = {value.payment.pk for _ok, value in outcomes}
    assert len(ids) == 1 and sum(1 for _ok, value in outcomes if not value.replayed) == 1
    assert Wallet.objects.get(member=payer).held == 1000
    assert Payment.objects.get().presence == PaymentPresence.MEMBER_ID
    assert ledger_problems() == {}

"""A bulk earn racing a single earn for the same idempotency key, on committed transactions.

The set-wise insert of the batch waits on the key the single earn holds uncommitted; when that
commits, the batch's attempt fails on the unique key, rolls back whole, and every item is earned
on its own: the taken key answers as points_earn answers it, the other items are created."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

import points.batch
from points import policies
from points.batch import CREATED, ERROR, EarnBatchItem, points_earn_batch
from points.models import Posting
from points.earning import points_earn
from points.ledger import Idempotency
from tests.factories import MerchantFactory, enrol_member

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 60


def _a_backend_waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


def test_a_key_taken_by_a_concurrent_earn_sends_the_batch_one_earn_at_a_time(bu, monkeypatch):
    merchant = MerchantFactory(business_unit=bu, code="shop1")
    single_member, batch_member, other = enrol_member(), enrol_member(), enrol_member()
    holding, hold, outcome = threading.Event(), threading.Event(), {}

    def hold_until_released(*, posting, wallet, tier):
        if posting.idempotency_key == "taken":
            holding.set()
            assert hold.wait(WAIT_SECONDS)

    def single_earn():
        try:
            outcome["posting"] = points_earn(
                member_id=single_member.pk, business_unit=bu, merchant=merchant, amount_cny=Decimal("10.00"),
                receipt_no="taken", idempotency=Idempotency(scope="pos", key="taken"),
            ).posting
        finally:
            connection.close()

    def release_once_the_batch_waits():
        for _ in range(WAIT_SECONDS * 20):
            if _a_backend_waits_on_a_lock():
                break
            threading.Event().wait(0.05)
        hold.set()
        connection.close()

    one_at_a_time = []
    real_earn_one = points.batch._earn_one
    monkeypatch.setattr(points.batch, "_earn_one", lambda entry, **kw: one_at_a_time.append(entry.index)
                        or real_earn_one(entry, **kw))
    monkeypatch.setattr(policies, "_after_earn_hooks", [*policies._after_earn_hooks, (hold_until_released, None)])
    single = threading.Thread(target=single_earn)
    single.start()
    releaser = threading.Thread(target=release_once_the_batch_waits)
    items = [
        EarnBatchItem(idempotency_key=key, member_id=who.pk, amount_cny=Decimal("10.00"), receipt_no=key,
                      merchant_code="shop1")
        for key, who in (("taken", batch_member), ("free", other))
    ]
    assert holding.wait(WAIT_SECONDS), "the single earn holds the key, uncommitted"
    releaser.start()
    taken, free = points_earn_batch(items=items, business_unit=bu, key_merchant=None, scope="pos")
    single.join(WAIT_SECONDS)
    releaser.join(WAIT_SECONDS)
    assert not single.is_alive() and not releaser.is_alive()

    assert one_at_a_time == [0, 1]
    assert (taken.status, taken.error["code"]) == (ERROR, "idempotency_conflict")
    assert free.status == CREATED
    assert Posting.objects.get(idempotency_scope="pos", idempotency_key="taken").pk == outcome["posting"].pk
    assert Posting.objects.filter(idempotency_scope="pos").count() == 2

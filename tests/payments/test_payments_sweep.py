"""The payments sweep on beat: lapsed authorisations get their expired move, in batches that
re-queue while full, each payment once."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app as celery_app
from mall import tasks
from mall.models_payments import Payment, PaymentStatus
from points.models import Hold

pytestmark = pytest.mark.django_db


def test_the_sweep_is_scheduled_every_minute():
    task = PeriodicTask.objects.get(name="Settle lapsed payments (every minute)")
    assert task.task == "mall.tasks.settle_lapsed_payments" and task.task in celery_app.tasks
    assert task.enabled and (task.interval.every, task.interval.period) == (1, "minutes")


def test_the_sweep_walks_every_full_batch_and_moves_each_payment_once(monkeypatch, settings, till, payer, pay_code,
                                                                     ledger_sound):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    settings.MALL_EXPIRY_BATCH_SIZE = 2
    for number in range(3):
        response = till.post("/api/v1/payments/", {"pay_code": pay_code(payer), "bill_no": f"B-{number}",
                                                    "bill_amount": "100.00", "points": 1000},
                             format="json", HTTP_IDEMPOTENCY_KEY=f"pay-{number}")
        assert response.status_code == 201, response.json()
    Hold.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.settle_lapsed_payments.delay().get() == 2  # the first batch; it re-queued the rest
    assert set(Payment.objects.values_list("status", flat=True)) == {PaymentStatus.EXPIRED}
    assert tasks.settle_lapsed_payments.delay().get() == 0
    ledger_sound()

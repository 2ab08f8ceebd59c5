"""A refund gives the points back to exactly the lots the capture took; points whose lot is
already past its expiry come back as a new lot of the same issuer, valid POINTS_REGRANT_DAYS
days, counted on the refund's event: the next expiry run does not take them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mall.models_payments import PaymentEvent
from points.expiry import expiry_run_batch
from points.ledger.builder import regrant_expiry
from points.models import Lot, LotMovement, Posting, PostingKind, Wallet

pytestmark = pytest.mark.django_db


def test_a_refund_to_an_expired_lot_comes_back_as_a_new_lot(till, payer, pay_code, ledger_sound):
    from points.earning import points_earn

    other = points_earn(member_id=payer.pk, business_unit=till_bu(payer), points=500, reason="later lot").posting
    paid = till.post("/api/v1/payments/", {"pay_code": pay_code(payer), "bill_no": "B-1", "bill_amount": "200.00",
                                           "points": 10000}, format="json", HTTP_IDEMPOTENCY_KEY="p1").json()["payment"]
    till.post(f"/api/v1/payments/{paid['id']}/capture/", {}, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    first_lot = Lot.objects.filter(wallet__member=payer).exclude(posting=other).get()
    assert first_lot.remaining == 0  # the capture took the earliest-expiring lot
    past = timezone.now() - timedelta(seconds=1)
    Lot.objects.filter(pk=first_lot.pk).update(available_at=past - timedelta(days=1), expires_at=past)

    refunded = till.post(f"/api/v1/payments/{paid['id']}/refund/", {"points": 3000}, format="json",
                         HTTP_IDEMPOTENCY_KEY="r1")
    assert refunded.status_code == 201, refunded.json()
    event = PaymentEvent.objects.get(payment_id=paid["id"], to_status="partially_refunded")
    assert event.points_to_expired_lots == 3000
    assert refunded.json()["payment"]["events"][-1]["points_to_expired_lots"] == 3000
    assert not LotMovement.objects.filter(posting=event.posting).exists(), "the expired lot takes nothing back"
    regranted = Lot.objects.get(posting=event.posting)
    assert (regranted.amount, regranted.business_unit_id, regranted.earned_at) == (
        3000, first_lot.business_unit_id, first_lot.earned_at)
    assert regranted.expires_at == regrant_expiry(regranted.available_at)
    assert Wallet.objects.get(member=payer).balance == 3500

    written, _cursor = expiry_run_batch(now=timezone.now(), after_wallet_id=0)
    assert written == 0, "nothing is due: the expired lot is empty, the new one is valid"
    assert not Posting.objects.filter(wallet__member=payer, kind=PostingKind.EXPIRE).exists()
    assert Wallet.objects.get(member=payer).balance == 3500
    ledger_sound()


def till_bu(member):
    from members.models import BusinessUnit

    return BusinessUnit.objects.get(code="bistro")

"""The small additions to points that risk control asks the ledger through: moving when an
earn's lots become available (lots_release, lots_available_locked), freezing inside the
caller's transaction, and the adjust gates of points.policies."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from config.errors import DomainError
from points.earning import points_earn
from points.exceptions import NotFound
from points.ledger import wallet_lock
from points.models import Lot, Posting, PostingKind, WalletStatusChange
from points.policies import AdjustContext, register_adjust_gate, unregister
from points.selectors import member_balance
from points.services import lots_available_locked, lots_release, points_adjust, points_spend, wallet_freeze_locked

pytestmark = pytest.mark.django_db


def test_lots_release_moves_the_earns_lots_capped_at_their_expiry(bu, member):
    posting = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100")).posting
    lot = Lot.objects.get(posting=posting)
    with transaction.atomic():
        wallet = wallet_lock(member_id=member.pk)
        later = lots_available_locked(wallet=wallet, posting_id=posting.pk, at=timezone.now() + timedelta(days=99999))
    lot.refresh_from_db()
    assert lot.available_at == lot.expires_at and later[0][0] == lot.pk
    assert member_balance(member_id=member.pk).pending == 100
    now = timezone.now()
    changes = lots_release(posting_id=posting.pk, at=now)
    lot.refresh_from_db()
    assert lot.available_at == now and changes == [(lot.pk, lot.expires_at, now)]
    assert lots_release(posting_id=posting.pk, at=now) == []  # nothing moves twice
    points_spend(member_id=member.pk, points=100, business_unit=bu)


def test_lots_release_is_only_for_earns(bu, member, operator):
    adjust = points_adjust(member_id=member.pk, points=5, business_unit=bu, reason="r", actor=operator).posting
    with pytest.raises(NotFound):
        lots_release(posting_id=adjust.pk, at=timezone.now())
    other = points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("1")).posting
    with transaction.atomic(), pytest.raises(NotFound):
        from tests.factories import enrol_member
        stranger = enrol_member()
        lots_available_locked(wallet=wallet_lock(member_id=stranger.pk), posting_id=other.pk, at=timezone.now())


def test_wallet_freeze_locked_records_once(member):
    with transaction.atomic():
        wallet = wallet_lock(member_id=member.pk)
        assert wallet_freeze_locked(wallet=wallet, reason="review") is True
        assert wallet_freeze_locked(wallet=wallet, reason="review") is False
    assert WalletStatusChange.objects.filter(wallet__member=member, frozen=True).count() == 1


class Refused(DomainError):
    code = "refused"


def test_adjust_gates_run_before_the_adjustment_and_may_refuse(bu, member, operator):
    seen = []

    def gate(context: AdjustContext):
        seen.append((context.member_id, context.points, context.actor, context.reason))
        if context.points > 100:
            raise Refused()

    register_adjust_gate(gate)
    try:
        points_adjust(member_id=member.pk, points=100, business_unit=bu, reason="r", actor=operator)
        with pytest.raises(Refused):
            points_adjust(member_id=member.pk, points=101, business_unit=bu, reason="r", actor=operator)
    finally:
        unregister(gate)
    assert seen == [(member.pk, 100, operator, "r"), (member.pk, 101, operator, "r")]
    assert Posting.objects.filter(kind=PostingKind.ADJUST).count() == 1

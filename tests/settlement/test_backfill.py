"""Clearing lines backfilled for postings written without the after-post hook (an upgrade from
before the settlement app, the benchmark's hand-written rows): the same lines the hook writes."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from points.expiry import expiry_run_batch
from points.policies import register_after_post_hook, unregister
from points.services import points_spend, posting_reverse
from settlement.backfill import ClosedRunExists, record_missing_clearing_lines
from settlement.hooks import record_clearing
from settlement.models import ClearingLine, RunStatus, SettlementRun
from settlement.selectors import period_of, reconcile
from tests.factories import enrol_member
from tests.settlement.helpers import earn, units

pytestmark = pytest.mark.django_db


@pytest.fixture
def without_clearing_hook():
    unregister(record_clearing)
    yield
    register_after_post_hook(record_clearing)


def all_lines():
    return sorted(
        (line.kind, line.issuer.code, line.redeemer.code if line.redeemer else None, line.points, line.amount_cny)
        for line in ClearingLine.objects.select_related("issuer", "redeemer")
    )


def history():
    """A spend across two issuers and its cancel, an expiry of three lots, a refund of an expired earn."""
    hotel, mall, park = units()
    first, second = enrol_member(), enrol_member()
    earn(first, hotel, 100)
    earn(first, park, 100)
    spend = points_spend(member_id=first.pk, business_unit=mall, points=150).posting
    posting_reverse(posting_id=spend.pk, business_unit=mall)
    earned = earn(second, hotel, 100)
    expiry_run_batch(now=timezone.now() + timedelta(days=800))
    posting_reverse(posting_id=earned.pk, business_unit=hotel)


# hotel 0.02, park 0.015 a point; the spend took the earliest earned first
EXPECTED = sorted([
    ("redemption", "hotel", "mall", 100, Decimal("2.00")), ("redemption", "park", "mall", 50, Decimal("0.75")),
    ("reversal", "hotel", "mall", -100, Decimal("-2.00")), ("reversal", "park", "mall", -50, Decimal("-0.75")),
    ("breakage", "hotel", None, 100, Decimal("2.00")), ("breakage", "park", None, 100, Decimal("1.50")),
    ("breakage", "hotel", None, 100, Decimal("2.00")),
    ("reclaim", "hotel", "hotel", 100, Decimal("2.00")), ("breakage_reversal", "hotel", None, -100, Decimal("-2.00")),
])


def test_the_hook_writes_the_hand_figures():
    history()
    assert all_lines() == EXPECTED
    assert record_missing_clearing_lines() == 0  # every posting has its lines already


def test_the_backfill_writes_the_lines_the_hook_would_have(without_clearing_hook, ledger_sound):
    history()
    assert not ClearingLine.objects.exists()
    written = record_missing_clearing_lines(batch_size=3)
    assert (written, all_lines()) == (len(EXPECTED), EXPECTED)
    assert reconcile(period=period_of(timezone.now())).problems == []
    assert record_missing_clearing_lines() == 0  # a second run finds nothing to do
    ledger_sound()


def test_the_backfill_refuses_while_a_run_is_closed(without_clearing_hook):
    history()
    SettlementRun.objects.create(period=period_of(timezone.now()).replace(year=2020), status=RunStatus.CLOSED,
                                 closed_at=timezone.now())
    with pytest.raises(ClosedRunExists):
        record_missing_clearing_lines()
    with pytest.raises(CommandError, match="closed"):
        call_command("record_clearing_lines")
    assert not ClearingLine.objects.exists()


def test_the_command_reports_what_it_wrote(without_clearing_hook, capsys):
    history()
    call_command("record_clearing_lines", "--batch-size", "2")
    assert "9 clearing lines written" in capsys.readouterr().out
    assert ClearingLine.objects.count() == 9

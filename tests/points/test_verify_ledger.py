"""verify_ledger catches each kind of corruption, names it, and fails; it passes a sound ledger.

Each test builds a sound ledger through the services, then corrupts it with raw SQL so that
exactly one invariant breaks. The corruption happens inside the test's transaction, which is
rolled back at the end: `SET LOCAL session_replication_role = replica` switches off the
append-only triggers for that transaction only, and a CHECK constraint that would refuse the
corruption is dropped inside it too (DDL is transactional in PostgreSQL, so it comes back).
One test commits a corruption and runs the real command in a subprocess to see its exit code.
"""

import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from points.models import Account, Entry, Lot, LotMovement, Posting, PostingKind, Wallet
from points.selectors import INVARIANTS, ledger_problems
from points.earning import points_earn
from points.expiry import expiry_run_batch
from points.ledger import hold_capture, hold_place, hold_void
from points.services import points_spend, posting_reverse
from points.transfers import member_transfer
from tests.factories import BusinessUnitFactory, OrganizationFactory, enrol_member


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def bypass_guards(*constraints):
    """Switch off triggers (append-only, balance) and drop CHECKs, for the current transaction only.

    The deferred checks queued by the sound postings are run first, while they still hold.
    """
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    sql("SET LOCAL session_replication_role = replica")
    for table, name in constraints:
        sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


class Book:
    """A small sound ledger: one BU, two members, helpers that post through the services."""

    def __init__(self):
        self.bu = BusinessUnitFactory(code="mall")
        self.a = enrol_member(name="A")
        self.b = enrol_member(name="B")

    def earn(self, member, points, days_ago=0):
        return points_earn(
            member_id=member.pk, business_unit=self.bu, points=points,
            occurred_at=timezone.now() - timedelta(days=days_ago),
        ).posting

    def spend(self, member, points):
        return points_spend(member_id=member.pk, points=points, business_unit=self.bu).posting

    def hold(self, member, points):
        return hold_place(member_id=member.pk, points=points, business_unit=self.bu, purpose="test").hold

    def wallet(self, member):
        return Wallet.objects.get(member=member)

    def lot(self, posting):
        return Lot.objects.get(posting=posting)

    def transfer(self, sender, recipient, points):
        """A sound transfer between the two members; (the sender's posting, the receiver's)."""
        with override_settings(POINTS_MEMBER_TRANSFERS_ENABLED=True):
            result = member_transfer(sender=sender, recipient_phone=recipient.phone, points=points)
        return result.sent, result.received

    def forged_posting(self, member, points):
        return Posting.objects.create(
            wallet=self.wallet(member), kind=PostingKind.ADJUST, points=points, reason="forged",
            business_unit=self.bu, occurred_at=timezone.now(),
        )


def entries_do_not_sum_to_zero(book):
    earn = book.earn(book.a, 100)
    bypass_guards()
    sql("UPDATE points_entry SET amount = amount - 1 WHERE posting_id = %s AND account = 'issuance'", [earn.pk])


def posting_points_differ(book):
    earn = book.earn(book.a, 100)
    bypass_guards()
    sql("UPDATE points_posting SET points = 99 WHERE id = %s", [earn.pk])


def entry_on_another_wallet(book):
    first, second = book.earn(book.a, 100), book.earn(book.b, 100)
    wallet_a, wallet_b = book.wallet(book.a).pk, book.wallet(book.b).pk
    bypass_guards()
    sql("""UPDATE points_entry SET wallet_id = CASE posting_id WHEN %s THEN %s ELSE %s END
           WHERE account = 'wallet' AND posting_id IN (%s, %s)""", [first.pk, wallet_b, wallet_a, first.pk, second.pk])


def balance_differs_from_entries(book):
    """Lots and cached balances swapped together between wallets: they agree, the entries do not."""
    first, second = book.earn(book.a, 100), book.earn(book.b, 60)
    wallet_a, wallet_b = book.wallet(book.a).pk, book.wallet(book.b).pk
    sql("UPDATE points_lot SET wallet_id = %s WHERE posting_id = %s", [wallet_b, first.pk])
    sql("UPDATE points_lot SET wallet_id = %s WHERE posting_id = %s", [wallet_a, second.pk])
    sql("UPDATE points_wallet SET balance = 60 WHERE id = %s", [wallet_a])
    sql("UPDATE points_wallet SET balance = 100 WHERE id = %s", [wallet_b])


def debt_differs_from_entries(book):
    book.earn(book.a, 100)
    sql("UPDATE points_wallet SET debt = 5 WHERE id = %s", [book.wallet(book.b).pk])


def balance_differs_from_lots(book):
    first, second = book.earn(book.a, 100), book.earn(book.b, 60)
    wallet_a, wallet_b = book.wallet(book.a).pk, book.wallet(book.b).pk
    sql("UPDATE points_lot SET wallet_id = %s WHERE posting_id = %s", [wallet_b, first.pk])
    sql("UPDATE points_lot SET wallet_id = %s WHERE posting_id = %s", [wallet_a, second.pk])


def negative_debt(book):
    """A forged, balanced posting crediting the debt account, mirrored in the cached debt."""
    book.earn(book.a, 100)
    bypass_guards(("points_wallet", "wallet_debt_non_negative"))
    posting = book.forged_posting(book.a, 5)
    Entry.objects.create(posting=posting, account=Account.DEBT, wallet=book.wallet(book.a), amount=5)
    Entry.objects.create(posting=posting, account=Account.ADJUSTMENT, business_unit=book.bu, amount=-5)
    sql("UPDATE points_wallet SET debt = -5 WHERE id = %s", [book.wallet(book.a).pk])


def points_while_in_debt(book):
    """A forged, balanced posting booking a debt next to 100 points held."""
    book.earn(book.a, 100)
    posting = book.forged_posting(book.a, -5)
    Entry.objects.create(posting=posting, account=Account.DEBT, wallet=book.wallet(book.a), amount=-5)
    Entry.objects.create(posting=posting, account=Account.ADJUSTMENT, business_unit=book.bu, amount=5)
    sql("UPDATE points_wallet SET debt = 5 WHERE id = %s", [book.wallet(book.a).pk])


def lot_above_its_amount(book):
    """A forged posting giving 10 points back to a lot nothing was taken from, consistently booked."""
    lot = book.lot(book.earn(book.a, 100))
    bypass_guards(("points_lot", "lot_remaining_within_amount"))
    posting = book.forged_posting(book.a, 10)
    Entry.objects.create(posting=posting, account=Account.WALLET, wallet=book.wallet(book.a), amount=10)
    Entry.objects.create(posting=posting, account=Account.ADJUSTMENT, business_unit=book.bu, amount=-10)
    LotMovement.objects.create(posting=posting, lot=lot, amount=10)
    sql("UPDATE points_lot SET remaining = 110 WHERE id = %s", [lot.pk])
    sql("UPDATE points_wallet SET balance = 110 WHERE id = %s", [book.wallet(book.a).pk])


def lot_differs_from_movements(book):
    """A spend's movement re-pointed to another lot of the same wallet."""
    book.earn(book.a, 100, days_ago=2)
    later = book.earn(book.a, 50)
    spend = book.spend(book.a, 30)
    bypass_guards()
    sql("UPDATE points_lotmovement SET lot_id = %s WHERE posting_id = %s", [book.lot(later).pk, spend.pk])


def movements_differ_from_entries(book):
    """Two lots of one wallet swap the postings that credited them."""
    first, second = book.earn(book.a, 100), book.earn(book.a, 50)
    lot_first, lot_second = book.lot(first).pk, book.lot(second).pk
    sql("UPDATE points_lot SET posting_id = %s WHERE id = %s", [second.pk, lot_first])
    sql("UPDATE points_lot SET posting_id = %s WHERE id = %s", [first.pk, lot_second])


def lot_moved_by_another_wallet(book):
    """Two members' identical spends swap the lots they took from."""
    lot_a, lot_b = book.lot(book.earn(book.a, 100)), book.lot(book.earn(book.b, 100))
    spend_a, spend_b = book.spend(book.a, 30), book.spend(book.b, 30)
    bypass_guards()
    sql("UPDATE points_lotmovement SET lot_id = %s WHERE posting_id = %s", [lot_b.pk, spend_a.pk])
    sql("UPDATE points_lotmovement SET lot_id = %s WHERE posting_id = %s", [lot_a.pk, spend_b.pk])


def reversal_exceeds_original(book):
    big, small = book.earn(book.a, 100), book.earn(book.a, 30)
    refund = posting_reverse(posting_id=big.pk, points=40).posting
    bypass_guards()
    sql("UPDATE points_posting SET reverses_id = %s WHERE id = %s", [small.pk, refund.pk])


def refund_reclaims_unexpired_breakage(book):
    """A refund reclaimed 50 expired points of its earn from breakage, then forged onto an earn
    none of whose points expired."""
    big = book.earn(book.a, 100)
    expiry_run_batch(now=timezone.now() + timedelta(days=800))
    other = book.earn(book.a, 100)
    refund = posting_reverse(posting_id=big.pk, points=50).posting
    bypass_guards()
    sql("UPDATE points_posting SET reverses_id = %s WHERE id = %s", [other.pk, refund.pk])


def lot_held_above_remaining(book):
    """A forged debit of 10 points from a lot whose 100 points a hold reserves."""
    lot = book.lot(book.earn(book.a, 100))
    book.hold(book.a, 100)
    bypass_guards(("points_lot", "lot_held_within_remaining"), ("points_wallet", "wallet_held_within_balance"))
    posting = book.forged_posting(book.a, -10)
    Entry.objects.create(posting=posting, account=Account.WALLET, wallet=book.wallet(book.a), amount=-10)
    Entry.objects.create(posting=posting, account=Account.ADJUSTMENT, business_unit=book.bu, amount=10)
    LotMovement.objects.create(posting=posting, lot=lot, amount=-10)
    sql("UPDATE points_lot SET remaining = 90 WHERE id = %s", [lot.pk])
    sql("UPDATE points_wallet SET balance = 90 WHERE id = %s", [book.wallet(book.a).pk])


def wallet_held_differs_from_lots(book):
    book.earn(book.a, 100)
    sql("UPDATE points_wallet SET held = 5 WHERE id = %s", [book.wallet(book.a).pk])


def lot_held_differs_from_allocations(book):
    lot = book.lot(book.earn(book.a, 100))
    book.hold(book.a, 30)
    sql("UPDATE points_lot SET held = 40 WHERE id = %s", [lot.pk])
    sql("UPDATE points_wallet SET held = 40 WHERE id = %s", [book.wallet(book.a).pk])


def hold_points_differ_from_allocations(book):
    book.earn(book.a, 100)
    hold = book.hold(book.a, 30)
    sql("UPDATE points_hold SET points = 40 WHERE id = %s", [hold.pk])


def hold_allocation_on_another_wallet(book):
    lot_a, lot_b = book.lot(book.earn(book.a, 100)), book.lot(book.earn(book.b, 100))
    hold_a, hold_b = book.hold(book.a, 30), book.hold(book.b, 30)
    bypass_guards()
    sql("UPDATE points_holdallocation SET lot_id = %s WHERE hold_id = %s", [lot_b.pk, hold_a.pk])
    sql("UPDATE points_holdallocation SET lot_id = %s WHERE hold_id = %s", [lot_a.pk, hold_b.pk])


def captured_hold_differs_from_posting(book):
    book.earn(book.a, 100)
    hold = book.hold(book.a, 30)
    hold_capture(hold_id=hold.pk)
    sql("UPDATE points_hold SET captured = 20 WHERE id = %s", [hold.pk])


def hold_events_disagree(book):
    book.earn(book.a, 100)
    hold = book.hold(book.a, 30)
    hold_void(hold_id=hold.pk)
    bypass_guards()
    sql("DELETE FROM points_holdevent WHERE hold_id = %s AND to_status = 'voided'", [hold.pk])


def wallet_of_two_holders(book):
    organization = OrganizationFactory()
    bypass_guards(("points_wallet", "wallet_one_holder"))
    sql("UPDATE points_wallet SET organization_id = %s WHERE id = %s", [organization.pk, book.wallet(book.a).pk])


def sent_transfer_without_its_received_half(book):
    book.earn(book.a, 100)
    _sent, received = book.transfer(book.a, book.b, 40)
    bypass_guards()
    sql("UPDATE points_posting SET kind = 'adjust' WHERE id = %s", [received.pk])


def received_transfer_without_its_sent_half(book):
    book.earn(book.a, 100)
    sent, _received = book.transfer(book.a, book.b, 40)
    bypass_guards()
    sql("UPDATE points_posting SET kind = 'adjust' WHERE id = %s", [sent.pk])


def transfer_legs_swapped_between_issuers(book):
    """Two transfers of lots of two issuers: their sent legs swap issuers, so each pair is off
    while every issuer's transfer account still nets to zero."""
    other = BusinessUnitFactory(code="hotel")
    book.earn(book.a, 40)
    first, _ = book.transfer(book.a, book.b, 40)
    points_earn(member_id=book.a.pk, business_unit=other, points=40)
    second, _ = book.transfer(book.a, book.b, 40)
    bypass_guards()
    sql("""UPDATE points_entry SET business_unit_id = CASE posting_id WHEN %s THEN %s ELSE %s END
           WHERE account = 'transfer' AND posting_id IN (%s, %s)""", [first.pk, other.pk, book.bu.pk, first.pk, second.pk])


def transfer_account_left_over(book):
    earn = book.earn(book.a, 100)
    bypass_guards()
    sql("UPDATE points_entry SET account = 'transfer' WHERE posting_id = %s AND account = 'issuance'", [earn.pk])


CORRUPTIONS = {
    "posting entries do not sum to zero": entries_do_not_sum_to_zero,
    "posting points differ from its member entries": posting_points_differ,
    "member entry on another wallet than its posting": entry_on_another_wallet,
    "wallet balance differs from its entries": balance_differs_from_entries,
    "wallet debt differs from its entries": debt_differs_from_entries,
    "wallet balance differs from its lots": balance_differs_from_lots,
    "negative wallet balance or debt": negative_debt,
    "wallet of no holder or of two": wallet_of_two_holders,
    "sent transfer without its received half": sent_transfer_without_its_received_half,
    "received transfer without its sent half": received_transfer_without_its_sent_half,
    "transfer legs do not net to zero per issuer": transfer_legs_swapped_between_issuers,
    "transfer account does not net to zero": transfer_account_left_over,
    "wallet holds points while in debt": points_while_in_debt,
    "lot remaining outside [0, amount]": lot_above_its_amount,
    "lot remaining differs from its movements": lot_differs_from_movements,
    "lot movements differ from the posting's wallet entries": movements_differ_from_entries,
    "lot moved by a posting of another wallet": lot_moved_by_another_wallet,
    "reversals exceed their original": reversal_exceeds_original,
    "refund reclaims more breakage than its earn's lots expired": refund_reclaims_unexpired_breakage,
    "lot held outside [0, remaining]": lot_held_above_remaining,
    "wallet held differs from its lots": wallet_held_differs_from_lots,
    "lot held differs from the allocations of its open holds": lot_held_differs_from_allocations,
    "hold allocations differ from its points": hold_points_differ_from_allocations,
    "hold allocation on a lot of another wallet": hold_allocation_on_another_wallet,
    "captured hold differs from its posting": captured_hold_differs_from_posting,
    "hold events disagree with its status": hold_events_disagree,
}


def test_every_invariant_has_a_corruption_test():
    assert set(CORRUPTIONS) == set(INVARIANTS)


@pytest.mark.django_db
def test_sound_ledger_passes(ledger_sound):
    book = Book()
    earn = book.earn(book.a, 100, days_ago=3)
    book.earn(book.b, 50)
    book.transfer(book.b, book.a, 10)
    spend = book.spend(book.a, 70)
    posting_reverse(posting_id=spend.pk, points=20)
    posting_reverse(posting_id=earn.pk)
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert f"ledger OK: {len(INVARIANTS)} invariants hold" in out.getvalue()
    ledger_sound()


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_fails_exactly_its_invariant(name):
    book = Book()
    assert ledger_problems() == {}
    CORRUPTIONS[name](book)

    assert list(ledger_problems()) == [name]
    err = StringIO()
    with pytest.raises(CommandError, match=f"1 of {len(INVARIANTS)} ledger invariants failed"):
        call_command("verify_ledger", stdout=StringIO(), stderr=err)
    assert f"FAIL {name}:" in err.getvalue()


def command_in_subprocess():
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return subprocess.run(
        [sys.executable, "manage.py", "verify_ledger"], cwd=settings.BASE_DIR, capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": url}, timeout=120, check=False,
    )


@pytest.mark.django_db(transaction=True)
def test_command_exit_status():
    book = Book()
    book.earn(book.a, 100)
    sound = command_in_subprocess()
    assert sound.returncode == 0, sound.stderr
    assert "ledger OK" in sound.stdout

    debt_differs_from_entries(book)
    broken = command_in_subprocess()
    assert broken.returncode != 0
    assert "FAIL wallet debt differs from its entries" in broken.stderr

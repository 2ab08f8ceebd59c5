"""The database itself refuses what the ledger forbids, whatever code talks to it.

These tests commit (transaction=True): the balance check on postings is a deferred constraint
trigger, which fires only at COMMIT. Each forbidden write is attempted with raw SQL as well as
through the ORM where it matters, so the guard is known to live in PostgreSQL, not in Python.
"""

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from points.models import Account, Entry, Lot, LotMovement, Posting, PostingKind, Wallet
from points.selectors import ledger_problems
from points.earning import points_earn
from points.ledger import Idempotency
from points.services import points_spend
from tests.factories import BusinessUnitFactory, enrol_member

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ledger():
    """One member who earned 100 and spent 30: a posting, entries, a lot and a lot movement."""
    bu = BusinessUnitFactory(code="mall")
    member = enrol_member(name="Guarded")
    earn = points_earn(member_id=member.pk, business_unit=bu, points=100).posting
    spend = points_spend(member_id=member.pk, points=30, business_unit=bu).posting
    return {
        "bu": bu,
        "wallet": Wallet.objects.get(member=member),
        "earn": earn,
        "spend": spend,
        "lot": Lot.objects.get(posting=earn),
        "movement": LotMovement.objects.get(posting=spend),
    }


def refused(sql, params=(), error=DatabaseError, match=None):
    """Run `sql` in its own transaction and assert the database refuses it."""
    with pytest.raises(error, match=match), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.parametrize("table", ["points_posting", "points_entry", "points_lotmovement"])
def test_append_only_tables_refuse_update_and_delete(ledger, table):
    before = ledger_problems()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), MIN(id) FROM {table}")
        count, row_id = cursor.fetchone()
    column = {"points_posting": "points", "points_entry": "amount", "points_lotmovement": "amount"}[table]

    protected = f"Cannot update or delete rows from {table} table"
    refused(f"UPDATE {table} SET {column} = {column} + 1 WHERE id = %s", [row_id], match=protected)
    refused(f"UPDATE {table} SET {column} = {column} WHERE id = %s", [row_id], match=protected)
    refused(f"DELETE FROM {table} WHERE id = %s", [row_id], match=protected)
    refused(f"DELETE FROM {table}", match=protected)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        assert cursor.fetchone()[0] == count
    assert before == ledger_problems() == {}


def test_orm_writes_on_ledger_rows_are_refused(ledger):
    with pytest.raises(DatabaseError), transaction.atomic():
        Posting.objects.filter(pk=ledger["earn"].pk).update(reason="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        Entry.objects.filter(posting=ledger["earn"]).update(amount=1)
    with pytest.raises(DatabaseError), transaction.atomic():
        ledger["movement"].delete()
    assert Posting.objects.get(pk=ledger["earn"].pk).reason == ""
    assert LotMovement.objects.filter(pk=ledger["movement"].pk).exists()


def test_unbalanced_posting_is_refused_at_commit(ledger):
    reached_commit = False
    with pytest.raises(IntegrityError, match="unbalanced"):
        with transaction.atomic():
            posting = Posting.objects.create(
                wallet=ledger["wallet"], kind=PostingKind.ADJUST, points=5, reason="forged", occurred_at=timezone.now(),
            )
            Entry.objects.create(posting=posting, account=Account.WALLET, wallet=ledger["wallet"], amount=5)
            Entry.objects.create(posting=posting, account=Account.ADJUSTMENT, business_unit=ledger["bu"], amount=-4)
            reached_commit = True  # deferred: nothing is refused before COMMIT
    assert reached_commit
    assert not Posting.objects.filter(reason="forged").exists()
    assert Entry.objects.count() == 4


def test_balanced_posting_passes_the_commit_trigger(ledger):
    with transaction.atomic():
        posting = Posting.objects.create(
            wallet=ledger["wallet"], kind=PostingKind.ADJUST, points=0, reason="moved between BUs",
            occurred_at=timezone.now(),
        )
        Entry.objects.create(posting=posting, account=Account.ADJUSTMENT, business_unit=ledger["bu"], amount=7)
        Entry.objects.create(posting=posting, account=Account.ISSUANCE, business_unit=ledger["bu"], amount=-7)
    assert Entry.objects.filter(posting=posting).count() == 2


def test_wallet_balance_and_debt_cannot_go_negative(ledger):
    wallet_id = ledger["wallet"].pk
    refused("UPDATE points_wallet SET balance = -1 WHERE id = %s", [wallet_id], IntegrityError,
            "wallet_balance_non_negative")
    refused("UPDATE points_wallet SET debt = -1 WHERE id = %s", [wallet_id], IntegrityError, "wallet_debt_non_negative")
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(pk=wallet_id).update(balance=-70)
    assert Wallet.objects.get(pk=wallet_id).balance == 70


@pytest.mark.parametrize("remaining", [101, -1])
def test_lot_remaining_stays_within_its_amount(ledger, remaining):
    refused("UPDATE points_lot SET remaining = %s WHERE id = %s", [remaining, ledger["lot"].pk], IntegrityError,
            "lot_remaining_within_amount|lot_held_within_remaining")
    assert Lot.objects.get(pk=ledger["lot"].pk).remaining == 70


def test_lot_amount_must_be_positive(ledger):
    refused("UPDATE points_lot SET amount = 0, remaining = 0 WHERE id = %s", [ledger["lot"].pk], IntegrityError,
            "lot_amount_positive")


def test_entry_names_exactly_one_account(ledger):
    posting, wallet, bu = ledger["earn"], ledger["wallet"], ledger["bu"]
    for fields in (
        {"account": Account.WALLET, "wallet": wallet, "business_unit": bu},
        {"account": Account.ISSUANCE, "wallet": wallet, "business_unit": bu},
        {"account": Account.WALLET, "business_unit": bu},
        {"account": Account.ISSUANCE, "wallet": wallet},
    ):
        with pytest.raises(IntegrityError, match="entry_names_one_account"), transaction.atomic():
            Entry.objects.create(posting=posting, amount=1, **fields)
    with pytest.raises(IntegrityError, match="entry_amount_non_zero"), transaction.atomic():
        Entry.objects.create(posting=posting, account=Account.WALLET, wallet=wallet, amount=0)
    assert Entry.objects.filter(posting=posting).count() == 2


def test_idempotency_key_is_unique_per_scope(ledger):
    wallet = ledger["wallet"]

    def posting(scope, key):
        return Posting.objects.create(
            wallet=wallet, kind=PostingKind.EARN, points=0, idempotency_scope=scope, idempotency_key=key,
            occurred_at=timezone.now(),
        )

    posting("partner:1", "k")
    with pytest.raises(IntegrityError, match="posting_idempotency_key_unique_per_scope"), transaction.atomic():
        posting("partner:1", "k")
    posting("partner:2", "k")
    posting("partner:1", "")
    posting("partner:1", "")  # no key: no uniqueness
    assert Posting.objects.filter(idempotency_key="k").count() == 2


def test_reversal_must_name_its_original(ledger):
    with pytest.raises(IntegrityError, match="posting_reversal_has_original"), transaction.atomic():
        Posting.objects.create(wallet=ledger["wallet"], kind=PostingKind.REFUND, points=-1, occurred_at=timezone.now())
    with pytest.raises(IntegrityError, match="posting_reversal_has_original"), transaction.atomic():
        Posting.objects.create(
            wallet=ledger["wallet"], kind=PostingKind.SPEND, points=-1, reverses=ledger["earn"],
            occurred_at=timezone.now(),
        )


def test_services_still_write_after_refused_attempts(ledger):
    """A refused write leaves the connection and the ledger usable: the next posting goes through."""
    refused("DELETE FROM points_entry")
    result = points_spend(
        member_id=ledger["wallet"].member_id, points=10, business_unit=ledger["bu"],
        idempotency=Idempotency(scope="partner:1", key="after"),
    )
    assert result.wallet.balance == 60
    assert ledger_problems() == {}

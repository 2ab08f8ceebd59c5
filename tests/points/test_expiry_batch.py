"""The set-based expiry job: one transaction per batch of wallets, one posting per wallet."""

import random
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from members.models import BusinessUnit
from points import expiry, services
from points.exceptions import InsufficientPoints
from points.expiry import expiry_run_batch
from points.ledger import writer
from points.models import Account, Entry, Lot, LotMovement, Posting, PostingKind, Wallet
from points.selectors import ledger_problems
from points.earning import points_earn
from points.ledger import SYSTEM_SCOPE, request_fingerprint
from points.services import points_spend, posting_reverse, wallet_freeze
from tests.factories import BusinessUnitFactory, enrol_member


def assert_ledger_sound():
    assert ledger_problems() == {}
    call_command("verify_ledger")


def test_a_batch_expires_only_what_is_due_one_posting_per_wallet(bu, other_bu, ledger_sound):
    short = BusinessUnitFactory(code="short", expiry_months=1)
    members = [enrol_member(name=f"M{i}") for i in range(3)]
    for index, member in enumerate(members):
        points_earn(member_id=member.pk, business_unit=short, points=10 + index)
        points_earn(member_id=member.pk, business_unit=other_bu, points=5)
        points_earn(member_id=member.pk, business_unit=bu, points=100)
    points_spend(member_id=members[0].pk, points=4, business_unit=bu)  # taken from the earliest expiry: short
    untouched = enrol_member(name="Nothing due")
    points_earn(member_id=untouched.pk, business_unit=bu, points=50)
    later = timezone.now() + timedelta(days=60)  # past the short lots' expiry, before the others'

    written, cursor = expiry_run_batch(now=later, batch_size=10)

    assert (written, cursor) == (3, None)
    expiries = {p.wallet.member_id: p for p in Posting.objects.filter(kind=PostingKind.EXPIRE)}
    assert {member_id: p.points for member_id, p in expiries.items()} == {
        members[0].pk: -6, members[1].pk: -11, members[2].pk: -12}
    assert {(e.account, e.business_unit_id, e.amount) for e in expiries[members[1].pk].entries.all()} == {
        (Account.WALLET, None, -11), (Account.EXPIRY, short.pk, 11)}
    assert not Lot.objects.filter(business_unit=short, remaining__gt=0).exists()
    assert all(lot.remaining == lot.amount for lot in Lot.objects.exclude(business_unit=short))
    assert LotMovement.objects.filter(posting__kind=PostingKind.EXPIRE).count() == 3
    for member in [*members, untouched]:
        member.wallet.refresh_from_db()
    assert [m.wallet.balance for m in members] == [105, 105, 105]
    assert untouched.wallet.balance == 50
    ledger_sound()


def test_a_rerun_with_the_same_now_skips_wallets_it_already_expired(bu, member, ledger_sound):
    earn = points_earn(member_id=member.pk, business_unit=bu, points=30)
    spend = points_spend(member_id=member.pk, points=5, business_unit=bu)
    later = Lot.objects.get(posting=earn.posting).expires_at + timedelta(seconds=1)
    assert expiry_run_batch(now=later) == (1, None)
    posting_reverse(posting_id=spend.posting.pk)  # gives 5 back to the lot, which is past `later`'s expiry

    assert expiry_run_batch(now=later) == (0, None)
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 1

    assert expiry_run_batch(now=later + timedelta(seconds=1)) == (1, None)
    assert list(Posting.objects.filter(kind=PostingKind.EXPIRE).order_by("id").values_list("points", flat=True)) == [-25, -5]
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 0
    ledger_sound()


# --- many wallets, several business units, both database paths -----------------------------


def _due_by_wallet(now):
    """What the job must expire, read before it runs: {wallet: {lot id: (business unit, remaining)}}."""
    due = {}
    for lot in Lot.objects.filter(remaining__gt=0, expires_at__lt=now):
        due.setdefault(lot.wallet_id, {})[lot.pk] = (lot.business_unit_id, lot.remaining)
    return due


@pytest.fixture
def many_wallets(bu, other_bu):
    """30 members with lots at three business units (two of them due at `later`), some spent in
    part, one frozen, some with nothing due; earnings spread over the last 30 days."""
    rng = random.Random(7)
    short = BusinessUnitFactory(code="short", expiry_months=1)
    medium = BusinessUnitFactory(code="medium", expiry_months=2, pending_days=3)
    members = [enrol_member(name=f"Many {i}") for i in range(30)]
    for index, member in enumerate(members):
        for _ in range(rng.randint(1, 4)):
            unit = rng.choice([short, medium, bu] if index % 5 else [bu, other_bu])
            points_earn(member_id=member.pk, business_unit=unit, points=rng.randint(1, 90),
                        occurred_at=timezone.now() - timedelta(days=rng.randint(0, 29)))
        balance = Wallet.objects.get(member=member).balance
        if index % 3 == 0 and balance > 1:
            points_spend(member_id=member.pk, points=rng.randint(1, balance // 2 or 1), business_unit=bu)
    wallet_freeze(member_id=members[4].pk, reason="under review")
    return members, timezone.now() + timedelta(days=75)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_many_wallets_and_business_units_each_expire_exactly_their_due_lots(many_wallets, vendor, monkeypatch):
    """Committed batches (so the deferred balance trigger runs) on the set-based PostgreSQL
    statement and on the ORM path of the SQLite demo: the same postings, legs and movements."""
    members, later = many_wallets
    due = _due_by_wallet(later)
    balances = dict(Wallet.objects.values_list("id", "balance"))
    untouched = {lot.pk: lot.remaining for lot in Lot.objects.filter(remaining__gt=0, expires_at__gte=later)}
    assert 10 < len(due) < len(members), "the fixture must leave some wallets with nothing due"
    assert {unit for lots in due.values() for unit, _ in lots.values()} == set(
        BusinessUnit.objects.filter(code__in=["short", "medium"]).values_list("id", flat=True))
    monkeypatch.setattr(connection, "vendor", vendor)

    total, cursor, batches = 0, 0, 0
    while cursor is not None:
        written, cursor = expiry_run_batch(now=later, after_wallet_id=cursor, batch_size=7)
        total, batches = total + written, batches + 1
    monkeypatch.undo()

    assert (total, batches) == (len(due), len(due) // 7 + 1)
    stamp = later.isoformat()
    for posting in Posting.objects.filter(kind=PostingKind.EXPIRE).prefetch_related("entries", "lot_movements"):
        lots = due.pop(posting.wallet_id)
        expired = sum(remaining for _, remaining in lots.values())
        per_unit = {}
        for unit, remaining in lots.values():
            per_unit[unit] = per_unit.get(unit, 0) + remaining
        assert posting.points == -expired
        assert (posting.idempotency_scope, posting.idempotency_key) == (SYSTEM_SCOPE, f"expire:{posting.wallet_id}:{stamp}")
        assert posting.request_hash == request_fingerprint("expire", wallet=posting.wallet_id, now=stamp)
        assert (posting.occurred_at, posting.reason, posting.explanation) == (later, "expiry", [])
        assert posting.created_at is not None and posting.business_unit_id is None
        assert sorted((e.account, e.wallet_id, e.business_unit_id, e.amount) for e in posting.entries.all()) == sorted(
            [(Account.WALLET, posting.wallet_id, None, -expired)]
            + [(Account.EXPIRY, None, unit, amount) for unit, amount in per_unit.items()])
        assert {(m.lot_id, m.amount) for m in posting.lot_movements.all()} == {
            (lot_id, -remaining) for lot_id, (_, remaining) in lots.items()}
        assert Wallet.objects.get(pk=posting.wallet_id).balance == balances[posting.wallet_id] - expired
    assert due == {}, "every wallet with due lots has its posting"
    assert not Lot.objects.filter(remaining__gt=0, expires_at__lt=later).exists()
    assert dict(Lot.objects.filter(pk__in=untouched).values_list("id", "remaining")) == untouched
    assert Wallet.objects.get(member=members[4]).is_frozen
    assert_ledger_sound()


# --- a crash, a rerun ------------------------------------------------------------------------


def ledger_snapshot():
    return (
        list(Posting.objects.order_by("id").values_list("id", "points")),
        Entry.objects.count(),
        LotMovement.objects.count(),
        sorted(Lot.objects.values_list("id", "remaining")),
        sorted(Wallet.objects.values_list("id", "balance")),
    )


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_crashes_before_commit_leaves_nothing_and_the_rerun_expires_once(many_wallets, monkeypatch):
    members, later = many_wallets
    before = ledger_snapshot()
    due = _due_by_wallet(later)
    real = writer.write_expiry

    def crash_after_writing(**kwargs):
        assert real(**kwargs) > 0
        raise RuntimeError("worker lost")

    monkeypatch.setattr(expiry, "write_expiry", crash_after_writing)
    with pytest.raises(RuntimeError, match="worker lost"):
        expiry_run_batch(now=later, batch_size=1000)
    monkeypatch.undo()
    assert ledger_snapshot() == before, "the batch is all or nothing"

    assert expiry_run_batch(now=later, batch_size=1000) == (len(due), None)
    after = ledger_snapshot()
    assert expiry_run_batch(now=later, batch_size=1000) == (0, None)
    assert expiry_run_batch(now=later)[0] == 0
    assert ledger_snapshot() == after, "a rerun with the same now changes nothing"
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == len(due)
    assert_ledger_sound()


@pytest.mark.django_db(transaction=True)
def test_the_batch_keeps_the_balance_trigger_armed(bu):
    """The batch sets pgtrigger's ignore list to empty and generic plans (see COMMIT_CHECKS_SQL):
    the check on unbalanced postings must still refuse at COMMIT."""
    wallet = Wallet.objects.get(member=enrol_member(name="Forger"))
    with pytest.raises(IntegrityError, match="unbalanced"):
        with transaction.atomic():
            posting = Posting.objects.create(wallet=wallet, kind=PostingKind.EXPIRE, points=-5, occurred_at=timezone.now())
            Entry.objects.create(posting=posting, account=Account.WALLET, wallet=wallet, amount=-5)
            with connection.cursor() as cursor:
                cursor.execute(writer.COMMIT_CHECKS_SQL)
    assert not Posting.objects.filter(wallet=wallet).exists()


# --- a spend racing the batch on the same wallet --------------------------------------------


def wait_until_blocked_on_a_lock(count=1):
    """Poll PostgreSQL until `count` other sessions wait on a row lock (no timing assumption)."""
    with connection.cursor() as cursor:
        for _ in range(600):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0] >= count:
                return
            time.sleep(0.05)
    raise AssertionError("no session ever waited on the lock")


def in_thread(call):
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except Exception as exc:  # noqa: BLE001 - the outcome is asserted by the test
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.fixture
def racing_wallet(bu):
    """A member with 100 points due at `later` (short-lived BU) and 50 that stay valid (bu)."""
    short = BusinessUnitFactory(code="short", expiry_months=1)
    member = enrol_member(name="Racer")
    points_earn(member_id=member.pk, business_unit=short, points=100)
    points_earn(member_id=member.pk, business_unit=bu, points=50)
    return member, short, timezone.now() + timedelta(days=60)


@pytest.mark.django_db(transaction=True)
def test_a_spend_holding_the_wallet_lock_is_seen_by_the_batch_that_waited(racing_wallet, bu, monkeypatch):
    member, short, later = racing_wallet
    locked, release = threading.Event(), threading.Event()
    real_lock = services.wallet_lock

    def lock_then_hold(**kwargs):
        wallet = real_lock(**kwargs)
        locked.set()
        assert release.wait(30)
        return wallet

    monkeypatch.setattr(services, "wallet_lock", lock_then_hold)
    spender, spent = in_thread(lambda: points_spend(member_id=member.pk, points=30, business_unit=bu))
    assert locked.wait(30)
    runner, run = in_thread(lambda: expiry_run_batch(now=later))
    wait_until_blocked_on_a_lock()
    release.set()
    spender.join(30)
    runner.join(30)

    assert "error" not in spent and "error" not in run
    assert run["value"] == (1, None)
    expire = Posting.objects.get(kind=PostingKind.EXPIRE)
    assert expire.points == -70, "the 30 spent from the earliest-expiring lot are not expired again"
    assert Lot.objects.get(business_unit=short).remaining == 0
    assert Wallet.objects.get(member=member).balance == 50
    assert_ledger_sound()


@pytest.mark.django_db(transaction=True)
def test_a_spend_waiting_on_the_batch_finds_the_due_lots_emptied(racing_wallet, bu, monkeypatch):
    member, short, later = racing_wallet
    written, release = threading.Event(), threading.Event()
    real = writer.write_expiry

    def write_then_hold(**kwargs):
        count = real(**kwargs)
        written.set()
        assert release.wait(30)
        return count

    monkeypatch.setattr(expiry, "write_expiry", write_then_hold)
    runner, run = in_thread(lambda: expiry_run_batch(now=later))
    assert written.wait(30)
    spender, spent = in_thread(lambda: points_spend(member_id=member.pk, points=120, business_unit=bu))
    wait_until_blocked_on_a_lock()
    release.set()
    runner.join(30)
    spender.join(30)

    assert run["value"] == (1, None)
    assert isinstance(spent.get("error"), InsufficientPoints), "only the 50 still valid were left to spend"
    assert Posting.objects.get(kind=PostingKind.EXPIRE).points == -100
    assert not Posting.objects.filter(kind=PostingKind.SPEND).exists()
    assert Wallet.objects.get(member=member).balance == 50
    assert_ledger_sound()


# --- ranges of wallets expired side by side --------------------------------------------------


def test_partitions_cover_every_wallet_once_in_disjoint_ranges(many_wallets, monkeypatch):
    members, later = many_wallets
    due = set(_due_by_wallet(later))
    ranges = expiry.expiry_partitions(now=later, count=4)
    assert len(ranges) == 4
    assert ranges[0][0] == 0 and ranges[-1][1] is None
    assert all(after < through for after, through in ranges[:-1])
    assert [through for _, through in ranges[:-1]] == [after for after, _ in ranges[1:]], "contiguous, disjoint"
    holders = [[w for w in due if after < w and (through is None or w <= through)] for after, through in ranges]
    assert sorted(w for held in holders for w in held) == sorted(due)
    assert all(holders), "the span of due wallets is cut into parts that each hold some"

    assert expiry.expiry_partitions(now=later, count=1) == [(0, None)]
    assert expiry.expiry_partitions(now=timezone.now() - timedelta(days=1), count=4) == [(0, None)], "nothing due"
    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert expiry.expiry_partitions(now=later, count=4) == [(0, None)]


@pytest.mark.django_db(transaction=True)
def test_chains_over_the_ranges_run_side_by_side_and_expire_each_wallet_once(many_wallets):
    members, later = many_wallets
    due = _due_by_wallet(later)
    ranges = expiry.expiry_partitions(now=later, count=3)
    assert len(ranges) == 3

    def chain(after, through):
        written, cursor = 0, after
        try:
            while cursor is not None:
                count, cursor = expiry_run_batch(now=later, after_wallet_id=cursor, through_wallet_id=through, batch_size=2)
                written += count
            return written
        finally:
            connection.close()

    barrier = threading.Barrier(len(ranges))
    outcomes = [in_thread(lambda bounds=bounds: barrier.wait(30) is not None and chain(*bounds)) for bounds in ranges]
    for thread, _ in outcomes:
        thread.join(60)
    assert [outcome.get("error") for _, outcome in outcomes] == [None] * 3
    assert sum(outcome["value"] for _, outcome in outcomes) == len(due)
    assert sorted(Posting.objects.filter(kind=PostingKind.EXPIRE).values_list("wallet_id", flat=True)) == sorted(due)
    assert not Lot.objects.filter(remaining__gt=0, expires_at__lt=later).exists()
    assert_ledger_sound()

"""What tests/points/test_partitioned_ledger.py runs on a PostgreSQL of its own, in a Django
process pointed at it (`manage.py shell -c "...; run('step')"`): each step works through the
services, commits for real (the deferred checks fire) and prints one JSON line of what it saw."""

import json
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from unittest import mock

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from members.models import BusinessUnit
from members.services import member_enrol
from points.batch import EarnBatchItem, points_earn_batch
from points.earning import points_earn
from points.exceptions import IdempotencyConflict
from points.expiry import expiry_run_batch
from points.ledger import Idempotency, hold_capture, hold_place, hold_void
from points.models import Posting, PostingKind, Wallet
from points.partitioning import ledger_partitions_extend
from points.partitioning.months import ID_SPAN, LEDGER_TABLES, month_after, month_start
from points.selectors import ledger_problems
from points.services import points_spend, posting_reverse
from points.tasks import extend_ledger_partitions
from points.timeutils import group_timezone
from points.transfers import member_transfer
from tests.factories import BusinessUnitFactory

SCOPE = "partner:test"


def scalar(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()[0]


def rows(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def member():
    return member_enrol(phone=f"139{uuid.uuid4().int % 10**8:08d}", name="Partitioned")


def key() -> Idempotency:
    return Idempotency(scope=SCOPE, key=uuid.uuid4().hex)


def mall() -> BusinessUnit:
    return BusinessUnitFactory(code="mall", name="Mall")


def partitions_of(table, ids):
    """{partition: rows} of the rows of `table` with these ids."""
    return dict(rows(f"SELECT tableoid::regclass::text, count(*) FROM {table} WHERE id = ANY(%s) GROUP BY 1", [ids]))


def written_since(table, after_id):
    return [row_id for (row_id,) in rows(f"SELECT id FROM {table} WHERE id > %s ORDER BY id", [after_id])]


def seed():
    """Before the conversion: a small ledger of every kind of posting the services write."""
    bu = mall()
    first, second = member(), member()
    earned = points_earn(member_id=first.pk, business_unit=bu, points=500, idempotency=key()).posting
    points_earn(member_id=second.pk, business_unit=bu, points=300, idempotency=key())
    spent = points_spend(member_id=first.pk, points=120, business_unit=bu, idempotency=key()).posting
    posting_reverse(posting_id=spent.pk, points=20, idempotency=key())
    posting_reverse(posting_id=earned.pk, points=30, idempotency=key())
    held = hold_place(member_id=second.pk, points=50, business_unit=bu, purpose="test").hold
    hold_capture(hold_id=held.pk, points=40)
    return {"counts": {table: scalar(f"SELECT count(*) FROM {table}") for table in LEDGER_TABLES},
            "max_ids": {table: scalar(f"SELECT max(id) FROM {table}") for table in LEDGER_TABLES},
            "problems": ledger_problems()}


def exercise():
    """After the conversion: earn, spend, cancel, refund, hold then capture, a void, a bulk earn,
    a transfer and an expiry run, all through the services; replays and a conflict."""
    bu = mall()
    before = {table: scalar(f"SELECT max(id) FROM {table}") for table in LEDGER_TABLES}
    first, second = member(), member()
    earn_key = key()
    earned = points_earn(member_id=first.pk, business_unit=bu, points=1000, idempotency=earn_key)
    replayed = points_earn(member_id=first.pk, business_unit=bu, points=1000, idempotency=earn_key)
    try:
        points_earn(member_id=first.pk, business_unit=bu, points=999, idempotency=earn_key)
        conflict = False
    except IdempotencyConflict:
        conflict = True
    spent = points_spend(member_id=first.pk, points=300, business_unit=bu, idempotency=key()).posting
    cancelled = posting_reverse(posting_id=spent.pk, points=100, idempotency=key()).posting
    refunded = posting_reverse(posting_id=earned.posting.pk, points=50, idempotency=key()).posting
    hold = hold_place(member_id=first.pk, points=70, business_unit=bu, purpose="test", idempotency=key()).hold
    _result, captured = hold_capture(hold_id=hold.pk, points=60, idempotency=key())
    void = hold_place(member_id=first.pk, points=10, business_unit=bu, purpose="test").hold
    hold_void(hold_id=void.pk)
    batch = points_earn_batch(
        items=[EarnBatchItem(idempotency_key=uuid.uuid4().hex, member_id=m.pk, amount_cny=Decimal("88.00"),
                             receipt_no=uuid.uuid4().hex[:12]) for m in (first, second, second)],
        business_unit=bu, key_merchant=None, scope=SCOPE,
    )
    with override_settings(POINTS_MEMBER_TRANSFERS_ENABLED=True):
        transfer = member_transfer(sender=first, recipient_phone=second.phone, points=25)
    points_earn(member_id=second.pk, business_unit=bu, points=40, occurred_at=timezone.now() - timedelta(days=400),
                max_backdate=None)
    expired, _cursor = expiry_run_batch(now=timezone.now())
    new = {table: written_since(table, before[table]) for table in LEDGER_TABLES}
    month = scalar("SELECT points_ledger_month()")
    entries_apart = scalar(
        "SELECT count(*) FROM points_entry e WHERE e.id > %s AND e.id / %s <> e.posting_id / %s",
        [before["points_entry"], ID_SPAN, ID_SPAN])
    return {
        "month": month,
        "kinds": sorted({kind for (kind,) in rows("SELECT kind FROM points_posting WHERE id = ANY(%s)",
                                                  [new["points_posting"]])}),
        "partitions": {table: partitions_of(table, ids) for table, ids in new.items()},
        "id_months": sorted({row_id // ID_SPAN for ids in new.values() for row_id in ids}),
        "replayed": [replayed.replayed, replayed.posting.pk == earned.posting.pk],
        "conflict": conflict,
        "postings": [earned.posting.pk, spent.pk, cancelled.pk, refunded.pk, captured.pk,
                     transfer.sent.pk, transfer.received.pk],
        "batch": [outcome.status for outcome in batch],
        "expired": expired,
        "entries_apart": entries_apart,
        "balance": Wallet.objects.get(member=first).balance,
        "problems": ledger_problems(),
    }


def _refused(statement, params=()):
    """The error PostgreSQL raises for `statement` in a savepoint of its own ('' if none)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, params)
    except DatabaseError as error:
        return str(error).splitlines()[0]
    return ""


def guards():
    """UPDATE and DELETE on every ledger table and partition with rows, through the parent and on
    the partition itself; an unbalanced posting at commit; a second posting under a taken key."""
    refusals = {}
    for table in LEDGER_TABLES:
        column = "points" if table == "points_posting" else "amount"
        for partition, row_id in rows(f"SELECT tableoid::regclass::text, min(id) FROM {table} GROUP BY 1"):
            refusals[partition] = [
                _refused(f"UPDATE {table} SET {column} = {column} + 1 WHERE id = %s", [row_id]),
                _refused(f"DELETE FROM {table} WHERE id = %s", [row_id]),
                _refused(f"UPDATE {partition} SET {column} = {column} WHERE id = %s", [row_id]),
                _refused(f"DELETE FROM {partition} WHERE id = %s", [row_id]),
            ]
    refusals["points_posting_key"] = [_refused("UPDATE points_posting_key SET idempotency_key = 'x'"),
                                      _refused("DELETE FROM points_posting_key")]
    wallet = Wallet.objects.filter(member__isnull=False).first()
    unbalanced = ""
    try:
        with transaction.atomic():
            posting = Posting.objects.create(wallet=wallet, kind=PostingKind.ADJUST, points=5,
                                             occurred_at=timezone.now(), reason="unbalanced")
            posting.entries.create(account="wallet", wallet=wallet, amount=5)
    except IntegrityError as error:
        unbalanced = str(error).splitlines()[0]
    taken = Posting.objects.exclude(idempotency_key="").order_by("-id").first()
    duplicate = ""
    try:
        with transaction.atomic():
            Posting.objects.create(wallet=wallet, kind=PostingKind.ADJUST, points=0, occurred_at=timezone.now(),
                                   idempotency_scope=taken.idempotency_scope, idempotency_key=taken.idempotency_key)
    except IntegrityError as error:
        duplicate = str(error).splitlines()[0]
    return {"refusals": refusals, "unbalanced": unbalanced, "duplicate": duplicate,
            "count": scalar("SELECT count(*) FROM points_posting WHERE reason = 'unbalanced'"),
            "problems": ledger_problems()}


def race():
    """An earn racing another transaction that holds the same key, not yet committed: the
    earn's posting waits on the key table's unique index; when the holder commits, the earn is
    refused as a conflict (another request under its key), when it rolls back, the earn posts.
    The holder's posting is a bare adjustment of 0 points (balanced: it has no entries)."""
    bu = mall()
    outcomes = {("holder commits" if commits else "holder rolls back"): _race_once(bu, commits=commits)
                for commits in (True, False)}
    return {"outcomes": outcomes, "problems": ledger_problems()}


def _race_once(bu, *, commits: bool) -> dict:
    earn_key, inserted, go = key(), threading.Event(), threading.Event()
    wallet = Wallet.objects.get(member=member())
    holder = threading.Thread(target=_hold_key, args=(wallet, earn_key, inserted, go, commits))
    holder.start()
    inserted.wait(10)
    go.set()
    began = time.monotonic()
    try:
        earned = points_earn(member_id=member().pk, business_unit=bu, points=10, idempotency=earn_key)
        outcome = "replayed" if earned.replayed else "posted"
    except IdempotencyConflict:
        outcome = "conflict"
    waited = time.monotonic() - began
    holder.join(10)
    return {"outcome": outcome, "waited": waited >= 1.5,
            "postings": scalar("SELECT count(*) FROM points_posting WHERE idempotency_key = %s", [earn_key.key]),
            "keys": scalar("SELECT count(*) FROM points_posting_key WHERE idempotency_key = %s", [earn_key.key])}


def _hold_key(wallet, earn_key, inserted, go, commits):
    """In a thread of its own: a posting under `earn_key`, kept uncommitted two seconds after `go`."""
    try:
        with transaction.atomic():
            Posting.objects.create(wallet=wallet, kind=PostingKind.ADJUST, points=0, occurred_at=timezone.now(),
                                   idempotency_scope=earn_key.scope, idempotency_key=earn_key.key)
            inserted.set()
            go.wait(10)
            time.sleep(2)
            if not commits:
                raise _RolledBack
    except _RolledBack:
        pass
    finally:
        connection.close()


class _RolledBack(Exception):
    pass


def default_partition():
    """A month that came without its partition: its postings land in the default partition,
    verify_ledger says so, the beat task moves them into the month's new partition.

    The calendar is moved one month on, for the database (its month function) and for Django
    (timezone.now); next month's partitions, empty, are taken away first."""
    bu = mall()
    month = scalar("SELECT points_ledger_month()")
    source = scalar("SELECT prosrc FROM pg_proc WHERE proname = 'points_ledger_month'")
    next_month = month_after(month)
    later = month_start(next_month, group_timezone()) + timedelta(days=1, hours=12)
    with connection.cursor() as cursor:
        for table in reversed(LEDGER_TABLES):
            cursor.execute(f"ALTER TABLE {table} DETACH PARTITION {table}_p{next_month}")
            cursor.execute(f"DROP TABLE {table}_p{next_month}")
        cursor.execute("CREATE OR REPLACE FUNCTION points_ledger_month() RETURNS integer LANGUAGE sql STABLE AS "
                       f"$$ SELECT {next_month} $$")
    try:
        with mock.patch("django.utils.timezone.now", return_value=later):
            stray = points_earn(member_id=member().pk, business_unit=bu, points=77, idempotency=key()).posting
            in_default = partitions_of("points_posting", [stray.pk])
            before = ledger_problems()
            created = extend_ledger_partitions.apply().get()
            again = ledger_partitions_extend(months_ahead=3)
            after = ledger_problems()
            moved = partitions_of("points_posting", [stray.pk])
            entries = dict(rows("SELECT tableoid::regclass::text, count(*) FROM points_entry WHERE posting_id = %s "
                                "GROUP BY 1", [stray.pk]))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("CREATE OR REPLACE FUNCTION points_ledger_month() RETURNS integer LANGUAGE sql STABLE AS "
                           f"$${source}$$")
    return {"month": month, "next_month": next_month, "in_default": in_default, "before": sorted(before),
            "created": created, "again": again, "moved": moved, "entries": entries, "after": after,
            "problems": ledger_problems()}


STEPS = {"seed": seed, "exercise": exercise, "guards": guards, "race": race, "default_partition": default_partition}


def run(step: str) -> None:
    print(json.dumps(STEPS[step](), default=str))

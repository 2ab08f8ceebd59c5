"""What a chunk of a member import costs in SQL: its statements do not grow with its rows, and
the lookup of the keys already posted can use the partial idempotency index (a chunk must not
read every posting of the ledger)."""

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from points.imports.services import member_import_create, member_import_run
from points.models import Wallet
from tests.factories import BusinessUnitFactory, enrol_member
from tests.imports.test_member_import import csv_bytes, future

pytestmark = pytest.mark.django_db

INDEX = "posting_idempotency_key_unique_per_scope"


@pytest.fixture
def mall(db):
    return BusinessUnitFactory(code="mall", name="Central Mall")


def rows(first: int, count: int) -> list[list[str]]:
    return [[f"cost-{n}", str(13800000000 + n), f"Member {n}", "", "1990-01-01", "", "1", "0", "mall", str(100 + n),
             future(), "mall"] for n in range(first, first + count)]


def imported(content: bytes, *, chunk_size: int) -> tuple[object, list[dict]]:
    created = member_import_create(file_name="cost.csv", content=io.BytesIO(content), dry_run=False)
    with CaptureQueriesContext(connection) as queries:
        done = member_import_run(import_id=created.pk, chunk_size=chunk_size)
    return done, queries.captured_queries


def statements(queries) -> int:
    return len([query for query in queries if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))])


def test_a_chunk_of_50_rows_costs_the_statements_of_a_chunk_of_5(mall, ledger_sound):
    enrol_member(phone="13800000003")  # known: updated by both files, their wallet locked
    small, small_queries = imported(csv_bytes(rows(0, 5)), chunk_size=5)
    known_again = ["cost-again", "13800000003", "Member 3 again", "", "1990-01-01", "", "1", "0", "mall", "250",
                   future(), "mall"]
    large, large_queries = imported(csv_bytes(rows(100, 50) + [known_again]), chunk_size=51)
    assert (small.created, small.updated, small.openings_posted, small.error_count) == (4, 1, 5, 0)
    assert (large.created, large.updated, large.openings_posted, large.error_count) == (50, 1, 51, 0)
    assert statements(small_queries) == statements(large_queries)
    assert Wallet.objects.get(member__phone="13800000003").balance == 103 + 250
    ledger_sound()


def test_the_lookup_of_posted_keys_can_use_the_partial_idempotency_index(mall):
    """From an IN list of more than 100 keys PostgreSQL cannot prove the partial index's
    condition (key not blank) unless the query states it: it would scan the whole ledger."""
    _done, queries = imported(csv_bytes(rows(0, 150)), chunk_size=150)
    [lookup] = [query["sql"] for query in queries
                if query["sql"].startswith('SELECT "points_posting"."idempotency_key"')]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {lookup}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert INDEX in plan

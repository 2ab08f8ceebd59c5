"""The ledger partitioned by month (PostgreSQL declarative partitioning), a step a deployment
takes when its postings grow: `manage.py partition_ledger` converts the tables in place.

Design overview
---------------
* **Partitioned by the id, and the id carries its month.** Postings, entries and lot movements
  are partitioned by RANGE of `id`, and a new id is `yyyymm * 10^12 + nextval(sequence)` where
  yyyymm is the month, in the group's time zone, of the transaction that writes the row
  (`points_ledger_id`, the column's default). So each month's rows land in that month's
  partition `[yyyymm * 10^12, next yyyymm * 10^12)`, ids stay unique (one sequence per table)
  and grow from month to month, and a posting, its entries and lot movements, written in one
  transaction, sit in partitions of the same month.
* **Why the id.** PostgreSQL requires every unique constraint of a partitioned table to contain
  the partition key, and a foreign key to reference a unique constraint. Partitioned by the id,
  the primary keys stay `(id)` and every foreign key into postings (entries, lots, lot movements,
  holds, rule awards, orders, payments, risk cases, clearing lines...) keeps referring to
  `points_posting(id)`: no table gains a column, Django keeps its single-column primary keys and
  reads ids back with RETURNING as before. Partitioning by `created_at` would have made the keys
  `(id, created_at)` and every one of those foreign keys two columns wide.
* **What moves: the idempotency key's uniqueness.** `(scope, key)` without the id cannot be
  unique on a partitioned table (only within each partition), so it moves to the plain table
  `points_posting_key`, one row per posting with a key, written by a trigger on postings in the
  posting's own statement; its unique index keeps the constraint's name, so a race on a key fails
  as before and the ledger core reads the winner as before.
* **The triggers.** The append-only triggers and the entries' deferred balance check are declared
  on the partitioned tables; PostgreSQL clones them onto every partition, present and future.
  The balance check reads the entries of one month (their ids share the posting's prefix).
* **History before the conversion** stays where it is: each table becomes the legacy partition
  (ids below 10^12, which carry no month) of its partitioned self, its rows neither copied nor
  reindexed. Only rows written afterwards are partitioned by month.
* **Partitions ahead of time.** The conversion creates this month's partition and
  POINTS_PARTITION_MONTHS_AHEAD more; the daily beat task `points.tasks.extend_ledger_partitions`
  keeps that many ahead. A default partition takes the rows of a month without a partition, so
  a missing one never refuses a posting; verify_ledger reports a default partition with rows,
  and the next extension moves them into their month's partition.
* **Checked.** verify_ledger adds the invariants of `checks.PARTITION_INVARIANTS` when the
  ledger is partitioned.

Public functions: `ledger_partitioned`, `ledger_partition`, `ledger_partitions_extend`,
`partition_problems`. See docs/scaling.md.
"""

import time

from django.conf import settings
from django.db import connection

from points.partitioning import catalog
from points.partitioning.checks import PARTITION_INVARIANTS
from points.partitioning.checks import partition_problems as _partition_problems
from points.partitioning.convert import PartitioningError, convert, validate_foreign_keys
from points.partitioning.ddl import functions_sql
from points.partitioning.maintain import current_month, extend
from points.partitioning.months import KEY_TABLE, LEDGER_TABLES, months_from

__all__ = ["PARTITION_INVARIANTS", "PartitioningError", "ledger_partition", "ledger_partitioned",
           "ledger_partitions_extend", "partition_problems"]


def ledger_partitioned() -> bool:
    """Whether the ledger tables are partitioned (never on a database other than PostgreSQL)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        return catalog.is_partitioned(cursor, LEDGER_TABLES[0])


def ledger_partition(*, months_ahead: int, lock_timeout: str = "30s") -> dict:
    """Partition the ledger by month, or, when it is already, bring it up to date: the month
    function's time zone, foreign keys left NOT VALID, partitions up to `months_ahead` ahead.
    Idempotent. The conversion holds exclusive locks on the ledger tables and those referring to
    postings while it runs: stop the web and worker processes first (docs/scaling.md).
    Returns what it did, with its timings in seconds."""
    if connection.vendor != "postgresql":
        raise PartitioningError("partitioning needs PostgreSQL")
    with connection.cursor() as cursor:
        done = [catalog.is_partitioned(cursor, table) for table in LEDGER_TABLES]
    if any(done) and not all(done):
        raise PartitioningError("only some of the ledger tables are partitioned: "
                                + ", ".join(t for t, d in zip(LEDGER_TABLES, done, strict=True) if d))
    timings = {}
    started = time.monotonic()
    if not all(done):
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_char(now() AT TIME ZONE %s, 'YYYYMM')::integer", [settings.TIME_ZONE])
            months = months_from(cursor.fetchone()[0], months_ahead)
        convert(months=months, lock_timeout=lock_timeout)
        timings["convert"] = round(time.monotonic() - started, 2)
    else:
        with connection.cursor() as cursor:
            cursor.execute(functions_sql(settings.TIME_ZONE))
    step = time.monotonic()
    validated = validate_foreign_keys()
    timings["validate_foreign_keys"] = round(time.monotonic() - step, 2)
    step = time.monotonic()
    with connection.cursor() as cursor:
        for table in (*LEDGER_TABLES, KEY_TABLE):
            cursor.execute(f"ANALYZE {table}")
    timings["analyze"] = round(time.monotonic() - step, 2)
    created = extend(months_ahead=months_ahead, lock_timeout=lock_timeout)
    with connection.cursor() as cursor:
        partitions = {table: [p.name for p in catalog.partitions(cursor, table)] for table in LEDGER_TABLES}
        month = current_month(cursor)
    timings["total"] = round(time.monotonic() - started, 2)
    return {"converted": not all(done), "month": month, "validated": validated, "created": created,
            "partitions": partitions, "seconds": timings}


def ledger_partitions_extend(*, months_ahead: int, lock_timeout: str = "5s") -> list[str]:
    """Create the partitions of this month and the next `months_ahead` that are missing (a
    partitioned ledger only; nothing otherwise). Returns the partitions created."""
    if not ledger_partitioned():
        return []
    return extend(months_ahead=months_ahead, lock_timeout=lock_timeout)


def partition_problems(*, limit: int = 10) -> dict[str, list[tuple]]:
    """The partitioning invariants that fail, with up to `limit` offending rows each; none when
    the ledger is not partitioned."""
    if not ledger_partitioned():
        return {}
    with connection.cursor() as cursor:
        return _partition_problems(cursor, limit=limit)

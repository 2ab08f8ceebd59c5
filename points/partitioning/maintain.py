"""Keeping a partitioned ledger's partitions ahead of the calendar (the daily beat task and every
run of `partition_ledger`)."""

from django.db import connection, transaction
from psycopg import sql

from points.partitioning import catalog
from points.partitioning.convert import PartitioningError
from points.partitioning.ddl import bound_sql, create_partition
from points.partitioning.months import LEDGER_TABLES, default_name, month_ids, months_from, partition_name


def current_month(cursor) -> int:
    """This month by the database's clock in the group's time zone: the month new ids carry."""
    cursor.execute("SELECT points_ledger_month()")
    return cursor.fetchone()[0]


def extend(*, months_ahead: int, lock_timeout: str) -> list[str]:
    """Create the partitions of this month and the `months_ahead` next ones that do not exist
    yet, each month in a transaction of its own that waits at most `lock_timeout` for its locks
    (attaching a partition locks the default partition briefly). Returns the partitions created.

    Rows of such a month already in a default partition (no partition existed when they were
    written) are moved into the new partition first. That deletes rows from the default
    partition of postings, which other tables' foreign keys refer to, and PostgreSQL checks
    those references partition by partition, so the move runs with
    `session_replication_role = replica` (triggers and foreign-key checks off for that
    transaction, the rows being the same rows): a superuser's right. Without it, the move is
    refused, naming the month, and nothing is created for that month.
    """
    with connection.cursor() as cursor:
        months = months_from(current_month(cursor), months_ahead)
    created = []
    for month in months:
        lower, upper = month_ids(month)
        with transaction.atomic(durable=True), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
            for table in LEDGER_TABLES:
                if any(partition.overlaps(lower, upper) for partition in catalog.partitions(cursor, table)):
                    continue
                name = partition_name(table, month)
                stray = _default_rows(cursor, table, lower, upper)
                if stray:
                    _move_from_default(cursor, table, name, month, stray)
                else:
                    create_partition(cursor, table, name, lower, upper)
                created.append(name)
    return created


def _default_rows(cursor, table: str, lower: int, upper: int) -> int:
    cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE id >= %s AND id < %s").format(
        sql.Identifier(default_name(table))), [lower, upper])
    return cursor.fetchone()[0]


def _move_from_default(cursor, table: str, name: str, month: int, rows: int) -> None:
    if not catalog.is_superuser(cursor):
        raise PartitioningError(
            f"{default_name(table)} holds {rows} rows of {month}: run `manage.py partition_ledger` as a superuser "
            "to move them into their month's partition")
    lower, upper = month_ids(month)
    names = {"name": sql.Identifier(name), "table": sql.Identifier(table), "default": sql.Identifier(default_name(table))}
    cursor.execute("SET LOCAL session_replication_role = replica")
    cursor.execute(sql.SQL(
        "CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)").format(**names))
    catalog.copy_access(cursor, table, name)
    cursor.execute(sql.SQL("INSERT INTO {name} SELECT * FROM {default} WHERE id >= %s AND id < %s").format(**names),
                   [lower, upper])
    cursor.execute(sql.SQL("DELETE FROM {default} WHERE id >= %s AND id < %s").format(**names), [lower, upper])
    cursor.execute(sql.SQL("ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {bound}").format(
        **names, bound=bound_sql(lower, upper)))
    cursor.execute("SET LOCAL session_replication_role = origin")

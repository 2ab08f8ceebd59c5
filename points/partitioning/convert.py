"""The conversion, in place and in one transaction, of postings, entries and lot movements into
tables partitioned by month (`manage.py partition_ledger`).

Each table is renamed `<table>_legacy`, loses its identity (its sequence's next value is kept),
and becomes the legacy partition (ids below ID_SPAN) of a new partitioned table of the same
name and shape: its rows are not copied and its indexes are not rebuilt; the new table's
indexes and primary key adopt the legacy table's, and its foreign keys to other tables adopt
the legacy table's, already valid. Months from this one to `months_ahead` ahead get a partition
each, and a default partition catches what no partition takes. The triggers (append-only, the
entries' balance) are created again on the new tables, from which PostgreSQL clones them onto
every partition, present and future. The id becomes `points_ledger_id(sequence)`: the month of
the writing transaction followed by the sequence. The idempotency key's uniqueness moves to
`points_posting_key` (the one thing a partitioned table cannot hold: a unique index without its
partition key). Foreign keys into these tables are dropped and declared again on the new ones:
those of other tables as NOT VALID, validated after the commit (writes may go on meanwhile);
those between the three tables at once (PostgreSQL 15 cannot defer their validation).
"""

from django.conf import settings
from django.db import connection, transaction
from psycopg import sql

from points.ledger.idempotency import IDEMPOTENCY_CONSTRAINT
from points.partitioning import catalog
from points.partitioning.ddl import ID_FUNCTION, create_default_partition, create_partition, functions_sql, key_table_sql
from points.partitioning.months import (
    ID_SPAN, KEY_TABLE, LEDGER_TABLES, LEGACY_BOUND, default_name, legacy_name, month_ids, partition_name,
)

KEY_LOOKUP_INDEX = "posting_idempotency_key"


class PartitioningError(Exception):
    """The ledger cannot be partitioned (or kept partitioned) as asked; the message says why."""


def convert(*, months: list[int], lock_timeout: str) -> None:
    """Partition the three ledger tables, in one durable transaction; the caller has checked
    none of them is partitioned yet. Foreign keys from other tables are left NOT VALID."""
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', '0', true), set_config('lock_timeout', %s, true), "
                       "set_config('maintenance_work_mem', %s, true)",
                       [lock_timeout, settings.POINTS_PARTITION_MAINTENANCE_WORK_MEM])
        _refuse_unsupported(cursor)
        keys = catalog.foreign_keys(cursor, LEDGER_TABLES)
        into_ledger = [key for key in keys if key.references in LEDGER_TABLES]
        tables = sorted({*LEDGER_TABLES, *(key.table for key in into_ledger)})
        cursor.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(map(sql.Identifier, tables))))
        cursor.execute(functions_sql(settings.TIME_ZONE))
        for key in into_ledger:
            cursor.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(key.table),
                                                                              sql.Identifier(key.name)))
        for table in LEDGER_TABLES:
            _partition_table(cursor, table, months)
        cursor.execute(key_table_sql())
        catalog.copy_access(cursor, LEDGER_TABLES[0], KEY_TABLE)
        cursor.execute(sql.SQL("CREATE UNIQUE INDEX {} ON {} (idempotency_scope, idempotency_key)").format(
            sql.Identifier(IDEMPOTENCY_CONSTRAINT), sql.Identifier(KEY_TABLE)))
        for key in keys:
            if key not in into_ledger:  # adopts the legacy partition's constraint: nothing to validate
                _add_foreign_key(cursor, key, valid=True)
        for key in into_ledger:
            _add_foreign_key(cursor, key, valid=key.table in LEDGER_TABLES)


def _refuse_unsupported(cursor) -> None:
    if views := catalog.dependent_views(cursor, LEDGER_TABLES):
        raise PartitioningError(f"views depend on the ledger tables, drop them first: {', '.join(views)}")
    if found := catalog.publications(cursor, LEDGER_TABLES):
        raise PartitioningError(f"the ledger tables are published ({', '.join(found)}): remove them from the "
                                "publication first, then add the partitioned tables with publish_via_partition_root")
    cursor.execute("SELECT to_regclass(%s)", [KEY_TABLE])
    if cursor.fetchone()[0] is not None:
        raise PartitioningError(f"a table {KEY_TABLE} exists already")
    for table in LEDGER_TABLES:
        for index in catalog.indexes(cursor, table):
            if index.unique and index.constraint != "p" and index.name != IDEMPOTENCY_CONSTRAINT:
                raise PartitioningError(f"unique index {index.name} of {table} does not contain id: a partitioned "
                                        "table cannot hold it")
        sequence = catalog.identity_sequence(cursor, table)
        if sequence is None or sequence[1] >= ID_SPAN:
            raise PartitioningError(f"{table}.id has no identity sequence below {ID_SPAN}")


def _legacy_index_name(name: str) -> str:
    return f"{name[:56]}_legacy"


def _partition_table(cursor, table: str, months: list[int]) -> None:
    legacy = legacy_name(table)
    indexes = catalog.indexes(cursor, table)
    triggers = catalog.triggers(cursor, table)
    _sequence, next_id = catalog.identity_sequence(cursor, table)
    names = {"table": sql.Identifier(table), "legacy": sql.Identifier(legacy)}
    for trigger in triggers:
        cursor.execute(sql.SQL("DROP TRIGGER {} ON {table}").format(sql.Identifier(trigger.name), **names))
    cursor.execute(sql.SQL("ALTER TABLE {table} RENAME TO {legacy}").format(**names))
    for index in indexes:
        cursor.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
            sql.Identifier(index.name), sql.Identifier(_legacy_index_name(index.name))))
    cursor.execute(sql.SQL("ALTER TABLE {legacy} ALTER COLUMN id DROP IDENTITY").format(**names))
    cursor.execute(sql.SQL(
        "CREATE TABLE {table} (LIKE {legacy} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE "
        "INCLUDING COMMENTS) PARTITION BY RANGE (id)").format(**names))
    catalog.copy_access(cursor, legacy, table)
    cursor.execute(sql.SQL("ALTER TABLE {table} ATTACH PARTITION {legacy} FOR VALUES FROM (MINVALUE) TO ({bound})").format(
        **names, bound=sql.Literal(LEGACY_BOUND)))
    for month in months:
        create_partition(cursor, table, partition_name(table, month), *month_ids(month))
    create_default_partition(cursor, table, default_name(table))
    _id_sequence(cursor, table, next_id)
    for index in indexes:
        if index.constraint == "p":
            cursor.execute(sql.SQL("ALTER TABLE {table} ADD CONSTRAINT {} PRIMARY KEY (id)").format(
                sql.Identifier(index.name), **names))
        elif index.name == IDEMPOTENCY_CONSTRAINT:
            # Its uniqueness moves to the key table; postings keep a plain index for lookups by key.
            cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(_legacy_index_name(index.name))))
            cursor.execute(index.definition.replace(f"CREATE UNIQUE INDEX {index.name} ",
                                                    f"CREATE INDEX {KEY_LOOKUP_INDEX} ", 1))
        else:
            cursor.execute(index.definition)  # adopts the legacy partition's equal index
    for trigger in triggers:
        cursor.execute(trigger.definition)
        if trigger.comment is not None:  # django-pgtrigger's hash of the definition
            cursor.execute(sql.SQL("COMMENT ON TRIGGER {} ON {table} IS {}").format(
                sql.Identifier(trigger.name), sql.Literal(trigger.comment), **names))


def _id_sequence(cursor, table: str, next_id: int) -> None:
    """The table's sequence, owned by its id column, continuing where the identity stopped and
    bounded below ID_SPAN (beyond, an id would fall into another month's range); the id's
    default is `points_ledger_id` of it. Roles that could insert into the table may use it."""
    sequence = sql.Identifier(f"{table}_id_seq")
    names = {"seq": sequence, "table": sql.Identifier(table), "owner": sql.Identifier(catalog.owner(cursor, table))}
    cursor.execute(sql.SQL("CREATE SEQUENCE {seq} AS bigint MINVALUE 1 MAXVALUE {max} START WITH {start}").format(
        **names, max=sql.Literal(ID_SPAN - 1), start=sql.Literal(next_id)))
    cursor.execute(sql.SQL("ALTER SEQUENCE {seq} OWNER TO {owner}").format(**names))
    cursor.execute(sql.SQL("ALTER SEQUENCE {seq} OWNED BY {table}.id").format(**names))
    for privilege, grantee in catalog.grants(cursor, table):
        if privilege == "INSERT":
            cursor.execute(sql.SQL("GRANT USAGE ON SEQUENCE {seq} TO {}").format(
                sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee), **names))
    cursor.execute(sql.SQL("ALTER TABLE {table} ALTER COLUMN id SET DEFAULT {function}({seq_name}::regclass)").format(
        **names, function=sql.Identifier(ID_FUNCTION), seq_name=sql.Literal(f"{table}_id_seq")))


def _add_foreign_key(cursor, key: catalog.ForeignKey, *, valid: bool) -> None:
    cursor.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}{}").format(
        sql.Identifier(key.table), sql.Identifier(key.name), sql.SQL(key.definition),
        sql.SQL("" if valid else " NOT VALID")))


def validate_foreign_keys() -> list[str]:
    """Validate, each in a transaction of its own, the foreign keys from or to the ledger tables
    left NOT VALID (a conversion's, or one interrupted after its commit). VALIDATE CONSTRAINT
    does not stop writes. Returns the constraints validated."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 "
            "AND NOT convalidated AND (conrelid = ANY(%(t)s::regclass[]) OR confrelid = ANY(%(t)s::regclass[])) "
            "ORDER BY 1, 2", {"t": list(LEDGER_TABLES)})
        pending = cursor.fetchall()
    for table, name in pending:
        with transaction.atomic(durable=True), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', '0', true), set_config('maintenance_work_mem', %s, true)",
                           [settings.POINTS_PARTITION_MAINTENANCE_WORK_MEM])
            cursor.execute(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(sql.Identifier(table),
                                                                                   sql.Identifier(name)))
    return [f"{table}.{name}" for table, name in pending]

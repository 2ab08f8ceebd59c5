"""The invariants of a partitioned ledger, which verify_ledger adds to the ledger's own.

Each check returns its offending rows (none when it holds); most read only the catalog or each
partition's index ends, the key-table comparison reads every posting with a key.
"""

from datetime import timedelta

import pgtrigger
from django.conf import settings
from psycopg import sql

from points.models import Entry, LotMovement, Posting
from points.partitioning import catalog
from points.partitioning.ddl import ID_FUNCTION, KEY_APPEND_ONLY_TRIGGER, KEY_TRIGGER
from points.partitioning.maintain import current_month
from points.partitioning.months import (
    ID_SPAN, KEY_TABLE, LEDGER_TABLES, POSTING_TABLE, month_after, month_of_id, month_start,
)
from points.timeutils import group_timezone

# How far a posting's booking time may lie outside the month its id names: the id's month is read
# from the database's clock when the transaction starts, created_at from the web process's clock.
CLOCK_SLACK = timedelta(hours=1)
MODELS = {"points_posting": Posting, "points_entry": Entry, "points_lotmovement": LotMovement}


def _declared_triggers(table: str) -> set[str]:
    model = MODELS[table]
    names = {trigger.get_pgid(model) for trigger in model._meta.triggers if isinstance(trigger, pgtrigger.Trigger)}
    return names | ({KEY_TRIGGER} if table == POSTING_TABLE else set())


def partitions_missing(cursor) -> list[tuple]:
    month = current_month(cursor)
    found = []
    for table in LEDGER_TABLES:
        ranges = catalog.partitions(cursor, table)
        for wanted in (month, month_after(month)):
            lower, upper = wanted * ID_SPAN, month_after(wanted) * ID_SPAN
            if not any(p.lower == lower and p.upper == upper for p in ranges):
                found.append((table, wanted))
    return found


def default_partitions_with_rows(cursor) -> list[tuple]:
    found = []
    for table in LEDGER_TABLES:
        for partition in catalog.partitions(cursor, table):
            if partition.is_default:
                cursor.execute(sql.SQL("SELECT count(*), min(id), max(id) FROM {}").format(sql.Identifier(partition.name)))
                count, lowest, highest = cursor.fetchone()
                if count:
                    found.append((partition.name, count, lowest, highest))
    return found


def triggers_missing(cursor) -> list[tuple]:
    """The ledger's triggers absent from a table or one of its partitions (one attached by hand
    from a table made without them keeps them, cloned at ATTACH; one whose trigger was dropped
    does not)."""
    found = []
    for table in LEDGER_TABLES:
        wanted = _declared_triggers(table)
        for name in [table, *(p.name for p in catalog.partitions(cursor, table))]:
            if missing := sorted(wanted - catalog.trigger_names(cursor, name)):
                found.append((name, missing))
    cursor.execute("SELECT to_regclass(%s)", [KEY_TABLE])
    if cursor.fetchone()[0] is None:
        found.append((KEY_TABLE, ["table"]))
    elif KEY_APPEND_ONLY_TRIGGER not in catalog.trigger_names(cursor, KEY_TABLE):
        found.append((KEY_TABLE, [KEY_APPEND_ONLY_TRIGGER]))
    return found


def postings_of_another_month(cursor) -> list[tuple]:
    """Month partitions whose postings were booked (created_at) outside that month."""
    zone = group_timezone()
    found = []
    for partition in catalog.partitions(cursor, POSTING_TABLE):
        if partition.is_default or partition.lower is None or partition.lower < ID_SPAN:
            continue
        month = month_of_id(partition.lower)
        cursor.execute(sql.SQL("SELECT min(created_at), max(created_at) FROM {}").format(sql.Identifier(partition.name)))
        earliest, latest = cursor.fetchone()
        if earliest is None:
            continue
        start, end = month_start(month, zone), month_start(month_after(month), zone)
        if earliest < start - CLOCK_SLACK or latest >= end + CLOCK_SLACK:
            found.append((partition.name, earliest, latest))
    return found


def rows_apart_from_their_posting(cursor) -> list[tuple]:
    """Partitions of entries or lot movements naming a posting of another month: a posting and
    the rows written with it share their transaction, hence their month (the entries' balance
    trigger relies on it)."""
    found = []
    for table in LEDGER_TABLES[1:]:
        for partition in catalog.partitions(cursor, table):
            cursor.execute(sql.SQL("SELECT min(posting_id), max(posting_id) FROM {}").format(
                sql.Identifier(partition.name)))
            lowest, highest = cursor.fetchone()
            if lowest is None:
                continue
            if partition.is_default:
                cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE id / %s <> posting_id / %s").format(
                    sql.Identifier(partition.name)), [ID_SPAN, ID_SPAN])
                apart = cursor.fetchone()[0]
            else:
                lower = 0 if partition.lower is None else partition.lower
                apart = not (lower <= lowest and highest < partition.upper)
            if apart:
                found.append((partition.name, lowest, highest))
    return found


KEYS_DIFFER_SQL = sql.SQL("""
    SELECT p.id, k.posting_id FROM (SELECT id, idempotency_scope, idempotency_key FROM {postings}
                                    WHERE idempotency_key <> '') p
    FULL JOIN {keys} k ON k.posting_id = p.id
    WHERE p.id IS NULL OR k.posting_id IS NULL
       OR k.idempotency_scope <> p.idempotency_scope OR k.idempotency_key <> p.idempotency_key
    LIMIT %s
""")


def keys_differ(cursor, limit: int) -> list[tuple]:
    cursor.execute("SELECT to_regclass(%s)", [KEY_TABLE])
    if cursor.fetchone()[0] is None:
        return []  # reported by triggers_missing
    cursor.execute(KEYS_DIFFER_SQL.format(postings=sql.Identifier(POSTING_TABLE), keys=sql.Identifier(KEY_TABLE)),
                   [limit])
    return cursor.fetchall()


def foreign_keys_not_valid(cursor) -> list[tuple]:
    cursor.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 "
        "AND NOT convalidated AND (conrelid = ANY(%(t)s::regclass[]) OR confrelid = ANY(%(t)s::regclass[])) "
        "ORDER BY 1, 2", {"t": list(LEDGER_TABLES)})
    return cursor.fetchall()


def ids_not_month_encoded(cursor) -> list[tuple]:
    """Tables whose new ids would not carry their month: another id default, or a sequence that
    could run past ID_SPAN into the next month's range."""
    found = []
    for table in LEDGER_TABLES:
        default = catalog.column_default(cursor, table, "id") or ""
        cursor.execute("SELECT s.seqmax FROM pg_sequence s WHERE s.seqrelid = to_regclass(%s)", [f"{table}_id_seq"])
        row = cursor.fetchone()
        if not default.startswith(f"{ID_FUNCTION}(") or row is None or row[0] >= ID_SPAN:
            found.append((table, default, row[0] if row else None))
    return found


def zone_differs(cursor) -> list[tuple]:
    """The month function's time zone when it is not the group's (TIME_ZONE changed since the
    conversion; `partition_ledger` sets it again)."""
    cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'points_ledger_month'")
    row = cursor.fetchone()
    source = row[0] if row else ""
    return [] if f"'{settings.TIME_ZONE}'" in source else [(source.strip(), settings.TIME_ZONE)]


PARTITION_INVARIANTS = {
    "ledger partition missing for this month or the next": lambda cursor, limit: partitions_missing(cursor),
    "ledger default partition holds rows": lambda cursor, limit: default_partitions_with_rows(cursor),
    "ledger table or partition without the ledger's triggers": lambda cursor, limit: triggers_missing(cursor),
    "posting in the partition of another month": lambda cursor, limit: postings_of_another_month(cursor),
    "entry or lot movement in another month than its posting": lambda cursor, limit: rows_apart_from_their_posting(cursor),
    "posting idempotency keys differ from the key table": keys_differ,
    "ledger foreign key not validated": lambda cursor, limit: foreign_keys_not_valid(cursor),
    "ledger ids not month-encoded": lambda cursor, limit: ids_not_month_encoded(cursor),
    "ledger months read in another time zone than the group's": lambda cursor, limit: zone_differs(cursor),
}


def partition_problems(cursor, *, limit: int) -> dict[str, list[tuple]]:
    problems = {}
    for name, check in PARTITION_INVARIANTS.items():
        if rows := check(cursor, limit)[:limit]:
            problems[name] = rows
    return problems

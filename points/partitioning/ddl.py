"""The database functions and triggers of a partitioned ledger, and the statements that create
its partitions."""

from psycopg import sql

from points.partitioning.catalog import copy_access
from points.partitioning.months import ID_SPAN, KEY_TABLE, POSTING_TABLE

ID_FUNCTION = "points_ledger_id"
KEY_TRIGGER = "points_posting_key_insert"
KEY_APPEND_ONLY_TRIGGER = "points_posting_key_append_only"


def functions_sql(zone: str) -> sql.Composed:
    """`points_ledger_month()`: this month (yyyymm) in the group's time zone, by the database's
    clock at the start of the transaction, so that every row a transaction writes (a posting, its
    entries and lot movements) carries the same month; `points_ledger_id(seq)`: the next id of a
    partitioned table. The key-table trigger functions keep the idempotency key unique across
    every month (a unique index of a partitioned table must contain its partition key, here id)."""
    return sql.SQL("""
CREATE OR REPLACE FUNCTION points_ledger_month() RETURNS integer LANGUAGE sql STABLE AS
$$ SELECT to_char(now() AT TIME ZONE {zone}, 'YYYYMM')::integer $$;

CREATE OR REPLACE FUNCTION {id_function}(seq regclass) RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT points_ledger_month()::bigint * {span} + nextval(seq) $$;

CREATE OR REPLACE FUNCTION points_posting_key_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {key_table} (idempotency_scope, idempotency_key, posting_id)
    VALUES (NEW.idempotency_scope, NEW.idempotency_key, NEW.id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION points_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'Cannot update or delete rows from % table', TG_TABLE_NAME;
END $$;
""").format(zone=sql.Literal(zone), id_function=sql.Identifier(ID_FUNCTION), span=sql.Literal(ID_SPAN),
            key_table=sql.Identifier(KEY_TABLE))


def key_table_sql() -> sql.Composed:
    """The idempotency keys of every posting, unique per scope: filled from the postings, then by
    a trigger on each new posting with a key, in the same statement as the posting."""
    return sql.SQL("""
CREATE TABLE {key_table} (
    idempotency_scope varchar(64) NOT NULL,
    idempotency_key varchar(128) NOT NULL,
    posting_id bigint NOT NULL
);
INSERT INTO {key_table} (idempotency_scope, idempotency_key, posting_id)
    SELECT idempotency_scope, idempotency_key, id FROM {postings} WHERE idempotency_key <> '';
CREATE TRIGGER {key_trigger} AFTER INSERT ON {postings}
    FOR EACH ROW WHEN (NEW.idempotency_key <> '') EXECUTE FUNCTION points_posting_key_insert();
CREATE TRIGGER {append_only} BEFORE UPDATE OR DELETE ON {key_table}
    FOR EACH ROW EXECUTE FUNCTION points_refuse_change();
""").format(key_table=sql.Identifier(KEY_TABLE), postings=sql.Identifier(POSTING_TABLE),
            key_trigger=sql.Identifier(KEY_TRIGGER), append_only=sql.Identifier(KEY_APPEND_ONLY_TRIGGER))


def bound_sql(lower: int | None, upper: int | None) -> sql.Composed:
    return sql.SQL("FROM ({}) TO ({})").format(
        sql.SQL("MINVALUE") if lower is None else sql.Literal(lower),
        sql.SQL("MAXVALUE") if upper is None else sql.Literal(upper))


def create_partition(cursor, table: str, name: str, lower: int | None, upper: int | None) -> None:
    """A new partition of `table` for the ids [lower, upper): made as a table of the same shape,
    then attached, which locks the parent only in SHARE UPDATE EXCLUSIVE mode (writes go on)
    where CREATE TABLE ... PARTITION OF would lock it exclusively. Attaching gives the partition
    the parent's indexes, foreign keys and triggers; it gets the parent's owner and grants."""
    names = {"name": sql.Identifier(name), "table": sql.Identifier(table)}
    cursor.execute(sql.SQL(
        "CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)").format(**names))
    copy_access(cursor, table, name)
    cursor.execute(sql.SQL("ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {bound}").format(
        **names, bound=bound_sql(lower, upper)))


def create_default_partition(cursor, table: str, name: str) -> None:
    cursor.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(sql.Identifier(name), sql.Identifier(table)))
    copy_access(cursor, table, name)

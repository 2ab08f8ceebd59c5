"""The ledger's hand-written bulk SQL: the ORM makes these writes slow (`bulk_update` renders a
CASE per field and row, which for a thousand rows costs far more Python than the update itself,
and every table is a round trip of its own)."""

import json
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from uuid import UUID

from django.db import connections
from django.db.models import JSONField
from django.utils import timezone


def bulk_update_rows(model, rows: list, fields: list[str], *, using: str = "default") -> None:
    """Write `fields` of every instance in `rows` (saved, with a pk) in one statement.

    On PostgreSQL: UPDATE ... FROM unnest(one array per field) joined on the primary key; the
    values go through each field's own conversion. Elsewhere (the embedded SQLite demo):
    QuerySet.bulk_update.
    """
    if not rows:
        return
    connection = connections[using]
    if connection.vendor != "postgresql":
        model.objects.using(using).bulk_update(rows, fields)
        return
    sql, params = _update_from_arrays(model, rows, fields, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _update_from_arrays(model, rows: list, fields: list[str], connection) -> tuple[str, list]:
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    params = [
        [column.get_db_prep_save(column.pre_save(row, False), connection) for row in rows] for column in columns
    ]
    quote = connection.ops.quote_name
    unnest = ", ".join(f"%s::{column.db_type(connection)}[]" for column in columns)
    names = ", ".join(quote(column.column) for column in columns)
    assignments = ", ".join(f"{quote(column.column)} = v.{quote(column.column)}" for column in columns[1:])
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {assignments} FROM unnest({unnest}) AS v({names}) "
        f"WHERE t.{quote(meta.pk.column)} = v.{quote(meta.pk.column)}"
    )
    return sql, params


def _insertable(model) -> list:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


def insert_with_children(
    parent, children: list[tuple[object, str, list]], *, updates: list[tuple[object, list, list[str]]] = (),
    using: str = "default",
) -> None:
    """Insert `parent` (unsaved) and, in the same statement, its `children`: for each
    (model, foreign key name, unsaved rows), rows whose key to the parent is filled in by the
    database; and write `updates`: for each (model, saved rows, fields), those fields of those
    rows. One round trip instead of one per table; `parent.pk` is set afterwards (the
    children's pks are not read back).

    Values go through each field's own pre_save (auto_now_add) and conversion. PostgreSQL only
    (data-modifying CTEs); callers keep the ORM path for other databases.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    parent_fields = _insertable(type(parent))
    parent_meta = type(parent)._meta
    params = [field.get_db_prep_save(field.pre_save(parent, True), connection) for field in parent_fields]
    ctes = [
        f"parent AS (INSERT INTO {quote(parent_meta.db_table)} ({', '.join(quote(f.column) for f in parent_fields)}) "
        f"VALUES ({', '.join(['%s'] * len(parent_fields))}) RETURNING {quote(parent_meta.pk.column)} AS id)"
    ]
    for number, (model, key, rows) in enumerate(children):
        if not rows:
            continue
        key_column = model._meta.get_field(key).column
        fields = [field for field in _insertable(model) if field.column != key_column]
        params += [[field.get_db_prep_save(field.pre_save(row, True), connection) for row in rows] for field in fields]
        columns = ", ".join(quote(field.column) for field in fields)
        arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
        ctes.append(
            f"child{number} AS (INSERT INTO {quote(model._meta.db_table)} ({quote(key_column)}, {columns}) "
            f"SELECT parent.id, v.* FROM parent, unnest({arrays}) AS v)"
        )
    for number, (model, rows, fields) in enumerate(updates):
        if rows:
            sql, update_params = _update_from_arrays(model, rows, fields, connection)
            ctes.append(f"updated{number} AS ({sql})")
            params += update_params
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} SELECT id FROM parent", params)
        parent.pk = cursor.fetchone()[0]
    parent._state.adding, parent._state.db = False, using



def insert_many_with_children(
    parents: list, children: list[tuple[object, str, list]], *, updates: list[tuple[object, list, list[str]]] = (),
    using: str = "default",
) -> None:
    """insert_with_children for many parents of one model at once: one statement, whatever the
    number of rows. Each child names its parent through its foreign key `key` (the unsaved parent
    instance). The parents' ids are drawn through their column's default inside the statement,
    so each child finds its parent's by position; every parent's pk and every child's key are set
    afterwards (the children's own pks are not read back). PostgreSQL only, as insert_with_children.

    Each table's rows travel as one JSON parameter (`json_rows`), not as an array per column:
    adapting thousands of list elements one by one costs more Python than everything else here.
    """
    if not parents:
        return
    connection = connections[using]
    quote = connection.ops.quote_name
    parent_meta = parents[0]._meta
    position = {id(parent): number for number, parent in enumerate(parents, start=1)}
    params = {"count": len(parents), "table": parent_meta.db_table, "pk": parent_meta.pk.column}
    ctes = [
        # Drawn through the column's own default (points_next_ids, migration 0021): the identity
        # sequence, or the month-encoded ids of a partitioned ledger. Volatile: PostgreSQL
        # evaluates this CTE once, however many read it.
        "ids AS (SELECT n, id FROM points_next_ids(%(table)s::regclass, %(pk)s, %(count)s))",
        _insert_json_rows("parent", quote(parent_meta.db_table), quote(parent_meta.pk.column),
                          _insertable(type(parents[0])), parents, None, params, connection),
    ]
    for number, (model, key, rows) in enumerate(children):
        if rows:
            key_field = model._meta.get_field(key)
            fields = [field for field in _insertable(model) if field.column != key_field.column]
            ctes.append(_insert_json_rows(f"child{number}", quote(model._meta.db_table), quote(key_field.column), fields,
                                          rows, [position[id(getattr(row, key))] for row in rows], params, connection))
    for number, (model, rows, names) in enumerate(updates):
        if rows:
            ctes.append(_update_json_rows(f"updated{number}", model, rows, names, params, connection))
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} SELECT id FROM ids ORDER BY n", params)
        ids = [row[0] for row in cursor.fetchall()]
    for parent, pk in zip(parents, ids, strict=True):
        parent.pk = pk
        parent._state.adding, parent._state.db = False, using
    for model, key, rows in children:
        attname = model._meta.get_field(key).attname
        for row in rows:
            setattr(row, attname, getattr(row, key).pk)


def insert_many(rows: list, *, using: str = "default") -> None:
    """Insert `rows` (unsaved, one model) in one statement and set their pks: the rows of
    insert_many_with_children without children. PostgreSQL only."""
    insert_many_with_children(rows, [], using=using)


def _json_default(value):
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            raise ValueError(f"naive datetime {value!r} for the ledger")
        return value.isoformat()
    if isinstance(value, date | Decimal | UUID):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} as a JSON row")


def _value_of(field, *, add: bool):
    """How to read the field's value off an instance, as the JSON row carries it."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda row: field.pre_save(row, add)
    if isinstance(field, JSONField):
        return lambda row: None if getattr(row, field.attname) is None else json.dumps(
            getattr(row, field.attname), cls=field.encoder)
    return attrgetter(field.attname)


def json_rows(fields: list, rows: list, *, add: bool, first: list | None = None) -> str:
    """The fields of `rows` as one JSON array of arrays (`first`, if given, leading each row)."""
    readers = [_value_of(field, add=add) for field in fields]
    if first is None:
        matrix = [[read(row) for read in readers] for row in rows]
    else:
        matrix = [[head, *(read(row) for read in readers)] for head, row in zip(first, rows, strict=True)]
    return json.dumps(matrix, default=_json_default, separators=(",", ":"))


def _casts(fields: list, connection, *, start: int) -> list[str]:
    return [f"(r->>{index})::{field.db_type(connection)}" for index, field in enumerate(fields, start=start)]


def _insert_json_rows(name: str, table: str, first_column: str, fields: list, rows: list, parents: list | None,
                      params: dict, connection) -> str:
    """The CTE `name` inserting `rows`; the first column is each row's id drawn in `ids` (a
    parent: `parents` is None) or its parent's id (a child: `parents` gives each row's parent
    position)."""
    quote = connection.ops.quote_name
    params[name] = json_rows(fields, rows, add=True, first=parents)
    source = f"jsonb_array_elements(%({name})s::jsonb) WITH ORDINALITY AS e(r, n)"
    join = "ids.n = e.n" if parents is None else "ids.n = (r->>0)::bigint"
    casts = _casts(fields, connection, start=0 if parents is None else 1)
    return (
        f"{name} AS (INSERT INTO {table} ({first_column}, {', '.join(quote(field.column) for field in fields)}) "
        f"SELECT ids.id, {', '.join(casts)} FROM {source} JOIN ids ON {join} ORDER BY e.n)"
    )


def _update_json_rows(name: str, model, rows: list, names: list[str], params: dict, connection) -> str:
    """The CTE `name` writing the fields `names` of saved `rows`, matched on the primary key."""
    quote = connection.ops.quote_name
    meta = model._meta
    fields = [meta.get_field(field_name) for field_name in names]
    params[name] = json_rows([meta.pk, *fields], rows, add=False)
    assignments = ", ".join(f"{quote(field.column)} = {cast}"
                            for field, cast in zip(fields, _casts(fields, connection, start=1), strict=True))
    return (
        f"{name} AS (UPDATE {quote(meta.db_table)} AS t SET {assignments} FROM jsonb_array_elements(%({name})s::jsonb) "
        f"AS e(r) WHERE t.{quote(meta.pk.column)} = (r->>0)::{meta.pk.db_type(connection)})"
    )

"""The ledger's hand-written bulk SQL: the ORM makes these writes slow (`bulk_update` renders a
CASE per field and row, which for a thousand rows costs far more Python than the update itself,
and every table is a round trip of its own)."""

from django.db import connections


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

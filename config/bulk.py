"""Bulk writes the ORM makes slow: `bulk_update` renders a CASE per field and row, which for a
thousand rows costs far more Python than the update itself."""

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
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    arrays = [[column.get_db_prep_save(getattr(row, column.attname), connection) for row in rows] for column in columns]
    quote = connection.ops.quote_name
    unnest = ", ".join(f"%s::{column.db_type(connection)}[]" for column in columns)
    names = ", ".join(quote(column.column) for column in columns)
    assignments = ", ".join(f"{quote(column.column)} = v.{quote(column.column)}" for column in columns[1:])
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {assignments} FROM unnest({unnest}) AS v({names}) "
        f"WHERE t.{quote(meta.pk.column)} = v.{quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)

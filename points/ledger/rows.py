"""Model instances from rows of hand-written SQL: for the few reads on the hottest paths where
building the query through the ORM costs more than running it. Only for models whose fields
need no conversion from what the database driver returns (no JSON, no custom fields)."""

from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection


@cache
def columns(model, alias: str) -> str:
    """The model's concrete columns, qualified by `alias`, in field order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


@cache
def _attnames(model) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def instance(model, row, start: int = 0):
    """The instance of `model` whose columns (as `columns` lists them) begin at `row[start]`."""
    names = _attnames(model)
    return model.from_db(DEFAULT_DB_ALIAS, names, row[start:start + len(names)])


def width(model) -> int:
    return len(_attnames(model))

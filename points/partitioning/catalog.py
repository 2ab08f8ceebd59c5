"""What PostgreSQL's catalog says about the ledger tables: partitions and their bounds, and the
indexes, triggers, foreign keys, grants and sequences a conversion must carry over. Each function
takes an open cursor; names are of the current schema."""

import re
from dataclasses import dataclass

from psycopg import sql

_BOUND = re.compile(r"FOR VALUES FROM \((MINVALUE|'?(-?\d+)'?)\) TO \((MAXVALUE|'?(-?\d+)'?)\)")


@dataclass(frozen=True)
class Partition:
    name: str
    lower: int | None  # None: MINVALUE (or the default partition)
    upper: int | None  # None: MAXVALUE (or the default partition)
    is_default: bool = False

    def overlaps(self, lower: int, upper: int) -> bool:
        if self.is_default:
            return False
        return (self.lower is None or self.lower < upper) and (self.upper is None or lower < self.upper)


@dataclass(frozen=True)
class ForeignKey:
    table: str
    name: str
    definition: str
    references: str


@dataclass(frozen=True)
class Index:
    name: str
    definition: str
    unique: bool
    constraint: str  # 'p' for the primary key's index, '' for a plain index


@dataclass(frozen=True)
class Trigger:
    name: str
    definition: str
    comment: str | None


def is_partitioned(cursor, table: str) -> bool:
    cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [table])
    row = cursor.fetchone()
    return bool(row and row[0])


def partitions(cursor, table: str) -> list[Partition]:
    """The partitions of `table`, by lower bound (the default partition last)."""
    cursor.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)", [table],
    )
    found = []
    for name, bound in cursor.fetchall():
        if bound == "DEFAULT":
            found.append(Partition(name, None, None, is_default=True))
            continue
        match = _BOUND.fullmatch(bound)
        if match is None:
            raise ValueError(f"{name}: a partition bound the ledger does not use: {bound}")
        found.append(Partition(name, None if match.group(2) is None else int(match.group(2)),
                               None if match.group(4) is None else int(match.group(4))))
    return sorted(found, key=lambda p: (p.is_default, -1 if p.lower is None else p.lower))


def foreign_keys(cursor, tables: tuple[str, ...]) -> list[ForeignKey]:
    """The foreign keys from or to any of `tables` (those declared, not their per-partition copies)."""
    cursor.execute(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.confrelid::regclass::text "
        "FROM pg_constraint c WHERE c.contype = 'f' AND c.conparentid = 0 "
        "AND (c.conrelid = ANY(%(tables)s::regclass[]) OR c.confrelid = ANY(%(tables)s::regclass[])) "
        "ORDER BY 1, 2", {"tables": list(tables)},
    )
    return [ForeignKey(*row) for row in cursor.fetchall()]


def indexes(cursor, table: str) -> list[Index]:
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisunique, COALESCE(c.contype, '') "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x') "
        "WHERE x.indrelid = to_regclass(%s) ORDER BY 1", [table],
    )
    return [Index(*row) for row in cursor.fetchall()]


def triggers(cursor, table: str) -> list[Trigger]:
    """The triggers declared on `table` (not the internal ones of foreign keys, not clones)."""
    cursor.execute(
        "SELECT tgname, pg_get_triggerdef(oid), obj_description(oid, 'pg_trigger') FROM pg_trigger "
        "WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal AND tgparentid = 0 ORDER BY 1", [table],
    )
    return [Trigger(*row) for row in cursor.fetchall()]


def trigger_names(cursor, table: str) -> set[str]:
    """Every trigger on `table` (a partition's clones included), the internal ones left out."""
    cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal", [table])
    return {name for (name,) in cursor.fetchall()}


def owner(cursor, table: str) -> str:
    cursor.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)", [table])
    return cursor.fetchone()[0]


def grants(cursor, table: str) -> list[tuple[str, str | None]]:
    """The privileges on `table` held by others than its owner: (privilege, grantee or None for PUBLIC)."""
    cursor.execute(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END "
        "FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner", [table],
    )
    return cursor.fetchall()


def copy_access(cursor, source: str, target: str) -> None:
    """Give `target` the owner of `source` and the privileges others hold on it."""
    cursor.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(target), sql.Identifier(owner(cursor, source))))
    for privilege, grantee in grants(cursor, source):
        cursor.execute(sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(privilege), sql.Identifier(target), sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)))


def identity_sequence(cursor, table: str) -> tuple[str, int] | None:
    """The identity sequence of `table`.id and the next value it gives; None if id has none."""
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    name = cursor.fetchone()[0]
    if name is None:
        return None
    cursor.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(name)))
    last_value, is_called = cursor.fetchone()
    return name, last_value + 1 if is_called else last_value


def column_default(cursor, table: str, column: str) -> str | None:
    cursor.execute(
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
        "JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s", [table, column],
    )
    row = cursor.fetchone()
    return row[0] if row else None


def dependent_views(cursor, tables: tuple[str, ...]) -> list[str]:
    cursor.execute(
        "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
        "JOIN pg_class v ON v.oid = r.ev_class WHERE d.refobjid = ANY(%s::regclass[]) AND v.oid <> d.refobjid",
        [list(tables)],
    )
    return [name for (name,) in cursor.fetchall()]


def publications(cursor, tables: tuple[str, ...]) -> list[str]:
    cursor.execute(
        "SELECT DISTINCT p.pubname FROM pg_publication p LEFT JOIN pg_publication_rel r ON r.prpubid = p.oid "
        "WHERE p.puballtables OR r.prrelid = ANY(%s::regclass[])", [list(tables)],
    )
    return [name for (name,) in cursor.fetchall()]


def is_superuser(cursor) -> bool:
    cursor.execute("SELECT current_setting('is_superuser') = 'on'")
    return cursor.fetchone()[0]

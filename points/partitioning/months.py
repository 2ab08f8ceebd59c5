"""Months, ids and names of the ledger's partitions (pure functions, no database).

An id of a partitioned ledger table is `yyyymm * ID_SPAN + n`: the month (in the group's time
zone) of the transaction that wrote the row, then the table's sequence. A month's partition holds
the ids [yyyymm * ID_SPAN, next month's yyyymm * ID_SPAN); the legacy partition holds the rows
written before the conversion, whose ids are the plain sequence (below ID_SPAN, month prefix 0).
"""

from datetime import datetime
from zoneinfo import ZoneInfo

ID_SPAN = 10**12
LEGACY_BOUND = ID_SPAN
# Postings first: entries and lot movements refer to them.
LEDGER_TABLES = ("points_posting", "points_entry", "points_lotmovement")
POSTING_TABLE = "points_posting"
KEY_TABLE = "points_posting_key"


def month_of(moment: datetime, zone: ZoneInfo) -> int:
    """The month (yyyymm) of `moment` in `zone`."""
    local = moment.astimezone(zone)
    return local.year * 100 + local.month


def month_after(month: int, count: int = 1) -> int:
    """The month `count` months after `month` (yyyymm): month_after(202612) == 202701."""
    year, index = divmod(month // 100 * 12 + month % 100 - 1 + count, 12)
    return year * 100 + index + 1


def months_from(month: int, count: int) -> list[int]:
    """`month` and the `count` months after it."""
    return [month_after(month, step) for step in range(count + 1)]


def month_ids(month: int) -> tuple[int, int]:
    """The ids of `month`'s partition: [lower, upper)."""
    return month * ID_SPAN, month_after(month) * ID_SPAN


def month_of_id(row_id: int) -> int:
    """The month prefix of an id: 0 for a row written before the conversion."""
    return row_id // ID_SPAN


def month_start(month: int, zone: ZoneInfo) -> datetime:
    return datetime(month // 100, month % 100, 1, tzinfo=zone)


def partition_name(table: str, month: int) -> str:
    return f"{table}_p{month}"


def legacy_name(table: str) -> str:
    return f"{table}_legacy"


def default_name(table: str) -> str:
    return f"{table}_default"

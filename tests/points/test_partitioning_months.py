"""The arithmetic of a partitioned ledger's months and ids, and what the partitioning code does
on the suite's ledger, which is not partitioned (test_partitioned_ledger.py converts one)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from points.partitioning import ledger_partitioned, ledger_partitions_extend, partition_problems
from points.partitioning.catalog import Partition
from points.partitioning.months import ID_SPAN, month_after, month_ids, month_of, month_of_id, months_from
from points.selectors import INVARIANTS, ledger_invariant_names
from points.tasks import extend_ledger_partitions

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_months_roll_over_the_year_both_ways():
    assert month_after(202612) == 202701
    assert month_after(202601, -1) == 202512
    assert month_after(202611, 14) == 202801
    assert months_from(202611, 3) == [202611, 202612, 202701, 202702]


def test_a_months_ids_are_its_prefix_times_the_span_up_to_the_next_months():
    lower, upper = month_ids(202612)
    assert (lower, upper) == (202612 * ID_SPAN, 202701 * ID_SPAN)
    assert month_of_id(lower) == month_of_id(lower + ID_SPAN - 1) == 202612, "the sequence stays below ID_SPAN"
    assert month_of_id(5_000_236) == 0, "a row written before the conversion carries no month"


def test_the_month_is_the_group_time_zones():
    # 2026-11-30 16:30 UTC is already 1 December in Shanghai.
    assert month_of(datetime(2026, 11, 30, 16, 30, tzinfo=UTC), SHANGHAI) == 202612
    assert month_of(datetime(2026, 11, 30, 15, 59, tzinfo=UTC), SHANGHAI) == 202611


def test_a_partition_overlaps_the_ranges_it_shares_ids_with():
    legacy = Partition("points_posting_legacy", None, ID_SPAN)
    december = Partition("points_posting_p202612", *month_ids(202612))
    assert legacy.overlaps(0, 10) and not legacy.overlaps(*month_ids(202612))
    assert december.overlaps(*month_ids(202612)) and not december.overlaps(*month_ids(202701))
    assert not Partition("points_posting_default", None, None, is_default=True).overlaps(*month_ids(202612))


@pytest.mark.django_db
def test_on_an_unpartitioned_ledger_nothing_partitions_and_verify_checks_the_ledgers_invariants_alone():
    assert ledger_partitioned() is False
    assert ledger_partitions_extend(months_ahead=3) == []
    assert extend_ledger_partitions.apply().get() == 0
    assert partition_problems() == {}
    assert ledger_invariant_names() == list(INVARIANTS)


@pytest.mark.django_db
def test_partition_ledger_wants_the_next_month_at_least():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("partition_ledger", months_ahead=0)

"""A ledger partitioned by month (points.partitioning, `manage.py partition_ledger`), for real, on
a PostgreSQL cluster of this module's own (the suite's database stays unpartitioned): a ledger
written through the services is converted in place; afterwards every service writes into this
month's partitions, the database still refuses what the ledger forbids in every partition,
verify_ledger holds with the partitioning invariants, a rerun of the command changes nothing,
and a month that came without its partition is caught by the default partition and repaired.

Each step runs in a Django process pointed at that cluster (tests/points/partitioned_ledger_ops.py)
and commits for real, so the deferred checks fire.
"""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from points.partitioning.months import ID_SPAN, LEDGER_TABLES
from tests.operations.pgcluster import Cluster, server_bindir

def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    return done


def step(env: dict, name: str) -> dict:
    done = manage(env, "shell", "-c", f"from tests.points.partitioned_ledger_ops import run; run({name!r})")
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def partitioned():
    """A migrated database with a ledger written through the services, then partitioned."""
    bindir = server_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (scripts/ensure-postgres.sh installs them)")
    cluster = Cluster.create(bindir, prefix="points-partitioned-")
    try:
        cluster.start()
        env = {**os.environ, "DATABASE_URL": cluster.createdb("points"), "DJANGO_SETTINGS_MODULE": "config.settings",
               "LOG_LEVEL": "WARNING"}
        manage(env, "migrate", "--no-input", "-v0")
        seeded = step(env, "seed")
        converted = json.loads(manage(env, "partition_ledger").stdout.strip().splitlines()[-1])
        yield {"env": env, "cluster": cluster, "seeded": seeded, "converted": converted}
    finally:
        cluster.remove()


def test_conversion_keeps_the_rows_written_before_in_the_legacy_partitions(partitioned):
    seeded, converted, cluster = partitioned["seeded"], partitioned["converted"], partitioned["cluster"]
    assert seeded["problems"] == {}
    assert converted["converted"] is True
    month = converted["month"]
    for table in LEDGER_TABLES:
        assert cluster.psql("points", f"SELECT relkind FROM pg_class WHERE relname = '{table}'") == "p"
        assert converted["partitions"][table][0] == f"{table}_legacy"
        assert converted["partitions"][table][-1] == f"{table}_default"
        assert f"{table}_p{month}" in converted["partitions"][table]
        legacy = cluster.psql("points", f"SELECT count(*), max(id) FROM {table}_legacy")
        assert legacy == f"{seeded['counts'][table]}|{seeded['max_ids'][table]}"
    # Foreign keys of other tables into postings came back NOT VALID and were validated after the commit.
    assert "points_lot.points_lot_posting_id_ff0c0078_fk_points_posting_id" in converted["validated"]
    assert cluster.psql("points", "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated "
                                  "AND conparentid = 0") == "0"
    keys = cluster.psql("points", "SELECT count(*) FROM points_posting_key")
    assert keys == cluster.psql("points", "SELECT count(*) FROM points_posting WHERE idempotency_key <> ''") != "0"


def test_every_service_writes_into_this_months_partitions(partitioned):
    seen = step(partitioned["env"], "exercise")
    month = seen["month"]
    assert seen["problems"] == {}
    assert seen["kinds"] == ["cancel", "earn", "expire", "refund", "spend", "transfer"]
    assert seen["partitions"] == {
        "points_posting": {f"points_posting_p{month}": 12},
        "points_entry": {f"points_entry_p{month}": 24},
        "points_lotmovement": {f"points_lotmovement_p{month}": 6},
    }
    assert seen["id_months"] == [month]
    assert all(posting // ID_SPAN == month for posting in seen["postings"])
    assert seen["entries_apart"] == 0, "an entry's id carries its posting's month"
    assert seen["replayed"] == [True, True]
    assert seen["conflict"] is True, "the same key with another request is refused"
    assert seen["batch"] == ["created", "created", "created"]
    assert seen["expired"] == 1
    # 1000 - 300 + 100 - 50 - 60 - 25 + 88 (bulk earn at 1 point per CNY)
    assert seen["balance"] == 753


def test_the_database_refuses_what_the_ledger_forbids_in_every_partition(partitioned):
    seen = step(partitioned["env"], "guards")
    month = partitioned["converted"]["month"]
    for table in LEDGER_TABLES:
        for partition in (f"{table}_legacy", f"{table}_p{month}"):
            assert seen["refusals"][partition] == [f"pgtrigger: Cannot update or delete rows from {partition} table"] * 4
    assert seen["refusals"]["points_posting_key"] == ["Cannot update or delete rows from points_posting_key table"] * 2
    assert seen["unbalanced"].endswith("is unbalanced: its entries do not sum to zero")
    assert seen["count"] == 0
    assert seen["duplicate"] == 'duplicate key value violates unique constraint "posting_idempotency_key_unique_per_scope"'
    assert seen["problems"] == {}


def test_a_race_on_a_key_is_decided_by_the_key_tables_unique_index(partitioned):
    seen = step(partitioned["env"], "race")
    assert seen["outcomes"] == {
        "holder commits": {"outcome": "conflict", "waited": True, "postings": 1, "keys": 1},
        "holder rolls back": {"outcome": "posted", "waited": True, "postings": 1, "keys": 1},
    }
    assert seen["problems"] == {}


def test_partition_ledger_again_changes_nothing(partitioned):
    env, cluster = partitioned["env"], partitioned["cluster"]
    schema = ("SELECT string_agg(c.relname || ':' || pg_get_expr(c.relpartbound, c.oid), ',' ORDER BY c.relname) "
              "FROM pg_class c WHERE c.relispartition")
    before = cluster.psql("points", schema)
    again = json.loads(manage(env, "partition_ledger").stdout.strip().splitlines()[-1])
    assert (again["converted"], again["created"], again["validated"]) == (False, [], [])
    assert again["partitions"] == partitioned["converted"]["partitions"]
    assert cluster.psql("points", schema) == before
    assert "ledger OK: 35 invariants hold" in manage(env, "verify_ledger").stdout
    generated = subprocess.run([sys.executable, "manage.py", "bench_generate", "--members", "10"], cwd=settings.BASE_DIR,
                               env=env, capture_output=True, text=True, timeout=300)
    assert generated.returncode != 0 and "the ledger is partitioned by month" in generated.stderr


def test_a_month_without_its_partition_lands_in_the_default_one_until_the_task_moves_it(partitioned):
    seen = step(partitioned["env"], "default_partition")
    next_month = seen["next_month"]
    assert seen["in_default"] == {"points_posting_default": 1}, "a missing partition never refuses a posting"
    assert "ledger default partition holds rows" in seen["before"]
    assert "ledger partition missing for this month or the next" in seen["before"]
    assert seen["created"] == 6, "next month's three partitions back, and the month after the last one"
    assert seen["again"] == []
    assert seen["moved"] == {f"points_posting_p{next_month}": 1}
    assert seen["entries"] == {f"points_entry_p{next_month}": 2}
    # The month function was moved a month on for the step: only its time zone check notices.
    assert list(seen["after"]) == ["ledger months read in another time zone than the group's"]
    assert seen["problems"] == {}

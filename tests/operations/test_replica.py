"""Reads routed to a replica (config.routers): only where the code asks for it, never inside a
transaction, never a write; and for real on a streaming replica of a PostgreSQL of the test's
own: with the replica's replay paused, a statement written on the primary is not yet in the
member's list (read from the replica) while the sign-in just made is (read from the primary)."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from config.routers import ReplicaRouter, read_alias, reads_from_replica, replica_reads
from points.models import Posting
from tests.operations.pgcluster import Cluster, server_bindir


@pytest.fixture
def with_replica(monkeypatch):
    """As if DATABASE_REPLICA_URL were set (the alias itself is never connected to here)."""
    import config.routers

    monkeypatch.setattr(config.routers, "replica_configured", lambda: True)


def test_reads_go_to_the_replica_only_inside_replica_reads(with_replica):
    router = ReplicaRouter()
    assert router.db_for_read(Posting) == "default"
    with replica_reads():
        assert router.db_for_read(Posting) == "replica"
        assert read_alias() == "replica"
        assert router.db_for_write(Posting) == "default"
    assert router.db_for_read(Posting) == "default"


def test_the_decorator_routes_the_call_and_only_it(with_replica):
    @reads_from_replica
    def view():
        return read_alias()

    assert (view(), read_alias()) == ("replica", "default")


def test_without_a_replica_configured_everything_reads_the_primary():
    assert "replica" not in settings.DATABASES
    with replica_reads():
        assert read_alias() == "default"


@pytest.mark.django_db
def test_a_read_inside_a_transaction_stays_on_the_primary(with_replica):
    # The test's own transaction is open: a read there must see its uncommitted rows.
    with replica_reads():
        assert read_alias() == "default"


def test_migrations_run_on_the_primary_only():
    router = ReplicaRouter()
    assert router.allow_migrate("default", "points") is True
    assert router.allow_migrate("replica", "points") is False


# --- for real: a primary and its streaming replica --------------------------------------------

SCRIPT = """
import json, time
from django.db import connections
from django.test import Client
from members.services import member_token_issue
from points.statements.models import Statement
from points.statements.periods import period_parse
from tests.factories import enrol_member

def replica_scalar(sql, *params):
    with connections["replica"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]

def wait_until(condition, what):
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out: " + what)
        time.sleep(0.2)

member = enrol_member()
wait_until(lambda: replica_scalar("SELECT count(*) FROM members_member WHERE id = %s", member.pk) == 1,
           "the member replicated")
standby = replica_scalar("SELECT pg_is_in_recovery()")
replica_scalar("SELECT pg_wal_replay_pause()::text")
wait_until(lambda: replica_scalar("SELECT pg_get_wal_replay_pause_state()") == "paused", "replay paused")
token = member_token_issue(member=member)  # on the primary only, while replay is paused
period = period_parse("2020-01")
fields = {f.name: 0 for f in Statement._meta.concrete_fields
          if f.get_internal_type() in ("BigIntegerField", "PositiveIntegerField")}
Statement.objects.create(member=member, period=period.name, period_start=period.start, period_end=period.end, **fields)
client = Client(HTTP_AUTHORIZATION="Bearer " + token)
paused = client.get("/api/v1/me/statements/")
paused_detail = client.get("/api/v1/me/statements/2020-01/")
on_primary = Statement.objects.filter(member=member).count()
replica_scalar("SELECT pg_wal_replay_resume()::text")
wait_until(lambda: replica_scalar("SELECT count(*) FROM points_statement WHERE member_id = %s", member.pk) == 1,
           "the statement replicated")
resumed = client.get("/api/v1/me/statements/")
print(json.dumps({
    "standby": standby, "on_primary": on_primary,
    "paused": [paused.status_code, paused.json().get("count")], "paused_detail": paused_detail.status_code,
    "resumed": [resumed.status_code, resumed.json().get("count")],
}))
"""


@pytest.fixture
def primary_and_replica():
    bindir = server_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (scripts/ensure-postgres.sh installs them)")
    primary = Cluster.create(bindir, prefix="points-primary-")
    replica = None
    try:
        primary.start()
        url = primary.createdb("points")
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING"}
        migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=settings.BASE_DIR,
                                  env=env, capture_output=True, text=True, timeout=300)
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        replica = primary.replica()
        replica.wait_ready()
        yield {**env, "DATABASE_REPLICA_URL": replica.url("points")}
    finally:
        if replica is not None:
            replica.remove()
        primary.remove()


def test_statements_are_read_from_a_streaming_replica_and_sign_in_from_the_primary(primary_and_replica):
    run = subprocess.run([sys.executable, "manage.py", "shell", "-c", SCRIPT], cwd=settings.BASE_DIR,
                         env=primary_and_replica, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["standby"] is True, "the replica is a standby in recovery"
    assert seen["on_primary"] == 1
    assert seen["paused"] == [200, 0], "the list came from the paused replica; the token from the primary"
    assert seen["paused_detail"] == 404
    assert seen["resumed"] == [200, 1]

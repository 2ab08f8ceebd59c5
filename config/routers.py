"""Read traffic on a replica: when DATABASE_REPLICA_URL is set, the reads that may lag a moment
(statements, dashboards, exports) go to the `replica` database; everything else, and every read
inside a transaction, stays on the primary.

A read is sent to the replica only where the code says so, never by default: a money path reads
what it is about to write under a row lock, and a replica lags. The code says so with
`replica_reads()` (a context manager), `@reads_from_replica` (a decorator for a view method) or
`ReplicaExportsMixin` (an admin's import-export actions); inside them the router answers
`replica` for every ORM read, and `read_alias()` names the database for hand-written SQL
(`connections[read_alias()].cursor()`). Writes always go to the primary (a replica refuses
them), and so does any read while the primary has a transaction open in this thread (it must
see its own uncommitted rows). Migrations run on the primary only: a physical replica receives
them through the write-ahead log.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA_DB_ALIAS = "replica"

_replica_reads = ContextVar("replica_reads", default=False)


def replica_configured() -> bool:
    return REPLICA_DB_ALIAS in settings.DATABASES


def read_alias() -> str:
    """The database this thread's reads go to now."""
    if _replica_reads.get() and replica_configured() and not connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return REPLICA_DB_ALIAS
    return DEFAULT_DB_ALIAS


@contextmanager
def replica_reads():
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


def reads_from_replica(func):
    @wraps(func)
    def inner(*args, **kwargs):
        with replica_reads():
            return func(*args, **kwargs)

    return inner


class ReplicaExportsMixin:
    """For an admin with django-import-export's ExportMixin: its exports read from the replica."""

    @reads_from_replica
    def export_action(self, request):
        return super().export_action(request)

    @reads_from_replica
    def export_admin_action(self, request, queryset):
        return super().export_admin_action(request, queryset)


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # one database's data, wherever it was read

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS

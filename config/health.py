"""Health probes for load balancers and orchestrators, and the Prometheus metrics endpoint.

- `GET /healthz`: the process answers (no database, no broker): restart it when this fails.
- `GET /readyz`: the database answers, every migration is applied and the broker is reachable
  (within READYZ_BROKER_TIMEOUT seconds): send it traffic only while this is 200, else 503
  with the failing checks named.
- `GET /metrics`: django-prometheus's metrics and the platform's own (config.metrics), to a request with `Authorization: Bearer
  <METRICS_TOKEN>` or (METRICS_ALLOW_LOOPBACK) from the loopback address; 403 otherwise.

Plain Django views, outside the API and its schema; unauthenticated and cheap (the migration
check loads the migration files once: once applied, they stay applied for the process's code).
"""

import hmac
import logging
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger("config.health")

_migrations_applied: set[str] = set()  # database aliases found fully migrated by this process


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def check_database(alias: str = DEFAULT_DB_ALIAS) -> str | None:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure to answer is "not ready"
        return f"unreachable: {exc.__class__.__name__}"
    return None


def check_migrations(alias: str = DEFAULT_DB_ALIAS) -> str | None:
    if alias in _migrations_applied:
        return None
    try:
        executor = MigrationExecutor(connections[alias])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return f"unknown: {exc.__class__.__name__}"
    if plan:
        return f"{len(plan)} unapplied, first {plan[0][0].app_label}.{plan[0][0].name}"
    _migrations_applied.add(alias)
    return None


def check_broker(url: str | None = None, timeout: float | None = None) -> str | None:
    """The broker answers within `timeout` seconds; for the demo's filesystem broker, its
    folders exist and can be written."""
    url = settings.CELERY_BROKER_URL if url is None else url
    timeout = settings.READYZ_BROKER_TIMEOUT if timeout is None else timeout
    if url.startswith("filesystem"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        for key in ("data_folder_in", "data_folder_out"):
            folder = options.get(key)
            if folder is None:
                return f"{key} not configured"
            path = Path(folder)
            if not path.is_dir():
                return f"{key} {folder} missing"
            probe = path / ".readyz"
            try:
                probe.touch()
                probe.unlink()
            except OSError as exc:
                return f"{key} {folder} not writable: {exc.__class__.__name__}"
        return None
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:
            return f"unreachable: {exc.__class__.__name__}"
        return None
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        return f"unreachable: {exc.__class__.__name__}"
    return None


@never_cache
@require_GET
def readyz(request):
    checks = {"database": check_database()}
    checks["migrations"] = check_migrations() if checks["database"] is None else "not checked"
    checks["broker"] = check_broker()
    failing = {name: problem for name, problem in checks.items() if problem is not None}
    if failing:
        logger.warning("not ready: %s", failing)
    body = {"status": "unavailable" if failing else "ok",
            "checks": {name: problem or "ok" for name, problem in checks.items()}}
    return JsonResponse(body, status=503 if failing else 200)


def metrics_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        scheme, _sep, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
            return True
    return settings.METRICS_ALLOW_LOOPBACK and request.META.get("REMOTE_ADDR") in {"127.0.0.1", "::1"}


@never_cache
@require_GET
def metrics(request):
    if not metrics_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain; charset=utf-8")
    from config.metrics import metrics_page

    page, content_type = metrics_page()
    return HttpResponse(page, content_type=content_type)

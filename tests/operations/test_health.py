"""GET /healthz (the process answers) and GET /readyz (database, migrations, broker), outside the API schema."""

import os

import pytest
from django.db.migrations.executor import MigrationExecutor

from config import health


@pytest.fixture(autouse=True)
def _forget_migrations_checked():
    health._migrations_applied.clear()
    yield
    health._migrations_applied.clear()


@pytest.fixture
def redis_broker(settings):
    settings.CELERY_BROKER_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:56379/11")
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}


def test_healthz_answers_without_the_database(client):
    # No database fixture: a query would be refused (pytest-django) and answer 500.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_readyz_is_ok_with_the_database_migrated_and_redis_answering(client, redis_broker):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_readyz_is_503_while_a_migration_is_unapplied(client, redis_broker, monkeypatch):
    real_plan = MigrationExecutor.migration_plan

    def one_unapplied(self, targets, clean_start=False):
        plan = real_plan(self, targets, clean_start)
        assert plan == []
        last = self.loader.get_migration("points", max(
            name for app, name in self.loader.graph.leaf_nodes() if app == "points"))
        return [(last, False)]

    monkeypatch.setattr(MigrationExecutor, "migration_plan", one_unapplied)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["migrations"].startswith("1 unapplied, first points.")
    assert body["checks"]["database"] == body["checks"]["broker"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_does_not_answer(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    settings.READYZ_BROKER_TIMEOUT = 0.5
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("unreachable")
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_checks_the_folders_of_the_filesystem_broker(client, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "out"),
                                                "data_folder_out": str(tmp_path / "out")}
    missing = client.get("/readyz")
    assert missing.status_code == 503
    assert "missing" in missing.json()["checks"]["broker"]
    (tmp_path / "out").mkdir()
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_does_not_answer(client, redis_broker, monkeypatch):
    from django.db import OperationalError
    from django.db.backends.utils import CursorWrapper

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unreachable: OperationalError", "migrations": "not checked",
                                         "broker": "ok"}


def test_the_probes_are_not_in_the_api_schema(client, db):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    assert schema["paths"], "the schema has the API"
    assert not [p for p in schema["paths"] if p.strip("/") in {"healthz", "readyz", "metrics"}]

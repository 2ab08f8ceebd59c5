"""A database that does not answer: 503 `service_unavailable` with Retry-After, JSON on the API,
never Django's HTML 500; documented in the schema; dead persistent connections replaced."""

import sys
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.backends.utils import CursorWrapper
from django.test import RequestFactory

from config.api.exceptions import server_error


@contextmanager
def database_down():
    """Every query fails as on a dead server, until the block ends."""
    def refuse(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CursorWrapper, "execute", refuse)
        patch.setattr(CursorWrapper, "executemany", refuse)
        yield


def test_an_api_request_during_an_outage_answers_503_json_with_retry_after(partner, member):
    with database_down():
        response = partner.get("/api/v1/members/", HTTP_REQUEST_ID="outage-1")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "service_unavailable"
    assert response["Retry-After"] == str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)
    assert response["Request-Id"] == "outage-1"


def test_a_write_during_an_outage_answers_503_and_names_the_retry(partner, member):
    with database_down():
        response = partner.post("/api/v1/transactions/earn/", {"member": member.pk, "amount": "10.00",
                                                               "receipt_no": "R1"},
                                format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert "Idempotency-Key" in response.json()["detail"]


def test_a_console_page_during_an_outage_answers_503_not_a_500_page(client, operator, settings):
    settings.LANGUAGE_CODE = "en"
    client.force_login(operator)
    with database_down():
        response = client.get("/admin/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
@pytest.mark.parametrize("path, content_type", [("/api/v1/members/", "application/json"), ("/admin/", "text/plain")])
def test_the_500_handler_answers_a_database_error_outside_a_view_with_503(error, path, content_type):
    request = RequestFactory().get(path)
    try:
        raise error("connection already closed")
    except error:
        assert sys.exc_info()[0] is error
        response = server_error(request)
    assert response.status_code == 503
    assert response["Content-Type"].startswith(content_type)
    assert response["Retry-After"] == str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)


def test_the_500_handler_keeps_the_api_shape_for_any_other_error():
    request = RequestFactory().get("/api/v1/members/")
    try:
        raise ZeroDivisionError
    except ZeroDivisionError:
        response = server_error(request)
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert b'"server_error"' in response.content


def test_persistent_connections_are_health_checked_before_reuse():
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


@pytest.fixture
def second_connection(db):
    """A connection of its own (outside the test's transaction), closed afterwards."""
    from django.db import connections

    other = connections.create_connection("default")
    other.ensure_connection()
    yield other
    other.close()


def test_a_quiet_connection_is_judged_usable_without_a_query(second_connection, monkeypatch):
    from django.db.backends.postgresql.base import DatabaseWrapper

    if second_connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's health check")
    asked = []
    monkeypatch.setattr(DatabaseWrapper, "is_usable", lambda self: asked.append(self) or True)
    assert second_connection.is_usable() is True
    assert asked == []


def test_a_connection_whose_backend_was_terminated_is_replaced_before_use(second_connection):
    from django.db import connection

    if second_connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's health check")
    pid = second_connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    assert second_connection.is_usable() is False
    second_connection.health_check_done = False
    second_connection.close_if_health_check_failed()
    with second_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_the_schema_documents_503_with_retry_after_on_every_operation(client, db):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = [op for methods in schema["paths"].values() for op in methods.values()]
    assert operations
    for operation in operations:
        unavailable = operation["responses"]["503"]
        assert unavailable["headers"]["Retry-After"]["required"] is True
        assert "service_unavailable" in unavailable["content"]["application/json"]["examples"]

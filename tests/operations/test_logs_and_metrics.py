"""One structured log line per request (config.middleware.RequestLogMiddleware, config.logs),
and the Prometheus metrics at /metrics, refused to the public."""

import json
import logging

import pytest

from config.logs import JsonFormatter


def request_lines(caplog):
    return [record for record in caplog.records if record.name == "points.requests"]


def test_a_partner_request_logs_one_line_with_the_key_prefix_and_request_id(partner, member, caplog):
    with caplog.at_level(logging.INFO, logger="points.requests"):
        response = partner.get(f"/api/v1/members/{member.pk}/balance/", HTTP_X_REQUEST_ID="trace-42")
    assert response.status_code == 200
    [line] = request_lines(caplog)
    fields = line.request
    assert (fields["method"], fields["path"], fields["status"], fields["request_id"]) == (
        "GET", f"/api/v1/members/{member.pk}/balance/", 200, "trace-42")
    assert isinstance(fields["duration_ms"], float) and fields["duration_ms"] >= 0
    key = partner._credentials["HTTP_AUTHORIZATION"].split(" ", 1)[1]
    assert fields["partner_key"] and key.startswith(fields["partner_key"])
    assert fields["partner_key"] != key, "the key itself is never logged"
    assert "member_id" not in fields


def test_a_member_request_logs_the_member_id(member, caplog):
    from rest_framework.test import APIClient

    from members.services import member_token_issue

    token = member_token_issue(member=member)
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    with caplog.at_level(logging.INFO, logger="points.requests"):
        assert client.get("/api/v1/me/").status_code == 200
    [line] = request_lines(caplog)
    assert line.request["member_id"] == member.pk
    assert "partner_key" not in line.request


def test_every_answer_carries_the_request_id_outside_the_api_too(client, caplog):
    with caplog.at_level(logging.INFO, logger="points.requests"):
        response = client.get("/healthz", HTTP_X_REQUEST_ID="probe-1")
    assert response["Request-Id"] == "probe-1"
    [line] = request_lines(caplog)
    assert (line.request["path"], line.request["status"]) == ("/healthz", 200)


def test_the_json_formatter_writes_one_object_with_the_request_fields():
    record = logging.LogRecord("points.requests", logging.INFO, __file__, 1, "GET %s %s", ("/x", 200), None)
    record.request = {"method": "GET", "path": "/x", "status": 200, "request_id": "r-1"}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == ("INFO", "points.requests", "GET /x 200")
    assert entry["request"]["request_id"] == "r-1"
    assert entry["time"].endswith("+00:00")


def test_the_json_formatter_keeps_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exc_info"]


@pytest.fixture
def metrics_closed(settings):
    settings.METRICS_ALLOW_LOOPBACK = False
    settings.METRICS_TOKEN = "s3cret-token-for-the-scraper"
    return settings


def test_metrics_are_refused_without_the_token(client, metrics_closed):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Api-Key s3cret-token-for-the-scraper").status_code == 403


def test_metrics_are_served_with_the_token_and_count_requests_by_view_and_status(client, metrics_closed):
    client.get("/healthz")
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token-for-the-scraper")
    assert response.status_code == 200
    body = response.content.decode()
    assert response["Content-Type"].startswith("text/plain")
    assert 'django_http_responses_total_by_status_view_method_total{method="GET",status="200",view="healthz"}' in body
    assert "django_http_requests_latency_seconds_by_view_method_bucket" in body


def test_metrics_without_a_token_configured_are_refused_to_a_bearer_of_nothing(client, settings):
    settings.METRICS_ALLOW_LOOPBACK = False
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_metrics_are_served_to_the_loopback_address_when_allowed(client, settings):
    settings.METRICS_ALLOW_LOOPBACK = True
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200

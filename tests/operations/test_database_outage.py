"""A database that does not answer: 503 `service_unavailable` with Retry-After, JSON on the API,
never Django's HTML 500; documented in the schema; dead persistent connections replaced.

The last test does it for real: a PostgreSQL of its own (tests/operations/pgcluster.py) killed
under earn load from threads against gunicorn, restarted five seconds later; every acknowledged
earn is in the ledger once, every retry replays, verify_ledger passes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.backends.utils import CursorWrapper
from django.test import RequestFactory

from config.api.exceptions import server_error
from tests.operations.pgcluster import Cluster, free_port, server_bindir


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


def test_an_earn_that_committed_is_acknowledged_when_the_database_fails_right_after(partner, member, monkeypatch):
    """The balance is read after the commit: the database failing then leaves the earn written,
    so the answer is its 201 with the transaction and a null balance, never a 503 to retry."""
    from points.api import views
    from points.models import Posting

    def earn_then_outage(**kwargs):
        result = points_earn(**kwargs)
        monkeypatch.setattr(CursorWrapper, "execute", _refuse)
        return result

    points_earn = views.points_earn
    monkeypatch.setattr(views, "points_earn", earn_then_outage)
    response = partner.post("/api/v1/transactions/earn/", {"member": member.pk, "amount": "10.00", "receipt_no": "R1"},
                            format="json", HTTP_IDEMPOTENCY_KEY="after-commit")
    monkeypatch.undo()
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["balance"] is None
    assert body["transaction"]["id"] == Posting.objects.get(idempotency_key="after-commit").pk
    assert body["points"] == 10


@pytest.mark.parametrize("write", ["place", "capture"])
def test_a_hold_written_is_acknowledged_when_the_database_fails_right_after(partner, bu, member, monkeypatch, write):
    """As for the earn: a hold placed, or a capture's spend, that committed answers with a null
    balance when the balance's read fails, never an error that a retry would take as unwritten."""
    from points.api import holds
    from points.earning import points_earn
    from points.models import Hold, Posting

    points_earn(member_id=member.pk, business_unit=bu, points=500, reason="test")
    if write == "capture":
        held = partner.post("/api/v1/holds/", {"member": member.pk, "points": 200, "purpose": "pos_bill"},
                            format="json", HTTP_IDEMPOTENCY_KEY="hold-1").json()["hold"]["id"]
    name = "hold_place" if write == "place" else "hold_capture"
    original = getattr(holds, name)

    def write_then_outage(**kwargs):
        result = original(**kwargs)
        monkeypatch.setattr(CursorWrapper, "execute", _refuse)
        return result

    monkeypatch.setattr(holds, name, write_then_outage)
    if write == "place":
        response = partner.post("/api/v1/holds/", {"member": member.pk, "points": 200, "purpose": "pos_bill"},
                                format="json", HTTP_IDEMPOTENCY_KEY="hold-after-commit")
    else:
        response = partner.post(f"/api/v1/holds/{held}/capture/", {"points": 150}, format="json",
                                HTTP_IDEMPOTENCY_KEY="capture-after-commit")
    monkeypatch.undo()
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["balance"] is None
    if write == "place":
        assert body["hold"]["id"] == Hold.objects.get(idempotency_key="hold-after-commit").pk
    else:
        assert body["transaction"]["points"] == -150
        assert Posting.objects.filter(pk=body["transaction"]["id"]).exists()


def _refuse(*args, **kwargs):
    raise OperationalError("server closed the connection unexpectedly")


# --- the real thing: a PostgreSQL of the test's own, killed under earn load ------------------

LOAD_THREADS = 4
MAX_ANSWERS = 3000  # the whole test's bound on requests, whatever the timing
OUTAGE_SECONDS = 5
PHASE_SECONDS = 60  # the longest any phase may take before the test fails
WEB_WORKERS, WEB_THREADS = 2, 3

SEED = """
import json
from members.models import PartnerKey
from tests.factories import BusinessUnitFactory, enrol_member
bu = BusinessUnitFactory(code="mall")
members = [enrol_member().pk for _ in range(8)]
key_object, key = PartnerKey.objects.create_key(name="outage POS", business_unit=bu)
print(json.dumps({"key": key, "prefix": key_object.prefix, "members": members}))
"""


@dataclass
class Answer:
    key: str
    member: int
    started: float
    finished: float
    status: int | None  # None: no HTTP answer at all
    body: dict | None
    content_type: str
    retry_after: str | None


class EarnLoad:
    """Threads posting earns, each with an Idempotency-Key of its own, until stopped or bounded."""

    def __init__(self, base_url: str, api_key: str, members: list[int]):
        self.base_url, self.api_key, self.members = base_url, api_key, members
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(LOAD_THREADS)]

    def earn(self, key: str, member: int) -> Answer:
        started = time.monotonic()
        try:
            response = requests.post(
                f"{self.base_url}/api/v1/transactions/earn/",
                json={"member": member, "amount": "12.00", "receipt_no": key},
                headers={"Authorization": f"Api-Key {self.api_key}", "Idempotency-Key": key},
                timeout=30,
            )
        except requests.RequestException:
            return Answer(key, member, started, time.monotonic(), None, None, "", None)
        try:
            body = response.json()
        except ValueError:
            body = None
        return Answer(key, member, started, time.monotonic(), response.status_code, body,
                      response.headers.get("Content-Type", ""), response.headers.get("Retry-After"))

    def _run(self, n: int) -> None:
        i = 0
        while not self.stopping.is_set():
            with self.lock:
                if len(self.answers) >= MAX_ANSWERS:
                    return
            key = f"outage-{n}-{i}"
            answer = self.earn(key, self.members[(n + i) % len(self.members)])
            with self.lock:
                self.answers.append(answer)
            i += 1
            time.sleep(0.01)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=PHASE_SECONDS)
        assert not any(thread.is_alive() for thread in self.threads), "load threads did not stop"

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + PHASE_SECONDS
        while True:
            with self.lock:
                if condition(list(self.answers)):
                    return
                if len(self.answers) >= MAX_ANSWERS:
                    pytest.fail(f"request bound reached waiting for {what}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.1)


def _manage(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def own_postgres():
    bindir = server_bindir()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("no PostgreSQL server binaries (scripts/ensure-postgres.sh installs them)")
    cluster = Cluster.create(bindir, prefix="points-outage-")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def web(own_postgres, tmp_path):
    """The application on the test's PostgreSQL: migrated, seeded, served by gunicorn with
    persistent connections (CONN_MAX_AGE) in a few workers and threads."""
    url = own_postgres.createdb("points")
    env = {**os.environ, "DATABASE_URL": url, "CONN_MAX_AGE": "600", "DEBUG": "0", "VAR_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    migrated = _manage(env, "migrate", "--no-input", "-v0")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    seeded = _manage(env, "shell", "-c", SEED, timeout=120)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    seed = json.loads(seeded.stdout.strip().splitlines()[-1])
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(WEB_WORKERS), "--threads", str(WEB_THREADS), "--timeout", "60"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PHASE_SECONDS
        while True:
            try:
                if requests.get(f"{base_url}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz"
            time.sleep(0.2)
        yield {"base_url": base_url, "env": env, "url": url, **seed}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


def _ledger_postings(cluster: Cluster, prefix: str) -> dict[str, list[int]]:
    rows = cluster.psql("points", "SELECT idempotency_key, id FROM points_posting "
                                  f"WHERE idempotency_scope = 'partner:{prefix}' ORDER BY id")
    postings: dict[str, list[int]] = {}
    for line in filter(None, rows.splitlines()):
        key, posting_id = line.split("|")
        postings.setdefault(key, []).append(int(posting_id))
    return postings


def test_postgresql_killed_under_earn_load_and_restarted_loses_and_doubles_nothing(own_postgres, web):
    load = EarnLoad(web["base_url"], web["key"], web["members"])
    load.start()
    try:
        load.wait_for(lambda answers: sum(a.status == 201 for a in answers) >= 20, "earns before the outage")
        own_postgres.crash()
        down = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        restarting = time.monotonic()
        own_postgres.start()
        own_postgres.wait_ready()
        up = time.monotonic()
        # Enough requests after the restart to reach every thread of every worker (each holds
        # a persistent connection that died with the server).
        load.wait_for(lambda answers: sum(a.started >= up for a in answers) >= 8 * WEB_WORKERS * WEB_THREADS,
                      "earns after the restart")
    finally:
        load.stop()

    answers = load.answers
    unanswered = [a for a in answers if a.status is None]
    assert not unanswered, f"{len(unanswered)} requests without an HTTP answer"
    assert {a.status for a in answers} <= {201, 503}, sorted({a.status for a in answers})
    for answer in answers:
        assert answer.content_type == "application/json", answer
        if answer.status == 503:
            assert answer.body["code"] == "service_unavailable", answer
            assert answer.retry_after == str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER), answer
    during = [a for a in answers if a.started >= down and a.finished <= restarting]
    assert during and all(a.status == 503 for a in during), [a.status for a in during]
    after = [a for a in answers if a.started >= up]
    assert after and all(a.status == 201 for a in after), [(a.status, a.body) for a in after if a.status != 201]

    acknowledged = {a.key: a.body["transaction"]["id"] for a in answers if a.status == 201}
    postings = _ledger_postings(own_postgres, web["prefix"])
    assert all(len(ids) == 1 for ids in postings.values())
    assert set(postings) <= {a.key for a in answers}, "a posting no request asked for"
    assert {key: postings.get(key, [None])[0] for key in acknowledged} == acknowledged, "an acknowledged earn lost"

    # Every key again, as a client retrying after its timeout or 503: a committed earn replays
    # its posting, one that never committed posts now; nothing twice.
    for answer in answers:
        retry = load.earn(answer.key, answer.member)
        assert retry.status in {200, 201}, retry
        if answer.key in postings:
            assert (retry.status, retry.body["replayed"]) == (200, True), retry
            assert retry.body["transaction"]["id"] == postings[answer.key][0]
        else:
            assert retry.status == 201, retry
    after_retries = _ledger_postings(own_postgres, web["prefix"])
    assert set(after_retries) == {a.key for a in answers}
    assert all(len(ids) == 1 for ids in after_retries.values()), "an earn posted twice"

    verified = _manage(web["env"], "verify_ledger", timeout=120)
    assert verified.returncode == 0, verified.stderr

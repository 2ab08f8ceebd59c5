"""The dashboard in a real browser: on the demo's data, its charts are drawn and its figures are
the ledger's; served as deployed (gunicorn, production settings, static files from whitenoise),
the console is styled and ECharts loads."""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count, Q, Sum
from django.utils import timezone

from points.models import Lot, Posting, PostingKind
from points.timeutils import start_of_local_day
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ROOT = Path(settings.BASE_DIR)

CHARTS_DRAWN = """() => {
  const chart = (id) => window.echarts && echarts.getInstanceByDom(document.getElementById(id));
  return chart("series-chart") && chart("flow-chart")
    && chart("series-chart").getOption().series.length > 0 && chart("flow-chart").getOption().series.length > 0;
}"""


def kpi(page, code: str) -> str:
    return page.get_attribute(f"#kpi-{code} td[data-value]", "data-value")


@pytest.fixture
def demo(tmp_path) -> tuple[dict, dict]:
    """The demo's data and its printed credentials, and the figures the ledger itself gives for
    the dashboard's default window (the last 30 days). Read before the browser starts: the ORM
    is not used while Playwright's event loop runs."""
    credentials = tmp_path / "credentials.json"
    call_command("seed_demo", members=15, credentials_out=credentials)
    call_command("seed_settlement")
    call_command("rebuild_aggregates")
    today = timezone.localdate()
    start = start_of_local_day(today - timezone.timedelta(days=29))
    end = start_of_local_day(today + timezone.timedelta(days=1))
    figures = Posting.objects.filter(occurred_at__gte=start, occurred_at__lt=end).aggregate(
        credited=Sum("points", filter=Q(kind__in=[PostingKind.EARN, PostingKind.ADJUST], points__gt=0), default=0),
        refunded=Sum("points", filter=Q(kind=PostingKind.REFUND), default=0),
        spent=Sum("points", filter=Q(kind=PostingKind.SPEND), default=0),
        cancelled=Sum("points", filter=Q(kind=PostingKind.CANCEL), default=0),
        members=Count("wallet", distinct=True, filter=Q(kind__in=settings.DASHBOARD_ACTIVE_MEMBER_KINDS)),
    )
    expected = {
        "issued": figures["credited"] + figures["refunded"],
        "redeemed": -figures["spent"] - figures["cancelled"],
        "active_members": figures["members"],
        "liability_points": Lot.objects.filter(posting__occurred_at__lt=end).aggregate(s=Sum("remaining"))["s"],
    }
    return json.loads(credentials.read_text()), expected


def test_the_dashboard_on_the_demo_data_draws_its_charts_and_shows_the_ledgers_figures(live_server, demo,
                                                                                      browser_page):
    login, expected = demo
    assert expected["issued"] > 0
    page = browser_page
    sign_in(page, live_server.url, login["admin_username"], login["admin_password"])
    page.click("#dashboard-link a")
    page.wait_for_url(f"{live_server.url}/admin/dashboard/")
    page.wait_for_function(CHARTS_DRAWN)

    assert page.locator("#series-chart canvas, #series-chart svg").count() > 0
    assert page.locator("#flow-chart canvas, #flow-chart svg").count() > 0
    drawn = page.evaluate("echarts.getInstanceByDom(document.getElementById('series-chart')).getOption()")
    assert sum(len(series["data"]) for series in drawn["series"]) > 0
    assert {code: kpi(page, code) for code in expected} == {code: str(value) for code, value in expected.items()}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgresql://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def deployed(tmp_path):
    """gunicorn on 127.0.0.1 with config.settings_production, after collectstatic, on the test database."""
    port = free_port()
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_production", "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false", "SECURE_HSTS_SECONDS": "0",
        "STATIC_ROOT": str(tmp_path / "static"), "DATABASE_URL": database_url(), "LOG_FORMAT": "text",
        "CONSOLE_OTP_REQUIRED_GROUPS": "", "CONN_MAX_AGE": "0",
    }
    collected = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stderr[-3000:]
    log = open(tmp_path / "gunicorn.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


@pytest.fixture
def superuser() -> tuple[str, str]:
    password = secrets.token_urlsafe(12)
    get_user_model().objects.create_superuser(username="deployed-admin", password=password, email="a@example.com")
    return "deployed-admin", password


def test_the_console_served_as_deployed_is_styled_and_loads_echarts_from_whitenoise(deployed, superuser,
                                                                                    browser_page):
    page = browser_page
    statics = {}
    page.on("response", lambda response: statics.__setitem__(response.url, response.status)
            if "/static/" in response.url else None)

    sign_in(page, deployed, *superuser)
    page.goto(f"{deployed}/admin/dashboard/")
    page.wait_for_function(CHARTS_DRAWN)

    stylesheets = {url: status for url, status in statics.items() if "/static/admin/css/base." in url}
    assert stylesheets and set(stylesheets.values()) == {200}, statics
    assert all(len(url.rsplit("/", 1)[1].split(".")) == 3 for url in stylesheets)  # base.<hash>.css
    header = page.evaluate("getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header not in ("rgba(0, 0, 0, 0)", "transparent", "")
    scripts = {url: status for url, status in statics.items() if "/static/settlement/vendor/echarts/echarts.min." in url}
    assert scripts and set(scripts.values()) == {200}, statics
    assert page.evaluate("typeof echarts.init") == "function"
    assert page.locator("#series-chart canvas").count() > 0

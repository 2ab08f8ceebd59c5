"""The demo runs on the embedded SQLite database: migrate, seed and verify it there, as `make run` does.

The rest of the suite runs on PostgreSQL; this test guards the code paths that differ by vendor
(e.g. the set-based expiry, which the demo's seeding exercises).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from points.expiry import expiry_run_batch
from points.models import Posting, PostingKind

ROOT = Path(settings.BASE_DIR)


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_demo_seeds_and_verifies_on_sqlite(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}", "VAR_DIR": str(tmp_path)}
    credentials_out = ["--credentials-out", str(tmp_path / "c.json")]
    # What scripts/run-demo.sh runs, in its order.
    for args in (["migrate", "--noinput"], ["seed_demo", "--members", "15", *credentials_out],
                 ["seed_payments", *credentials_out], ["seed_tiers"], ["seed_risk_demo"], ["verify_ledger"],
                 ["seed_settlement"], ["verify_settlement"], ["rebuild_aggregates"], ["verify_aggregates"]):
        done = manage(*args, env=env)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-4000:]}"
    credentials = json.loads((tmp_path / "c.json").read_text())
    assert credentials["partner_api_key"] and credentials["member_token"]

    served = manage("shell", "--no-imports", "-c", API_ROUND, env={**env, "PARTNER_KEY": credentials["partner_api_key"]})
    assert served.returncode == 0, served.stderr[-4000:]
    assert served.stdout.split() == ["200", "200", "200", "201", "200", "201", "history-times-agree"], served.stdout[-2000:]
    assert manage("verify_ledger", env=env).returncode == 0

    board = manage("shell", "--no-imports", "-c", DASHBOARD_PAGE, env=env)
    assert board.returncode == 0, board.stderr[-4000:]
    status, issued = board.stdout.split()
    assert status == "200" and int(issued) > 0, board.stdout[-2000:]


# The API's reads and writes on SQLite, where the hand-written SQL of the hot paths must work too.
API_ROUND = """
import json, os
from django.test import Client
from decimal import Decimal
from members.models import Member, Merchant
from tiers.models import TierLevel, TierProgramme
if not TierProgramme.objects.filter(is_active=True).exists():  # seed_tiers makes one
    programme = TierProgramme.objects.create(code="sqlite", name="Tiers", is_active=True)
    TierLevel.objects.create(programme=programme, code="silver", name="Silver", rank=1, threshold=Decimal("0"))
client = Client(HTTP_AUTHORIZATION="Api-Key " + os.environ["PARTNER_KEY"], HTTP_HOST="127.0.0.1")
member = Member.objects.order_by("pk").first().pk
merchant = Merchant.objects.filter(is_active=True).order_by("pk").first().code
body = {"member": member, "amount": "88.00", "merchant": merchant, "receipt_no": "sqlite-1"}
batch = {"items": [{**body, "idempotency_key": "sqlite-b1", "receipt_no": "sqlite-b1"}]}
for response in (
    client.get(f"/api/v1/members/{member}/balance/"),
    client.get(f"/api/v1/members/{member}/transactions/"),
    client.get(f"/api/v1/members/{member}/tier/"),
    client.post("/api/v1/transactions/earn/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="sqlite-1"),
    client.post("/api/v1/transactions/earn/batch/", batch, content_type="application/json"),
    client.post("/api/v1/transactions/spend/", {"member": member, "points": 5}, content_type="application/json",
                HTTP_IDEMPOTENCY_KEY="sqlite-s1"),
):
    print(response.status_code)
# The unfiltered page (plain SQL, naive datetimes on SQLite) shows the instants the filtered page
# (the ORM) and the earn's own answer show.
earned = client.post("/api/v1/transactions/earn/", body, content_type="application/json",
                     HTTP_IDEMPOTENCY_KEY="sqlite-1").json()["transaction"]
def shown(params):
    rows = client.get(f"/api/v1/members/{member}/transactions/", params).json()["results"]
    return [(row["occurred_at"], row["created_at"], row["event_type"]) for row in rows if row["id"] == earned["id"]]
plain, filtered = shown({}), shown({"kind": "earn"})
mine = [(earned["occurred_at"], earned["created_at"], "purchase")]
print("history-times-agree" if plain == filtered == mine else f"history-times-differ {plain} {filtered} {mine}")
"""

# The dashboard on SQLite, as the demo's printed admin opens it: the page and the issued points.
DASHBOARD_PAGE = """
import re
from django.contrib.auth import get_user_model
from django.test import Client
client = Client(HTTP_HOST="127.0.0.1")
client.force_login(get_user_model().objects.get(username="admin"))
page = client.get("/admin/dashboard/", {"bucket": "week"})
print(page.status_code, re.search(r'id="kpi-issued".*?data-value="(-?[0-9]+)"', page.content.decode(), re.S).group(1))
"""


@pytest.mark.django_db
def test_portable_expiry_path_matches_the_ledger_rules(bu, member, ledger_sound, monkeypatch):
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from points.earning import points_earn

    points_earn(member_id=member.pk, business_unit=bu, points=25)
    monkeypatch.setattr(connection, "vendor", "sqlite")
    written = expiry_run_batch(now=timezone.now() + timedelta(days=800))[0]
    monkeypatch.undo()
    assert written == 1
    assert Posting.objects.get(kind=PostingKind.EXPIRE).points == -25
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 0
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 1
    ledger_sound()

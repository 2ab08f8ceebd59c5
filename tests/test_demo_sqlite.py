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

from points.expiry import wallets_expire_due_lots
from points.models import Posting, PostingKind

ROOT = Path(settings.BASE_DIR)


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_demo_seeds_and_verifies_on_sqlite(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}", "VAR_DIR": str(tmp_path)}
    for args in (["migrate", "--noinput"], ["seed_demo", "--members", "15", "--credentials-out", str(tmp_path / "c.json")],
                 ["verify_ledger"]):
        done = manage(*args, env=env)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-4000:]}"
    credentials = json.loads((tmp_path / "c.json").read_text())
    assert credentials["partner_api_key"] and credentials["member_token"]


@pytest.mark.django_db
def test_portable_expiry_path_matches_the_ledger_rules(bu, member, ledger_sound, monkeypatch):
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from points.services import points_earn

    points_earn(member_id=member.pk, business_unit=bu, points=25)
    monkeypatch.setattr(connection, "vendor", "sqlite")
    written = wallets_expire_due_lots(wallet_ids=[member.wallet.pk], now=timezone.now() + timedelta(days=800))
    monkeypatch.undo()
    assert written == 1
    assert Posting.objects.get(kind=PostingKind.EXPIRE).points == -25
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 0
    assert Posting.objects.filter(kind=PostingKind.EXPIRE).count() == 1
    ledger_sound()

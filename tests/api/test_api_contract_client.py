"""A client generated from the schema (openapi-python-client) imports, and a POS integration
written against it alone (tests/contract_client/pos_script.py) runs against the live server.

The client is generated at test time into a temporary directory (about a second, no network);
the script runs in a process of its own with only the generated package on its path, so it
uses nothing of the project. The test then checks in the database what the script did."""

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from members.models import Member, PartnerKey
from points.models import EventType, Posting, PostingKind
from points.selectors import ledger_problems
from tests.factories import BusinessUnitFactory, MerchantFactory
from tests.factories import EarningRuleFactory

SCRIPT = Path(__file__).parent / "contract_client" / "pos_script.py"
PACKAGE = "points_client"


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory, django_db_blocker) -> Path:
    """The client package generated from the schema; returns the directory that holds it."""
    root = tmp_path_factory.mktemp("generated")
    schema = root / "schema.json"
    with django_db_blocker.unblock():
        call_command("spectacular", "--format", "openapi-json", "--lang", "en", "--file", str(schema))
    (root / "config.yaml").write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(schema), "--output-path", str(root / PACKAGE), "--meta", "none",
         "--config", str(root / "config.yaml"), "--fail-on-warning"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_every_module_of_the_generated_client_imports(generated_client):
    sys.path.insert(0, str(generated_client))
    try:
        package = importlib.import_module(PACKAGE)
        modules = [name for _finder, name, _is_package in pkgutil.walk_packages(package.__path__, f"{PACKAGE}.")]
        for name in modules:
            importlib.import_module(name)  # raises on a module the generator could not write
    finally:
        sys.path.remove(str(generated_client))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
    operations = {name.rsplit(".", 1)[-1] for name in modules if ".api." in name}
    assert {"transactions_earn", "transactions_spend", "transactions_earn_batch", "events_create", "rules_simulate",
            "members_enrol", "auth_otp", "auth_token"} <= operations
    assert len(operations) >= 18


def test_a_pos_script_on_the_generated_client_runs_every_operation(generated_client, live_server, settings, tmp_path):
    sms_file = tmp_path / "sms.log"
    settings.SMS_BACKEND = "members.sms.FileSmsBackend"
    settings.SMS_FILE_PATH = str(sms_file)
    bu = BusinessUnitFactory(code="mall", name="Central Mall")
    shop1 = MerchantFactory(business_unit=bu, code="shop1")
    MerchantFactory(business_unit=bu, code="shop2")
    EarningRuleFactory(code="check-in", event_type=EventType.CHECK_IN, points=10)
    _key, partner_key = PartnerKey.objects.create_key(name="POS", business_unit=bu, may_spend_without_presence=True)
    _key, scoped_key = PartnerKey.objects.create_key(name="shop1 POS", business_unit=bu, merchant=shop1,
                                                    may_spend_without_presence=True)

    done = subprocess.run(
        [sys.executable, str(SCRIPT), live_server.url, partner_key, scoped_key, str(sms_file)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(generated_client)}, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"enrol", "earn", "replay", "spend", "reverse", "bulk earn", "event", "simulate", "balance", "history",
            "invalid", "idempotency key required", "not found", "authentication failed", "permission denied",
            "merchant not permitted", "insufficient points", "idempotency conflict", "rate limited"} <= set(report["steps"])

    member = Member.objects.get(pk=report["member"])
    kinds = sorted(Posting.objects.filter(wallet__member=member).values_list("kind", flat=True))
    assert kinds == sorted([PostingKind.EARN, PostingKind.SPEND, PostingKind.REFUND, PostingKind.EARN,
                            PostingKind.EARN])
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 100
    assert ledger_problems() == {}

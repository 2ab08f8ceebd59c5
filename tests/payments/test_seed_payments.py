"""seed_payments: points as cash in the demo, idempotent, with working keys; and on SQLite, as `make run` does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from mall.models import Item, Order, OrderStatus
from mall.models_payments import Payment, PaymentEvent, PaymentStatus, PropertyBill
from members.models import PartnerKey
from points.models import Posting, Wallet


@pytest.mark.django_db
def test_seed_payments_twice_same_data_and_working_keys(tmp_path, ledger_sound):
    out = tmp_path / "credentials.json"
    call_command("seed_demo", members=5, credentials_out=out)
    call_command("seed_payments", credentials_out=out)
    counts = (Payment.objects.count(), PaymentEvent.objects.count(), PropertyBill.objects.count(), Posting.objects.count(),
              Order.objects.count())
    first = json.loads(out.read_text())
    call_command("seed_payments", credentials_out=out)
    assert (Payment.objects.count(), PaymentEvent.objects.count(), PropertyBill.objects.count(),
            Posting.objects.count(), Order.objects.count()) == counts
    second = json.loads(out.read_text())
    assert {"partner_api_key", "member_token", "restaurant_api_key", "parking_api_key", "property_api_key"} <= set(second)
    statuses = dict(Payment.objects.values_list("bill_no", "status"))
    assert statuses == {"RR-20261201-0007": PaymentStatus.PARTIALLY_REFUNDED, "P-20261201-0311": PaymentStatus.CAPTURED,
                        "PF-2026-05-T2-1808": PaymentStatus.CAPTURED, "PF-2026-06-T3-0901": PaymentStatus.CAPTURED}
    tenant = Wallet.objects.get(organization__code="blue-ocean-tech")
    assert tenant.balance == 50000 + 12800 - 38400 - 2 * 2000 - 2000 == 18400
    booking = Order.objects.get(organization__code="blue-ocean-tech")
    assert (booking.item.name_en, booking.points, booking.status, booking.member.phone) == (
        "Meeting room A (8 seats)", 2000, OrderStatus.ISSUED, "13955500001")
    assert booking.spend_posting.wallet == tenant
    call_command("seed_mall", credentials_out=out)  # as `make run`, later: it finds the same room
    room = Item.objects.get(name_en="Meeting room A (8 seats)")
    assert (room.pk, room.slots.count(), sum(room.slots.values_list("booked", flat=True))) == (booking.item_id, 14, 1)
    employees = Wallet.objects.filter(member__organization__code="blue-ocean-tech", member__is_organization_admin=False)
    assert sorted(employees.values_list("balance", flat=True)) == [2000, 2000]
    assert "organization_admin_token" in second
    restaurant = PartnerKey.objects.get_from_key(second["restaurant_api_key"])
    parking = PartnerKey.objects.get_from_key(second["parking_api_key"])
    assert not restaurant.may_spend_without_presence
    assert parking.may_spend_without_presence
    with pytest.raises(PartnerKey.DoesNotExist):
        PartnerKey.objects.get_from_key(first["restaurant_api_key"])
    ledger_sound()


def test_the_payments_demo_runs_on_sqlite(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}", "VAR_DIR": str(tmp_path)}
    out = tmp_path / "c.json"
    for args in (["migrate", "--noinput"], ["seed_demo", "--members", "5", "--credentials-out", str(out)],
                 ["seed_payments", "--credentials-out", str(out)], ["seed_payments"], ["verify_ledger"]):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=Path(settings.BASE_DIR), env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-4000:]}"
        assert "skipped" not in done.stderr, done.stderr

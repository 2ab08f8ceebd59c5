"""The demo mall on the embedded SQLite database, as `make run` seeds it: the catalogue a visitor
sees, an order, a write-off at the cinema's till and a cancel, over the API."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def manage(*args, env):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_demo_mall_seeds_twice_and_serves_a_visitor_on_sqlite(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}", "VAR_DIR": str(tmp_path)}
    credentials = tmp_path / "c.json"
    for args in (["migrate", "--noinput"], ["seed_demo", "--members", "15", "--credentials-out", str(credentials)],
                 ["seed_tiers"], ["seed_mall", "--credentials-out", str(credentials)],
                 ["seed_mall", "--credentials-out", str(credentials)]):
        done = manage(*args, env=env)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-4000:]}"
    given = json.loads(credentials.read_text())
    assert given["member_token"] and given["merchant_staff_username"] == "cinema-staff" and given["cinema_till_api_key"]

    served = manage("shell", "--no-imports", "-c", VISIT, env={
        **env, "MEMBER_TOKEN": given["member_token"], "TILL_KEY": given["cinema_till_api_key"],
        "STAFF": given["merchant_staff_username"], "STAFF_PASSWORD": given["merchant_staff_password"]})
    assert served.returncode == 0, served.stderr[-4000:]
    assert served.stdout.split() == ["200", "6", "not_on_sale", "201", "200", "201", "200", "True", "302"], served.stdout
    assert manage("verify_ledger", env=env).returncode == 0


VISIT = """
import os
from django.test import Client
from mall.models import Item
member = Client(HTTP_AUTHORIZATION="Bearer " + os.environ["MEMBER_TOKEN"], HTTP_HOST="127.0.0.1")
till = Client(HTTP_AUTHORIZATION="Api-Key " + os.environ["TILL_KEY"], HTTP_HOST="127.0.0.1")
items = member.get("/api/v1/me/mall/items/")
print(items.status_code, items.json()["count"])
flash = next(row for row in items.json()["results"] if row["name_en"].startswith("Flash"))
print(flash["not_orderable"]["code"])
cinema = Item.objects.get(name_en__startswith="Star Cinema")
placed = member.post("/api/v1/me/mall/orders/", {"item": cinema.pk}, content_type="application/json",
                     HTTP_IDEMPOTENCY_KEY="visit-1")
print(placed.status_code)
code = placed.json()["order"]["coupons"][0]["code"]
print(till.get(f"/api/v1/coupons/{code}/").status_code)
print(till.post(f"/api/v1/coupons/{code}/redeem/", {"bill_amount": "120.00"}, content_type="application/json",
                HTTP_IDEMPOTENCY_KEY="till-1").status_code)
bottle = Item.objects.get(name_en__startswith="City")
order = member.post("/api/v1/me/mall/orders/", {"item": bottle.pk}, content_type="application/json",
                    HTTP_IDEMPOTENCY_KEY="visit-2").json()["order"]
print(member.post(f"/api/v1/me/mall/orders/{order['id']}/cancel/", {}, content_type="application/json").status_code)
staff = Client(HTTP_HOST="127.0.0.1")
print(staff.login(username=os.environ["STAFF"], password=os.environ["STAFF_PASSWORD"]))
print(staff.get("/admin/mall/order/" + str(order["id"]) + "/change/").status_code)
"""

"""Partner keys: expiry, rotation with two keys live (and one idempotency scope across them), the
last-used time written at most once a minute and shown in the console, and the per-key rate
limit counted in Redis, shared by every process (429 `rate_limited` with Retry-After)."""

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from members.exceptions import PartnerKeyNotRotatable
from members.models import PartnerKey
from members.ratelimit import partner_rate_limit_wait
from members.services import partner_key_mark_used, partner_key_rotate

pytestmark = pytest.mark.django_db


def client_for(secret: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Api-Key {secret}")


@pytest.fixture
def issued(bu):
    key, secret = PartnerKey.objects.create_key(name="mall POS", business_unit=bu)
    return key, secret


def earn(client, member, key: str):
    return client.post("/api/v1/transactions/earn/", {"member": member.pk, "amount": "10.00", "receipt_no": key},
                       format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_an_expired_key_is_refused(issued, member):
    key, secret = issued
    PartnerKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    response = client_for(secret).get(f"/api/v1/members/{member.pk}/balance/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_rotation_keeps_both_keys_live_and_one_idempotency_scope(issued, member):
    old, old_secret = issued
    new, new_secret = partner_key_rotate(key=old)
    assert (new.predecessor_id, new.business_unit_id, new.lineage) == (old.pk, old.business_unit_id, old.prefix)
    first = earn(client_for(old_secret), member, "rotating-1")
    assert first.status_code == 201
    retried = earn(client_for(new_secret), member, "rotating-1")
    assert (retried.status_code, retried.json()["replayed"]) == (200, True)
    assert retried.json()["transaction"]["id"] == first.json()["transaction"]["id"]
    assert earn(client_for(old_secret), member, "rotating-2").status_code == 201

    PartnerKey.objects.filter(pk=old.pk).update(revoked=True)
    from members.selectors import partner_keys

    partner_keys.invalidate()  # a queryset update sends no signal; the admin's save does
    assert earn(client_for(old_secret), member, "rotating-3").status_code == 401
    assert earn(client_for(new_secret), member, "rotating-3").status_code == 201


def test_a_rotation_may_bring_the_old_keys_expiry_forward_never_later(issued):
    old, _secret = issued
    second, _ = partner_key_rotate(key=old, old_expires_in=timedelta(hours=2))
    old.refresh_from_db()
    assert timedelta(hours=1) < old.expiry_date - timezone.now() <= timedelta(hours=2)
    soon = old.expiry_date
    partner_key_rotate(key=old, old_expires_in=timedelta(days=30))
    old.refresh_from_db()
    assert old.expiry_date == soon
    third, _ = partner_key_rotate(key=second)
    assert third.lineage == old.prefix, "the whole chain keeps the first key's scope"


def test_a_revoked_or_expired_key_is_not_rotated(issued):
    old, _secret = issued
    PartnerKey.objects.filter(pk=old.pk).update(revoked=True)
    with pytest.raises(PartnerKeyNotRotatable):
        partner_key_rotate(key=old)
    assert not PartnerKey.objects.filter(predecessor=old).exists()


def test_the_last_use_is_written_once_per_interval(issued, member):
    key, secret = issued
    client = client_for(secret)
    assert client.get(f"/api/v1/members/{member.pk}/balance/").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/api/v1/members/{member.pk}/balance/").status_code == 200
    assert not [q for q in queries if "members_partnerkey" in q["sql"]], "no read or write of the key again"


def test_another_process_within_the_interval_does_not_write_again(issued):
    from members import services

    key, _secret = issued
    now = timezone.now()
    assert partner_key_mark_used(key=key, now=now) is True
    assert partner_key_mark_used(key=key, now=now + timedelta(seconds=30)) is False  # this process remembers
    services._keys_marked.clear()  # another process, which has not written this key yet
    assert partner_key_mark_used(key=key, now=now + timedelta(seconds=30)) is False
    assert partner_key_mark_used(key=key, now=now + timedelta(seconds=91)) is True
    key.refresh_from_db()
    assert key.last_used_at == now + timedelta(seconds=91)


def test_the_console_shows_the_last_use_and_rotates(admin_client, issued, settings):
    settings.LANGUAGE_CODE = "en"
    key, _secret = issued
    partner_key_mark_used(key=key)
    page = admin_client.get("/admin/members/partnerkey/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "Last used" in page.content.decode()
    response = admin_client.post("/admin/members/partnerkey/", {"action": "rotate", "_selected_action": [key.pk]},
                                 follow=True, HTTP_ACCEPT_LANGUAGE="en")
    successor = PartnerKey.objects.get(predecessor=key)
    shown = [str(message) for message in response.context["messages"]]
    assert any(successor.prefix in message and key.prefix in message for message in shown), shown


# --- the rate limit, on Redis -----------------------------------------------------------------


@pytest.fixture
def limiter(settings):
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set")
    settings.RATE_LIMIT_REDIS_URL = url
    client = redis.Redis.from_url(url)
    yield client
    for name in client.scan_iter("ratelimit:partner:*"):
        client.delete(name)
    client.close()


def _fresh_window():
    """Start where a minute's window has room left, so that the requests below share one."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def test_a_key_over_its_limit_is_refused_429_with_retry_after(limiter, issued, member):
    key, secret = issued
    PartnerKey.objects.filter(pk=key.pk).update(rate_limit_per_minute=2)
    from members.selectors import partner_keys

    partner_keys.invalidate()
    _fresh_window()
    client = client_for(secret)
    statuses = [earn(client, member, f"limited-{i}").status_code for i in range(3)]
    assert statuses == [201, 201, 429]
    refused = earn(client, member, "limited-3")
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    from points.models import Posting

    assert Posting.objects.filter(idempotency_key__startswith="limited-").count() == 2


def test_the_count_is_shared_with_another_process(limiter, issued):
    key, _secret = issued
    key.rate_limit_per_minute = 3
    now = time.time() // 60 * 60 + 5  # one instant, early in its window, for both processes
    other = subprocess.run(
        [sys.executable, "-c",
         "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup(); "
         "from members.models import PartnerKey; from members.ratelimit import partner_rate_limit_wait; "
         f"key = PartnerKey(prefix={key.prefix!r}, rate_limit_per_minute=3); "
         f"print([partner_rate_limit_wait(key=key, now={now}) for _ in range(3)])"],
        cwd=django_settings.BASE_DIR, env={**os.environ, "RATE_LIMIT_REDIS_URL": os.environ["TEST_REDIS_URL"]},
        capture_output=True, text=True, timeout=120,
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip().splitlines()[-1] == "[None, None, None]"
    assert partner_rate_limit_wait(key=key, now=now) == 55


def test_without_a_limit_no_count_is_taken(issued, member, settings, monkeypatch):
    from members import ratelimit

    settings.PARTNER_RATE_LIMIT_PER_MINUTE = 0

    def no_round_trip(counter):
        raise AssertionError("counted a key with no limit")

    monkeypatch.setattr(ratelimit, "_count", no_round_trip)
    _key, secret = issued
    assert client_for(secret).get(f"/api/v1/members/{member.pk}/balance/").status_code == 200


def test_the_default_limit_applies_to_a_key_without_its_own(limiter, issued, settings):
    key, _secret = issued
    settings.PARTNER_RATE_LIMIT_PER_MINUTE = 1
    now = time.time() // 60 * 60 + 30
    assert partner_rate_limit_wait(key=key, now=now) is None
    assert partner_rate_limit_wait(key=key, now=now) == 30
    key.rate_limit_per_minute = 0
    assert partner_rate_limit_wait(key=key, now=now) is None, "0 on the key: no limit"


def test_an_unreachable_redis_lets_requests_through(issued, member, settings):
    settings.RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"
    key, secret = issued
    PartnerKey.objects.filter(pk=key.pk).update(rate_limit_per_minute=1)
    from members.selectors import partner_keys

    partner_keys.invalidate()
    client = client_for(secret)
    assert [client.get(f"/api/v1/members/{member.pk}/balance/").status_code for _ in range(2)] == [200, 200]


def test_the_schema_lists_rate_limited_on_partner_operations(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    earn_429 = schema["paths"]["/api/v1/transactions/earn/"]["post"]["responses"]["429"]
    assert "rate_limited" in earn_429["content"]["application/json"]["examples"]
    assert "Retry-After" in earn_429["headers"]

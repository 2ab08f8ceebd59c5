"""The payments console: BU payment settings are editable, keys' presence rules set by actions
of the partner keys' console, payments read-only with their moves."""

import pytest
from django.urls import reverse

from mall.models_payments import Payment
from members.models import PartnerKey

pytestmark = pytest.mark.django_db

KEYS = reverse("admin:members_partnerkey_changelist")


@pytest.fixture
def console(client, operator):
    client.force_login(operator)
    return client


def test_the_actions_set_which_keys_may_spend_without_presence(console, restaurant):
    key, _secret = PartnerKey.objects.create_key(name="parking", business_unit=restaurant)
    assert not key.may_spend_without_presence  # the default of a new key
    page = console.get(KEYS)
    assert page.status_code == 200 and b"parking" in page.content
    assert b"may_spend_without_presence" in page.content  # the column and the filter
    console.post(KEYS, {"action": "allow_without_presence", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.may_spend_without_presence
    assert console.get(KEYS, {"may_spend_without_presence__exact": "1"}).context["cl"].result_count == 1
    console.post(KEYS, {"action": "require_presence", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert not key.may_spend_without_presence


def test_settings_are_editable_and_payments_read_only(console, restaurant, till, payer, pay_code):
    settings_page = console.get(reverse("admin:mall_businessunitpaymentsettings_change",
                                        args=[restaurant.payment_settings.pk]))
    assert settings_page.status_code == 200 and b'name="max_share_percent"' in settings_page.content
    till.post("/api/v1/payments/", {"pay_code": pay_code(payer), "bill_no": "B-1", "bill_amount": "100.00",
                                    "points": 1000}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    payment = Payment.objects.get()
    assert console.get(reverse("admin:mall_payment_changelist")).status_code == 200
    change = console.get(reverse("admin:mall_payment_change", args=[payment.pk]))
    assert change.status_code == 200 and b'name="points"' not in change.content
    assert console.get(reverse("admin:mall_payment_add")).status_code == 403

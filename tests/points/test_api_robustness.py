"""Bad input never yields a 500 and never moves a point; retries racing on one key post once."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from members.models import PartnerKey
from points.models import Posting
from points.selectors import ledger_problems
from points.earning import points_earn
from tests.factories import BusinessUnitFactory, MerchantFactory, enrol_member

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["", "0", "-1", "1.005", "NaN", "Infinity", "1e999", "10.00", "shop1", "2026-02-30T25:00:00"]),
)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=10), children, max_size=3), max_leaves=8)


def bodies(fields):
    """Objects with the endpoint's own field names holding arbitrary JSON, or arbitrary JSON."""
    return st.one_of(st.fixed_dictionaries({}, optional={name: json_values for name in fields}), json_values)


EARN_FIELDS = ["member", "amount", "merchant", "receipt_no", "occurred_at"]
WRITES = {
    "/api/v1/transactions/earn/": EARN_FIELDS,
    "/api/v1/transactions/spend/": ["member", "points", "reason"],
    "/api/v1/transactions/{earned}/reverse/": ["points", "reason"],
    "/api/v1/members/": ["phone", "name", "birthday", "email", "organization", "referral_code", "consent_sms"],
    "/api/v1/auth/otp/": ["phone"],
    "/api/v1/auth/token/": ["phone", "code"],
}


@pytest.mark.django_db
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    url=st.sampled_from(sorted(WRITES) + ["/api/v1/transactions/earn/batch/"]),
    data=st.data(),
    key=st.one_of(st.none(), st.text(max_size=140)),
)
def test_bad_input_never_fails_the_server_nor_moves_points(partner, merchant, member, url, data, key):
    earned = points_earn(member_id=member.pk, business_unit=merchant.business_unit, points=1000).posting
    before = Posting.objects.count()
    if url.endswith("/batch/"):
        body = data.draw(st.one_of(bodies(["items"]), st.fixed_dictionaries(
            {"items": st.lists(st.one_of(bodies(["idempotency_key", *EARN_FIELDS]), json_values), max_size=4)}
        )))
    else:
        body = data.draw(bodies(WRITES[url]))
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key.encode("utf-8", "ignore").decode("latin-1")}
    response = partner.post(url.format(earned=earned.pk), body, format="json", **headers)
    assert response.status_code < 500, response.content
    assert set(response.data) >= ({"results"} if url.endswith("/batch/") and response.status_code == 200
                                  else {"code", "detail"} if response.status_code >= 400 else set())
    if response.status_code >= 400:
        assert Posting.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_retries_racing_on_one_key_post_once():
    """Twelve threads, each on its own connection, send the same earn with the same key."""
    bu = BusinessUnitFactory(code="race-mall")
    MerchantFactory(business_unit=bu, code="shop1")
    member = enrol_member()
    _obj, key = PartnerKey.objects.create_key(name="race", business_unit=bu)
    body = {"member": member.pk, "amount": "99.00", "merchant": "shop1", "receipt_no": "R-race"}
    barrier = threading.Barrier(12)
    answers = []

    def send():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        barrier.wait()
        try:
            response = client.post("/api/v1/transactions/earn/", body, format="json", HTTP_IDEMPOTENCY_KEY="same")
            answers.append((response.status_code, response.data["transaction"]["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _id in answers) == [200] * 11 + [201]
    assert len({posting_id for _status, posting_id in answers}) == 1
    assert Posting.objects.count() == 1
    member.wallet.refresh_from_db()
    assert member.wallet.balance == 99
    assert ledger_problems() == {}
    assert Posting.objects.get().amount_cny == Decimal("99.00")

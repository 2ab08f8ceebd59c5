import os

import pytest
from django.core.cache import cache

from tests.factories import BusinessUnitFactory, MerchantFactory, OperatorFactory, enrol_member

# pytest-django's live server (the contract's fuzz and generated client) listens on loopback only.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")


@pytest.fixture
def bu(db):
    return BusinessUnitFactory(code="mall", name="Central Mall")


@pytest.fixture
def other_bu(db):
    return BusinessUnitFactory(code="hotel", name="Harbour Hotel")


@pytest.fixture
def merchant(bu):
    return MerchantFactory(business_unit=bu, code="shop1")


@pytest.fixture
def member(db):
    return enrol_member(name="Li Lei")


@pytest.fixture
def operator(db):
    return OperatorFactory(username="ops")


@pytest.fixture
def ledger_sound(db):
    """Call at the end of a test: asserts every ledger invariant holds."""
    from points.selectors import ledger_problems

    def check():
        problems = ledger_problems()
        assert problems == {}, problems

    return check


@pytest.fixture
def partner_key():
    """Make a partner API key; returns the key string (shown once, stored hashed). The key may
    spend by member id without the member present unless `without_presence=False` (the default
    of a key made in the console or by the services)."""
    from members.models import PartnerKey

    def make(business_unit, merchant=None, *, without_presence=True):
        _key_object, key = PartnerKey.objects.create_key(name=f"{business_unit.code} POS", business_unit=business_unit,
                                                         merchant=merchant, may_spend_without_presence=without_presence)
        return key

    return make


@pytest.fixture
def partner(bu, partner_key):
    """An API client authenticated as a partner of `bu` (no merchant scope)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {partner_key(bu)}")
    return client


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The earning-rules cache outlives a test's rolled-back database: start every test empty."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _console_second_factor_off(settings):
    """The console's two-factor sign-in for the roles that move points is held by
    tests/operations/test_console_security.py; elsewhere an operator in those roles signs in
    with force_login alone."""
    settings.CONSOLE_OTP_REQUIRED_GROUPS = []

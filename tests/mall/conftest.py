import pytest
from rest_framework.test import APIClient

from members.services import member_token_issue


@pytest.fixture
def member_api():
    """An API client signed in as the given member (Authorization: Bearer <token>)."""

    def make(member):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {member_token_issue(member=member)}")
        return client

    return make


@pytest.fixture
def partner_api(partner_key):
    """An API client of a partner key of the business unit (and merchant) given."""

    def make(business_unit, merchant=None):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {partner_key(business_unit, merchant)}")
        return client

    return make

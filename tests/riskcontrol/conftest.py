"""Fixtures of the risk-control tests: rules made through the service, a reviewer and a second
operator, earns made inside a request scope (device, client address), and the ledger checked
after every test."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from points.earning import points_earn
from points.ledger import Idempotency
from points.selectors import ledger_problems
from riskcontrol.context import risk_request
from riskcontrol.models import RiskRule
from riskcontrol.services import risk_rule_save
from tests.factories import OperatorFactory


@pytest.fixture(autouse=True)
def ledger_checked(request):
    """Every invariant of the ledger holds after every test (checked before the database is
    emptied: the database fixture is this one's dependency)."""
    request.getfixturevalue("transactional_db" if "transactional_db" in request.fixturenames else "db")
    yield
    problems = ledger_problems()
    assert problems == {}, problems


@pytest.fixture
def make_rule(db):
    def make(kind, threshold, *, action="block", window_minutes=None, code=None, is_active=True, **fields) -> RiskRule:
        rule = RiskRule(
            code=code or f"{kind}-{action}-{RiskRule.objects.count()}", name=kind, kind=kind,
            threshold=Decimal(str(threshold)), window_minutes=window_minutes, action=action, is_active=is_active,
            **fields,
        )
        return risk_rule_save(rule=rule)

    return make


def staff(username: str, *groups: str):
    user = OperatorFactory(username=username, is_superuser=False, email=f"{username}@example.com")
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def reviewer(db):
    return staff("reviewer", "risk review")


@pytest.fixture
def checker(db):
    return staff("checker", "finance")


@pytest.fixture
def earn():
    """Earn through the real service inside a request scope; returns the PostingResult."""
    counter = iter(range(1, 1_000_000))

    def do(member, business_unit, amount="100", *, device="", address="", key=None, **fields):
        with risk_request(device_id=device, client_address=address):
            return points_earn(
                member_id=member.pk, business_unit=business_unit, amount_cny=Decimal(amount),
                idempotency=Idempotency(scope="pos", key=key or f"earn-{next(counter)}"), **fields,
            )

    return do

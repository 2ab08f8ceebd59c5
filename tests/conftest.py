import pytest

from tests.factories import BusinessUnitFactory, MerchantFactory, OperatorFactory, enrol_member


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

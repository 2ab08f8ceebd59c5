"""What the hot paths cost in SQL statements: an earn, a redemption, and a bulk earn whose
statement count does not grow with its items. A change that adds a round trip fails here."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from points.batch import CREATED, EarnBatchItem, points_earn_batch
from points.earning import points_earn
from points.ledger import Idempotency
from points.services import points_spend
from tests.factories import enrol_member
from tests.factories import ladder

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiers(db):
    return ladder()


def verbs(queries) -> list[str]:
    """The statements' first words, without the savepoints the test's own transaction adds."""
    return [
        query["sql"].split()[0] for query in queries
        if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))
    ]


def test_an_earn_is_six_statements(bu, member, tiers):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("10"))  # the member's tier row exists
    with CaptureQueriesContext(connection) as queries:
        points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("10"),
                    idempotency=Idempotency(scope="pos", key="k1"))
    # lock the wallet, look for the key, read the tier row, write the posting with its lot, entries
    # and balance, sum the qualifying value, write the tier row
    assert verbs(queries) == ["SELECT", "SELECT", "SELECT", "WITH", "SELECT", "UPDATE"]


def test_a_redemption_is_five_statements(bu, member):
    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100"))
    with CaptureQueriesContext(connection) as queries:
        points_spend(member_id=member.pk, business_unit=bu, points=30, idempotency=Idempotency(scope="pos", key="s"))
    # lock the wallet, look for the key, read the open lots, write everything else, and
    # settlement's after-post hook: the clearing lines, one INSERT ... SELECT
    assert verbs(queries) == ["SELECT", "SELECT", "SELECT", "WITH", "INSERT"]


def _batch_statements(bu, size: int, run: str) -> int:
    members = [enrol_member() for _ in range(size)]
    for member in members:  # every member already has a tier row, as in a running programme
        points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("1"))
    items = [
        EarnBatchItem(idempotency_key=f"{run}-{i}", member_id=member.pk, amount_cny=Decimal("25.00"),
                      receipt_no=f"r{i}", merchant_code="shop1")
        for i, member in enumerate(members)
    ]
    with CaptureQueriesContext(connection) as queries:
        outcomes = points_earn_batch(items=items, business_unit=bu, key_merchant=None, scope="pos")
    assert [outcome.status for outcome in outcomes] == [CREATED] * size
    return len(verbs(queries))


def test_a_bulk_earn_costs_the_same_statements_for_5_items_as_for_50(bu, merchant, tiers):
    _batch_statements(bu, 1, "warm")  # the merchant and configuration caches filled
    assert _batch_statements(bu, 5, "a") == _batch_statements(bu, 50, "b") <= 9


def test_a_hold_and_its_capture_cost_what_they_cost(bu, member):
    from points.ledger import hold_capture, hold_place

    points_earn(member_id=member.pk, business_unit=bu, amount_cny=Decimal("100"))
    with CaptureQueriesContext(connection) as placing:
        hold = hold_place(member_id=member.pk, points=30, business_unit=bu, purpose="pos_bill",
                          idempotency=Idempotency(scope="pos", key="h")).hold
    # lock the wallet, look for the key, read the open lots, insert the hold, its allocations and
    # its event, write the lots' and the wallet's held points
    assert verbs(placing) == ["SELECT", "SELECT", "SELECT", "INSERT", "INSERT", "INSERT", "UPDATE", "UPDATE"]
    with CaptureQueriesContext(connection) as capturing:
        hold_capture(hold_id=hold.pk, idempotency=Idempotency(scope="pos", key="c"))
    # find the hold's wallet, lock it, read the hold, look for the key, read the allocations and
    # their lots, write the posting with everything else (and settlement's clearing lines, one
    # INSERT ... SELECT in the after-post hook), move the hold, write its event
    assert verbs(capturing) == [
        "SELECT", "SELECT", "SELECT", "SELECT", "SELECT", "SELECT", "WITH", "INSERT", "UPDATE", "INSERT",
    ]



def test_a_members_mall_order_costs_what_it_costs(bu, member):
    """A member's own booking (no tier programme): an organization's orders take another path and
    must not add a statement to this one."""
    from mall.services import order_place
    from tests.factories import bookable, fund

    fund(member, 5000, bu)
    item = bookable(business_unit=bu, price_points=100)
    slot = item.slots.get()
    order_place(member_id=member.pk, item_id=item.pk, slot_id=slot.pk, idempotency_key="warm")
    with CaptureQueriesContext(connection) as queries:
        order_place(member_id=member.pk, item_id=item.pk, slot_id=slot.pk, idempotency_key="o")
    # lock the wallet, look for the key, lock the item, lock the slot, sum the member's usage of
    # the item, read the open lots, write the posting with everything else (and settlement's
    # clearing lines), take the place of the slot, insert the order and its event, check the
    # new code is free, insert the coupon and its event
    assert verbs(queries) == [
        "SELECT", "SELECT", "SELECT", "SELECT", "SELECT", "SELECT", "WITH", "INSERT", "UPDATE", "INSERT", "INSERT",
        "SELECT", "INSERT", "INSERT",
    ]

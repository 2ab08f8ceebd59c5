"""The set-wise bulk earn gives exactly what points_earn gives, item after item, in order.

Two worlds start alike (fresh members, the same tier ladder and rules); one earns a batch
through points_earn_batch, the other the same items one by one through points_earn. Every
outcome, posting, lot, balance and tier must match, member for member."""

import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import points.batch
from config.errors import DomainError
from members.models import MemberStatus, MerchantCategory
from points.batch import CREATED, ERROR, NO_POINTS, REPLAYED, EarnBatchItem, points_earn_batch
from points.models import Lot, Posting, RuleEffect, RuleScope, Wallet
from points.earning import points_earn
from points.ledger import Idempotency
from points.timeutils import local_date
from tests.factories import MerchantFactory, enrol_member
from tests.factories import EarningRuleFactory
from tests.factories import ladder
from tiers.models import MemberTier, TierChange

MEMBERS = 4  # the last one is closed: its items must fail alike

batches = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=MEMBERS - 1),
        st.sampled_from(["0.50", "9.99", "120.00", "999.00", "4100.00"]),
        st.integers(min_value=0, max_value=7),  # idempotency key: repeats replay or conflict
    ),
    min_size=1,
    max_size=14,
)


@pytest.fixture
def world(db, bu):
    """The tier ladder, a stateless purchase rule and the merchant both worlds book to."""
    ladder()
    merchant = MerchantFactory(business_unit=bu, code="shop1", category=MerchantCategory.FOOD)
    EarningRuleFactory(code="food-double", effect=RuleEffect.MULTIPLIER, points=None, multiplier=Decimal("2"),
                       merchant_category=MerchantCategory.FOOD, scope=RuleScope.CATEGORY)
    return merchant


def _members():
    members = [enrol_member() for _ in range(MEMBERS)]
    members[-1].status = MemberStatus.CLOSED
    members[-1].save()
    return members


def _sequential(items, members_by_id, *, bu, merchant, scope):
    """The reference: points_earn for each item in order, as a client calling one by one would."""
    outcomes = []
    for item in items:
        try:
            result = points_earn(
                member_id=item.member_id, business_unit=bu, merchant=merchant, amount_cny=item.amount_cny,
                receipt_no=item.receipt_no, idempotency=Idempotency(scope=scope, key=item.idempotency_key),
            )
        except DomainError as exc:
            outcomes.append((ERROR, exc.as_dict()["code"], None))
            continue
        status = NO_POINTS if result.posting is None else REPLAYED if result.replayed else CREATED
        outcomes.append((status, None, result.posting))
    return outcomes


def _state(members):
    """Everything an earn leaves behind, per member position (ids and moments of the request
    differ between worlds: a lot's availability is compared by day)."""
    state = []
    for member in members:
        wallet = Wallet.objects.get(member=member)
        member_tier = MemberTier.objects.filter(member=member).select_related("level").first()
        state.append({
            "wallet": (wallet.balance, wallet.debt),
            "postings": sorted(
                (p.points, p.amount_cny, str(p.explanation)) for p in Posting.objects.filter(wallet=wallet)
            ),
            "lots": sorted(
                (lot.amount, lot.remaining, lot.expires_at, local_date(lot.available_at), lot.rule_code)
                for lot in Lot.objects.filter(wallet=wallet)
            ),
            "tier": (member_tier.level.code, member_tier.qualifying_value) if member_tier else None,
            "tier_changes": list(
                TierChange.objects.filter(member=member).order_by("id").values_list("kind", "to_level__code")
            ),
        })
    return state


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches)
def test_the_set_wise_batch_equals_one_earn_after_another(bu, world, monkeypatch, batch):
    monkeypatch.setattr(points.batch, "points_earn", None)  # the batch must not fall back to single earns
    run = uuid.uuid4().hex[:8]
    together, one_by_one = _members(), _members()

    def items_for(members):
        return [
            EarnBatchItem(idempotency_key=f"{run}-{key}", member_id=members[position].pk,
                          amount_cny=Decimal(amount), receipt_no=f"r{key}", merchant_code="shop1")
            for position, amount, key in batch
        ]

    got = points_earn_batch(items=items_for(together), business_unit=bu, key_merchant=None, scope="batch")
    expected = _sequential(items_for(one_by_one), {}, bu=bu, merchant=world, scope="single")

    position_of = {member.pk: i for members in (together, one_by_one) for i, member in enumerate(members)}
    assert [
        (outcome.status, outcome.error["code"] if outcome.error else None,
         outcome.posting and (outcome.posting.points, position_of[outcome.posting.wallet.member_id]))
        for outcome in got
    ] == [
        (status, code, posting and (posting.points, position_of[posting.wallet.member_id]))
        for status, code, posting in expected
    ]
    assert _state(together) == _state(one_by_one)


def test_a_repeated_member_is_earned_in_a_later_round_at_its_new_tier(bu, world):
    member = enrol_member()
    items = [
        EarnBatchItem(idempotency_key=f"k{i}", member_id=member.pk, amount_cny=Decimal(amount), receipt_no=f"r{i}",
                      merchant_code="shop1")
        for i, amount in enumerate(["500.00", "100.00"])
    ]
    first, second = points_earn_batch(items=items, business_unit=bu, key_merchant=None, scope="s")
    assert first.posting.points == 1000, "doubled by the food rule; crosses Silver at the old multiplier"
    assert second.posting.points == 250, "the second item is priced at Silver's 1.25"
    assert MemberTier.objects.get(member=member).level.code == "silver"


def test_a_rule_reading_history_keeps_the_batch_one_earn_at_a_time(bu, world, monkeypatch):
    EarningRuleFactory(code="first-buy", points=50, first_purchase=True)
    monkeypatch.setattr(points.batch, "_earn_together", None)  # must not be reached
    member = enrol_member()
    items = [
        EarnBatchItem(idempotency_key=f"k{i}", member_id=member.pk, amount_cny=Decimal("10.00"), receipt_no=f"r{i}",
                      merchant_code="shop1")
        for i in range(2)
    ]
    first, second = points_earn_batch(items=items, business_unit=bu, key_merchant=None, scope="s")
    assert (first.posting.points, second.posting.points) == (70, 20)

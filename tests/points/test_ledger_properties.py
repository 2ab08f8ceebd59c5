"""Property-based test of the ledger: random sequences of every operation, checked at each step.

A hypothesis state machine drives earn (purchase amount or fixed points, backdated or not,
pending or not), spend, refund and cancel (full, partial, too large), expiry runs on a fake
clock, adjustments (+/-), freeze and unfreeze, holds (place, capture all or part, void, expire
on the fake clock and the sweep), replays of earlier idempotency keys, retries of refused spends
under their key and reuse of a key for another request, across two members and two business
units. Next to the database it keeps its own model of every member's lots and
debt, written from the rules of DESIGN.md and the policy in points.services, and after every
step it asserts that:

* every ledger invariant holds (points.selectors.ledger_problems() == {});
* each wallet's balance, debt and frozen flag, and each lot's remaining points, equal the model;
* the selector's available / pending split equals the model.

Time: django.utils.timezone.now is patched to a fake clock that only the machine moves, and
expiry runs get that clock as `now`. The run stays in one test transaction (rolled back at the
end); `SET CONSTRAINTS ALL IMMEDIATE` makes the deferred balance trigger fire at each statement
instead of at a commit that never comes. Every example enrols fresh members and uses its own
idempotency keys, so examples do not see each other's data.
"""

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from math import floor
from unittest import mock

import pytest
from django.db import connection
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from points.exceptions import (
    AccountFrozen,
    HoldExpired,
    IdempotencyConflict,
    InsufficientPoints,
    ReversalExceedsOriginal,
)
from points.expiry import expiry_run_batch
from points.models import Lot, Wallet
from points.selectors import ledger_problems, member_balance, wallet_balance
from points.rules.selectors import rule_configs
from points.earning import points_earn
from points.ledger import Idempotency, hold_capture, hold_place, hold_void, holds_release_expired
from points.services import points_adjust, points_spend, posting_reverse, wallet_freeze, wallet_unfreeze
from points.timeutils import expiry_after_months
from tests.factories import BusinessUnitFactory, OperatorFactory, enrol_member

START = datetime(2026, 3, 10, 1, 30, tzinfo=UTC)
MEMBERS = 2


@dataclass
class ModelLot:
    id: int
    remaining: int
    earned_at: datetime
    available_at: datetime
    expires_at: datetime
    held: int = 0
    expired: int = 0  # what expiry runs took from it: breakage a refund of its earn may reclaim

    @property
    def free(self):
        return self.remaining - self.held

    @property
    def order(self):
        return (self.expires_at, self.earned_at, self.id)


@dataclass
class ModelHold:
    pk: int
    points: int
    expires_at: datetime
    allocations: list[tuple[int, int]]
    status: str = "held"


@dataclass
class ModelMember:
    pk: int
    debt: int = 0
    frozen: bool = False
    lots: dict[int, ModelLot] = field(default_factory=dict)
    holds: list[ModelHold] = field(default_factory=list)

    def open_lots(self):
        """Lots with free points (not reserved by a hold), in consumption order."""
        return sorted((lot for lot in self.lots.values() if lot.free > 0), key=lambda lot: lot.order)

    def spendable(self, now):
        return [lot for lot in self.open_lots() if lot.available_at <= now <= lot.expires_at]

    def free(self, lots):
        return sum(lot.free for lot in lots)

    @property
    def held(self):
        return sum(lot.held for lot in self.lots.values())

    def take(self, lots, points):
        """Take up to `points` free points from `lots` in order; return {lot id: taken}."""
        taken = {}
        for lot in lots:
            if points == 0:
                break
            part = min(lot.free, points)
            if not part:
                continue
            lot.remaining -= part
            points -= part
            taken[lot.id] = part
        return taken

    def release(self, hold, status):
        for lot_id, points in hold.allocations:
            self.lots[lot_id].held -= points
        hold.status = status

    def repay_debt(self):
        """Released points repay the debt first, out of the free points, earliest expiry first."""
        repaid = min(self.debt, self.free(self.open_lots()))
        self.take(self.open_lots(), repaid)
        self.debt -= repaid

    def release_expired(self, now):
        expired = [hold for hold in self.holds if hold.status == "held" and hold.expires_at <= now]
        for hold in expired:
            self.release(hold, "expired")
        if expired:
            self.repay_debt()
        return bool(expired)

    def spendable_for(self, points, now):
        """The spendable lots, the expired holds released first when they are short (as the ledger does)."""
        if self.free(self.spendable(now)) < points and self.held:
            self.release_expired(now)
        return self.spendable(now)

    def credit(self, posting, points):
        """New points repay the debt first; the rest lands in the posting's new lot(s)."""
        repaid = min(points, self.debt)
        self.debt -= repaid
        new_lots = list(Lot.objects.filter(posting=posting))
        assert sum(lot.amount for lot in new_lots) == points - repaid
        for lot in new_lots:
            assert lot.remaining == lot.amount
            self.lots[lot.id] = ModelLot(lot.id, lot.amount, lot.earned_at, lot.available_at, lot.expires_at)
        return new_lots


@dataclass
class ModelPosting:
    pk: int
    member: int
    kind: str
    points: int
    reversed: int = 0
    reclaimed: int = 0  # of an earn: what its refunds took back from its lots' breakage
    taken: dict[int, int] = field(default_factory=dict)

    @property
    def reversible(self):
        return self.points - self.reversed


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, bus, operator, clock):
        super().__init__()
        self.bus = bus
        self.operator = operator
        self.clock = clock
        clock[0] = START
        self.prefix = uuid.uuid4().hex[:12]
        self.keys = 0
        self.members = [ModelMember(enrol_member(name=f"Member {i}").pk) for i in range(MEMBERS)]
        self.postings: dict[int, ModelPosting] = {}
        self.replayable: list[tuple] = []
        self.refused: list[tuple] = []
        self.checked = -1

    @property
    def now(self):
        return self.clock[0]

    def new_key(self):
        self.keys += 1
        return Idempotency(scope="partner:machine", key=f"{self.prefix}-{self.keys}")

    def remember(self, key, call, kwargs, posting):
        if key is not None:
            self.replayable.append((key, call, kwargs, posting.pk))

    # --- operations --------------------------------------------------------------------

    @initialize(opening=st.lists(st.integers(0, 1000), min_size=MEMBERS, max_size=MEMBERS))
    def open_balances(self, opening):
        """Most sequences start from members who hold points, so that spends and reversals happen."""
        for who, points in enumerate(opening):
            if points:
                self.earn(who=who, bu=0, fixed=True, points=points, cents=0, days_back=0, keyed=True)

    @rule(
        who=st.integers(0, MEMBERS - 1), bu=st.integers(0, 1), fixed=st.booleans(),
        points=st.integers(1, 300), cents=st.integers(0, 30_000), days_back=st.sampled_from([0, 0, 0, 1, 5, 29]),
        keyed=st.booleans(),
    )
    def earn(self, who, bu, fixed, points, cents, days_back, keyed):
        member, business_unit = self.members[who], self.bus[bu]
        key = self.new_key() if keyed else None
        occurred_at = self.now - timedelta(days=days_back) if days_back else None
        kwargs = {"member_id": member.pk, "business_unit": business_unit, "occurred_at": occurred_at}
        if fixed:
            kwargs["points"] = points
        else:
            amount = Decimal(cents) / 100
            kwargs["amount_cny"] = amount
            points = floor(Fraction(cents, 100) * Fraction(business_unit.earn_rate))
        result = points_earn(**kwargs, idempotency=key)
        if not points:
            assert result.posting is None and not result.replayed, "an earn of nothing writes nothing"
            return
        assert not result.replayed and result.posting.points == points
        earned_at = occurred_at or self.now
        for lot in member.credit(result.posting, points):
            assert lot.earned_at == earned_at
            assert lot.available_at == earned_at + timedelta(days=business_unit.pending_days)
            assert lot.expires_at == expiry_after_months(earned_at, business_unit.expiry_months)
        self.postings[result.posting.pk] = ModelPosting(result.posting.pk, who, "earn", points)
        self.remember(key, points_earn, kwargs, result.posting)

    @rule(
        who=st.integers(0, MEMBERS - 1), bu=st.integers(0, 1), how=st.sampled_from(["part", "part", "all", "over"]),
        percent=st.integers(1, 100), keyed=st.booleans(),
    )
    def spend(self, who, bu, how, percent, keyed):
        """Spend part of, all of, or one point more than what the model says is available."""
        available = self.members[who].free(self.members[who].spendable(self.now))
        points = max(1, {"part": available * percent // 100, "all": available, "over": available + 1}[how])
        self.spend_points(who, bu, points, self.new_key() if keyed else None)

    @precondition(lambda self: self.refused)
    @rule(data=st.data())
    def retry_refused_spend(self, data):
        """A refused request stored nothing: its retry under the same key is judged afresh."""
        who, bu, points, key = data.draw(st.sampled_from(self.refused), label="retried")
        self.refused.remove((who, bu, points, key))
        self.spend_points(who, bu, points, key)

    def spend_points(self, who, bu, points, key):
        # Tried on a copy: a refused spend rolls back the release of expired holds it began with.
        member = copy.deepcopy(self.members[who])
        kwargs = {"member_id": member.pk, "points": points, "business_unit": self.bus[bu]}
        spendable = member.spendable(self.now) if member.frozen else member.spendable_for(points, self.now)
        if member.frozen or member.free(spendable) < points:
            event("spend refused")
            with pytest.raises(AccountFrozen if member.frozen else InsufficientPoints):
                points_spend(**kwargs, idempotency=key)
            if key is not None:
                self.refused.append((who, bu, points, key))
            return
        event("spend")
        result = points_spend(**kwargs, idempotency=key)
        assert not result.replayed and result.posting.points == -points
        self.members[who] = member
        taken = member.take(spendable, points)
        self.postings[result.posting.pk] = ModelPosting(result.posting.pk, who, "spend", points, taken=taken)
        self.remember(key, points_spend, kwargs, result.posting)

    @precondition(lambda self: any(p.reversible > 0 for p in self.postings.values()))
    @rule(data=st.data(), mode=st.sampled_from(["full", "part", "part", "too-much"]), keyed=st.booleans())
    def reverse(self, data, mode, keyed):
        original = data.draw(st.sampled_from(sorted(
            (p for p in self.postings.values() if p.reversible > 0), key=lambda p: p.pk)), label="original")
        member = self.members[original.member]
        key = self.new_key() if keyed else None
        amount = {
            "full": None,
            "part": data.draw(st.integers(1, original.reversible), label="points"),
            "too-much": original.reversible + 1,
        }[mode]
        kwargs = {"posting_id": original.pk, "points": amount, "reason": "machine"}
        if mode == "too-much":
            with pytest.raises(ReversalExceedsOriginal):
                posting_reverse(**kwargs, idempotency=key)
            return
        amount = amount or original.reversible
        result = posting_reverse(**kwargs, idempotency=key)
        assert not result.replayed
        original.reversed += amount
        if original.kind == "earn":
            # The earn's own lots first, then what of them expired (reclaimed from breakage, not
            # the member's), then the member's other points, then debt.
            own_ids = set(Lot.objects.filter(posting_id=original.pk).values_list("id", flat=True))
            own = [lot for lot in member.open_lots() if lot.id in own_ids]
            others = [lot for lot in member.open_lots() if lot not in own]
            left = amount - sum(member.take(own, amount).values())
            reclaim = min(left, sum(member.lots[i].expired for i in own_ids if i in member.lots) - original.reclaimed)
            original.reclaimed += reclaim
            left -= reclaim
            left -= sum(member.take(others, left).values())
            member.debt += left
            assert result.posting.points == -(amount - reclaim)
            event("refund" + (" reclaiming breakage" if reclaim else "") + (" into debt" if left else ""))
        else:
            assert result.posting.points == amount
            repaid = min(amount, member.debt)
            member.debt -= repaid
            event("cancel" + (" repaying debt" if repaid else ""))
            left, regranted = amount - repaid, 0
            for lot_id in sorted(original.taken, key=lambda i: member.lots[i].order, reverse=True):
                give = min(original.taken[lot_id], left)
                left -= give
                if member.lots[lot_id].expires_at < self.now:
                    regranted += give  # a new lot: the expired one takes nothing back
                    continue
                member.lots[lot_id].remaining += give
                original.taken[lot_id] -= give
            new_lots = list(Lot.objects.filter(posting=result.posting))
            assert sum(lot.amount for lot in new_lots) == regranted
            for lot in new_lots:
                event("cancel regranting expired points")
                member.lots[lot.id] = ModelLot(lot.id, lot.amount, lot.earned_at, lot.available_at, lot.expires_at)
        self.remember(key, posting_reverse, kwargs, result.posting)

    @rule(days=st.sampled_from([0, 1, 2, 4, 10]))
    def advance_clock(self, days):
        self.clock[0] = self.now + timedelta(days=days, hours=1)

    @rule(days=st.sampled_from([0, 1, 7, 32, 32, 400]), batch_size=st.integers(1, 3))
    def run_expiry(self, days, batch_size):
        self.clock[0] = self.now + timedelta(days=days, seconds=1)
        cursor = 0
        while cursor is not None:
            _, cursor = expiry_run_batch(now=self.now, after_wallet_id=cursor, batch_size=batch_size)
        for member in self.members:
            for lot in member.open_lots():
                if lot.expires_at < self.now:
                    event("lot expired")
                    lot.expired += lot.remaining - lot.held
                    lot.remaining = lot.held

    @rule(who=st.integers(0, MEMBERS - 1), bu=st.integers(0, 1), points=st.integers(-300, 300).filter(bool))
    def adjust(self, who, bu, points):
        member, business_unit = self.members[who], self.bus[bu]
        kwargs = {"member_id": member.pk, "points": points, "business_unit": business_unit, "reason": "machine",
                  "actor": self.operator}
        key = self.new_key()
        if points < 0 and member.free(member.open_lots()) < -points:
            with pytest.raises(InsufficientPoints):
                points_adjust(**kwargs, idempotency=key)
            return
        result = points_adjust(**kwargs, idempotency=key)
        assert result.posting.points == points
        if points > 0:
            for lot in member.credit(result.posting, points):
                assert (lot.earned_at, lot.available_at) == (self.now, self.now)
                assert lot.expires_at == expiry_after_months(self.now, business_unit.expiry_months)
        else:
            member.take(member.open_lots(), -points)
        self.remember(key, points_adjust, kwargs, result.posting)

    @rule(who=st.integers(0, MEMBERS - 1), percent=st.integers(1, 110), minutes=st.sampled_from([1, 15, 60 * 24 * 3]))
    def place_hold(self, who, percent, minutes):
        member = copy.deepcopy(self.members[who])  # as in spend_points: a refusal rolls the releases back
        points = max(1, member.free(member.spendable(self.now)) * percent // 100)
        kwargs = {"member_id": member.pk, "points": points, "business_unit": self.bus[0], "purpose": "machine",
                  "expires_in": timedelta(minutes=minutes)}
        spendable = member.spendable(self.now) if member.frozen else member.spendable_for(points, self.now)
        if member.frozen or member.free(spendable) < points:
            event("hold refused")
            with pytest.raises(AccountFrozen if member.frozen else InsufficientPoints):
                hold_place(**kwargs, idempotency=self.new_key())
            return
        event("hold placed")
        hold = hold_place(**kwargs, idempotency=self.new_key()).hold
        self.members[who] = member
        allocations, left = [], points
        for lot in spendable:
            if not left:
                break
            part = min(lot.free, left)
            lot.held += part
            left -= part
            allocations.append((lot.id, part))
        expected_end = min([self.now + timedelta(minutes=minutes), *(member.lots[i].expires_at for i, _ in allocations)])
        assert hold.expires_at == expected_end, "a hold is shortened to the life of its lots"
        member.holds.append(ModelHold(hold.pk, points, hold.expires_at, allocations))

    def open_holds(self):
        return sorted(
            ((who, hold) for who, member in enumerate(self.members) for hold in member.holds if hold.status == "held"),
            key=lambda pair: pair[1].pk,
        )

    @precondition(lambda self: self.open_holds())
    @rule(data=st.data(), part=st.booleans())
    def capture_hold(self, data, part):
        who, hold = data.draw(st.sampled_from(self.open_holds()), label="hold")
        member = self.members[who]
        points = data.draw(st.integers(1, hold.points), label="captured") if part else None
        if hold.expires_at <= self.now:
            event("capture after expiry refused")
            with pytest.raises(HoldExpired):
                hold_capture(hold_id=hold.pk, points=points)
            return
        if member.frozen:
            with pytest.raises(AccountFrozen):
                hold_capture(hold_id=hold.pk, points=points)
            return
        event("hold captured" + (" in part" if part else ""))
        _result, posting = hold_capture(hold_id=hold.pk, points=points)
        amount = points or hold.points
        assert posting.points == -amount
        taken, left = {}, amount
        for lot_id, allocated in hold.allocations:
            lot = member.lots[lot_id]
            lot.held -= allocated
            take = min(allocated, left)
            lot.remaining -= take
            left -= take
            if take:
                taken[lot_id] = take
        hold.status = "captured"
        member.repay_debt()
        self.postings[posting.pk] = ModelPosting(posting.pk, who, "spend", amount, taken=taken)

    @precondition(lambda self: self.open_holds())
    @rule(data=st.data())
    def void_hold(self, data):
        who, hold = data.draw(st.sampled_from(self.open_holds()), label="hold")
        member = self.members[who]
        result = hold_void(hold_id=hold.pk)
        status = "expired" if hold.expires_at <= self.now else "voided"
        event(f"hold {status} by void")
        assert result.hold.status == status
        member.release(hold, status)
        member.repay_debt()

    @rule()
    def sweep_holds(self):
        released, _more = holds_release_expired(now=self.now)
        expected = 0
        for member in self.members:
            before = sum(1 for hold in member.holds if hold.status == "expired")
            member.release_expired(self.now)
            expected += sum(1 for hold in member.holds if hold.status == "expired") - before
        # Earlier examples' members share the database (one test transaction): their holds count too.
        assert released >= expected

    @rule(who=st.integers(0, MEMBERS - 1))
    def toggle_freeze(self, who):
        member = self.members[who]
        service = wallet_unfreeze if member.frozen else wallet_freeze
        wallet = service(member_id=member.pk, reason="machine", actor=self.operator)
        member.frozen = not member.frozen
        assert wallet.is_frozen == member.frozen

    @precondition(lambda self: self.replayable)
    @rule(data=st.data())
    def replay(self, data):
        key, call, kwargs, posting_pk = data.draw(st.sampled_from(self.replayable), label="replayed")
        result = call(**kwargs, idempotency=key)
        assert result.replayed and result.posting.pk == posting_pk

    @precondition(lambda self: self.replayable)
    @rule(data=st.data())
    def reuse_key_for_another_request(self, data):
        key, call, kwargs, _ = data.draw(st.sampled_from(self.replayable), label="reused")
        changed = dict(kwargs, reason="another request")
        with pytest.raises(IdempotencyConflict):
            call(**changed, idempotency=key)

    # --- checks after every step -------------------------------------------------------

    @invariant()
    def ledger_is_sound(self):
        assert ledger_problems() == {}

    @invariant()
    def database_matches_the_model(self):
        members = {member.pk: member for member in self.members}
        wallets = {w.member_id: w for w in Wallet.objects.filter(member_id__in=members)}
        stored_lots = {pk: {} for pk in members}
        for lot_id, member_pk, remaining, held in Lot.objects.filter(wallet__member_id__in=members).values_list(
            "id", "wallet__member_id", "remaining", "held"
        ):
            stored_lots[member_pk][lot_id] = (remaining, held)
        for member in self.members:
            wallet = wallets[member.pk]
            expected_balance = sum(lot.remaining for lot in member.lots.values())
            assert (wallet.balance, wallet.debt, wallet.held, wallet.is_frozen) == (
                expected_balance, member.debt, member.held, member.frozen)
            assert stored_lots[member.pk] == {lot.id: (lot.remaining, lot.held) for lot in member.lots.values()}

    @invariant()
    def balance_selector_matches_the_model(self):
        """One member per step, in turn (the selectors' queries are the slow part of a step); the
        API's one-statement balance equals the wallet's."""
        self.checked += 1
        member = self.members[self.checked % MEMBERS]
        balance = wallet_balance(wallet=Wallet.objects.get(member_id=member.pk), now=self.now)
        assert member_balance(member_id=member.pk, now=self.now) == balance
        lots = [lot for lot in member.lots.values() if lot.remaining > 0]
        held = sum(hold.points for hold in member.holds if hold.status == "held" and hold.expires_at > self.now)
        pending = sum(lot.remaining for lot in lots if lot.available_at > self.now and lot.expires_at >= self.now)
        expired = sum(lot.remaining for lot in lots if lot.expires_at < self.now)
        spendable = sum(lot.remaining for lot in lots) - pending - expired - held
        owed = min(spendable, member.debt) if member.debt and spendable > 0 else 0  # repays the debt when released
        spendable -= owed
        assert balance.held == held + owed, "a hold past its expiry is shown as held only while it owes the debt"
        assert (balance.available, balance.frozen) == ((0, spendable) if member.frozen else (spendable, 0))
        assert (balance.pending, balance.expired_unswept) == (pending, expired)


@pytest.mark.django_db
def test_random_operation_sequences_keep_the_ledger_sound():
    rule_configs.invalidate()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    bus = [
        BusinessUnitFactory(code="machine-mall", earn_rate=Decimal("1"), pending_days=0, expiry_months=12),
        BusinessUnitFactory(code="machine-hotel", earn_rate=Decimal("2.5"), pending_days=3, expiry_months=1),
    ]
    for business_unit in bus:
        business_unit.refresh_from_db()
    operator = OperatorFactory(username="machine")
    clock = [START]
    with mock.patch("django.utils.timezone.now", lambda: clock[0]):
        run_state_machine_as_test(
            lambda: LedgerMachine(bus, operator, clock),
            settings=settings(
                max_examples=30, stateful_step_count=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            ),
        )

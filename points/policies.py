"""The explicit interface through which apps above points take part in every posting.

points never imports tiers, riskcontrol, mall or settlement. Instead they register here, in
their AppConfig.ready, and the ledger calls what is registered, in order, inside its
transaction. A reader of the ledger sees every call; nothing runs through signals.

- the tier provider (one, from tiers): the member's tier code, earn multiplier and expiry
  extension, used by the rules engine and the lot's expiry;
- earn gates (any number, e.g. from riskcontrol): called with the EarnContext before anything is
  posted, under the wallet lock, in the earn's transaction (what a gate writes rolls back with a
  refused earn); may refuse an earn by raising a DomainError, or ask that the new lots be held by
  returning a datetime until which they stay pending (None: no hold). A hold later than every
  lot's expiry is capped at it: a lot available only at its expiry is held for review, and
  counts for nothing that needs points to be available (tiers leave it out);
- after-earn hooks (any number, e.g. tiers' immediate upgrade): called as hook(posting=, wallet=,
  tier=) after the posting is written, in the same transaction, with the wallet row locked;
  `tier` is what the tier provider returned for this earn.
- spend gates (any number, e.g. from riskcontrol): called with a SpendContext before a spend, a
  hold or a hold's capture is written, under the wallet lock; a gate refuses by raising a
  DomainError (a refusal that asks for review is a DomainError of the gate's own, whose code
  says so) and returns nothing otherwise.
- after-post hooks (any number, e.g. settlement's clearing lines): called as hook(posting=,
  wallet=) after every posting of any kind is written (points.ledger.writer), in the same
  transaction, with the wallet row locked.
- adjust gates (any number, e.g. riskcontrol's maker-checker): called with an AdjustContext by
  points.services.points_adjust before it opens its transaction (no lock held), so a gate may
  write in a transaction of its own (e.g. record a request for a second operator's approval);
  it refuses by raising a DomainError and returns nothing otherwise.
- the payment earn amount (one, from mall): what a purchase earn naming a payment with points
  counts, `payment_earn_amount(payment_id=, member_id=, business_unit=, bill_amount=)` -> the
  Decimal amount that earns (the cash part when the BU's points part does not earn); it refuses
  a payment that is not the member's, not the BU's or not captured by raising a DomainError.
- the tier progress provider (one, from tiers): the member's tier, the next one and what is
  still needed at a moment, for statements and near-upgrade nudges (reads only, outside any
  posting).
- reserved hold purposes (any number, e.g. mall's `payment`): a purpose an app above points
  places holds for, as one step of an operation whose own rows move with the hold. The ledger's
  stand-alone hold functions (hold_place, hold_capture, hold_void, and so the holds API) refuse a
  reserved purpose (`hold_reserved`); the app moves its holds with the `_locked` variants inside
  its own transaction, and the expiry sweep releases them as any other.
- redemption channels (any number, e.g. from mall): how a statement tells what a redemption
  paid for from what its posting carries (a system idempotency key's prefix such as
  `mall-order:`, a captured hold's purpose such as `payment`); read by statements only.

The bulk earn prices and posts many members' purchases together. A provider or hook may
register a `many` version for it, which does for a list what the single one does for each
element (one query for all rather than one each); without one, the single one is called per earn.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from config.errors import NotFound
from members.models import BusinessUnit, Member, Merchant


@dataclass(frozen=True)
class TierInfo:
    """The member's tier benefits. `provider_state` is whatever the provider wants back in its
    after-earn hook (tiers passes the member-tier row it read, to save reading it again under the
    same lock); points never looks at it."""

    code: str
    earn_multiplier: Decimal = Decimal("1")
    expiry_extension_months: int = 0
    provider_state: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class EarnContext:
    """What an earn gate sees: the event as the partner sent it (the receipt number empty when
    none was given), before it is priced."""

    member: Member
    business_unit: BusinessUnit
    merchant: Merchant | None
    event_type: str
    amount_cny: Decimal | None
    occurred_at: datetime
    receipt_no: str = ""


@dataclass(frozen=True)
class EarnDone:
    """One earn written by the bulk earn, as its after-earn hooks see it."""

    posting: object
    wallet: object
    tier: TierInfo | None


@dataclass(frozen=True)
class SpendContext:
    """What a spend gate sees. `operation` is "spend", "hold" or "capture". `member` is None for
    an organization's wallet, whose spends no gate sees."""

    operation: str
    member: Member | None
    business_unit: BusinessUnit
    merchant: Merchant | None
    points: int
    at: datetime


@dataclass(frozen=True)
class AdjustContext:
    """What an adjust gate sees: an operator's manual adjustment, before anything is posted.
    `idempotency` is the adjustment's points.ledger.Idempotency (or None)."""

    member_id: int
    points: int
    business_unit: BusinessUnit
    reason: str
    actor: object
    idempotency: object = None


TierProvider = Callable[[Member, datetime], TierInfo | None]
TierProviderMany = Callable[[list[tuple[Member, datetime]]], list[TierInfo | None]]
EarnGate = Callable[[EarnContext], datetime | None]
AfterEarnHook = Callable[..., None]
AfterEarnHookMany = Callable[[list[EarnDone]], None]
SpendGate = Callable[[SpendContext], None]
AfterPostHook = Callable[..., None]
AdjustGate = Callable[[AdjustContext], None]


@dataclass(frozen=True)
class TierProgressInfo:
    """The member's tier and the way to the next one, as statements and nudges show it.
    `remaining` is in the programme's qualifying unit (`basis`: "points" or "spend", CNY);
    `next_code`, `next_name` and `remaining` are None at the top tier."""

    code: str
    name: str
    basis: str
    qualifying_value: Decimal
    next_code: str | None = None
    next_name: str | None = None
    remaining: Decimal | None = None
    downgrade_due_at: datetime | None = None


TierProgressProvider = Callable[[int, datetime], TierProgressInfo | None]
TierProgressProviderMany = Callable[[list[int], datetime], dict[int, TierProgressInfo | None]]


@dataclass(frozen=True)
class RedemptionChannel:
    """A kind of redemption as statements show it (`name`, e.g. "mall_order"): the spends booked
    under a system idempotency key starting with `key_prefix`, and the captures of holds whose
    purpose is one of `hold_purposes`."""

    name: str
    key_prefix: str = ""
    hold_purposes: tuple[str, ...] = ()

_tier_provider: list[tuple[TierProvider, TierProviderMany | None]] = []
_tier_progress_provider: list[tuple[TierProgressProvider, TierProgressProviderMany | None]] = []
_earn_gates: list[EarnGate] = []
_after_earn_hooks: list[tuple[AfterEarnHook, AfterEarnHookMany | None]] = []
_spend_gates: list[SpendGate] = []
_after_post_hooks: list[AfterPostHook] = []
_adjust_gates: list[AdjustGate] = []
_redemption_channels: dict[str, RedemptionChannel] = {}
_reserved_hold_purposes: set[str] = set()
PaymentEarnAmount = Callable[..., Decimal]
_payment_earn_amount: list[PaymentEarnAmount] = []


def register_tier_provider(provider: TierProvider, *, many: TierProviderMany | None = None) -> None:
    _tier_provider[:] = [(provider, many)]


def register_earn_gate(gate: EarnGate) -> None:
    if gate not in _earn_gates:
        _earn_gates.append(gate)


def register_after_earn_hook(hook: AfterEarnHook, *, many: AfterEarnHookMany | None = None) -> None:
    if all(registered is not hook for registered, _many in _after_earn_hooks):
        _after_earn_hooks.append((hook, many))


def member_tier(member: Member, at: datetime) -> TierInfo | None:
    return _tier_provider[0][0](member, at) if _tier_provider else None


def member_tiers(requests: list[tuple[Member, datetime]]) -> list[TierInfo | None]:
    """member_tier for each (member, at) of `requests`, in order."""
    if not _tier_provider:
        return [None] * len(requests)
    provider, many = _tier_provider[0]
    return many(requests) if many else [provider(member, at) for member, at in requests]


def register_tier_progress_provider(
    provider: TierProgressProvider, *, many: TierProgressProviderMany | None = None
) -> None:
    _tier_progress_provider[:] = [(provider, many)]


def member_tier_progress(member_id: int, at: datetime) -> TierProgressInfo | None:
    """The registered provider's answer; None without a provider (tiers not installed) or a programme."""
    return _tier_progress_provider[0][0](member_id, at) if _tier_progress_provider else None


def members_tier_progress(member_ids: list[int], at: datetime) -> dict[int, TierProgressInfo | None]:
    """member_tier_progress of each of `member_ids` at one moment (statements read a batch at once)."""
    if not _tier_progress_provider:
        return dict.fromkeys(member_ids)
    provider, many = _tier_progress_provider[0]
    return many(member_ids, at) if many else {member_id: provider(member_id, at) for member_id in member_ids}


def earn_gates() -> list[EarnGate]:
    return list(_earn_gates)


def after_earn_hooks() -> list[AfterEarnHook]:
    return [hook for hook, _many in _after_earn_hooks]


def run_after_earn_hooks_many(earns: list[EarnDone]) -> None:
    for hook, many in list(_after_earn_hooks):
        if many:
            many(earns)
        else:
            for earn in earns:
                hook(posting=earn.posting, wallet=earn.wallet, tier=earn.tier)


def register_spend_gate(gate: SpendGate) -> None:
    if gate not in _spend_gates:
        _spend_gates.append(gate)


def register_after_post_hook(hook: AfterPostHook) -> None:
    if hook not in _after_post_hooks:
        _after_post_hooks.append(hook)


def unregister(callback) -> None:
    """Take a gate or hook out again (tests and apps switched off at run time)."""
    for registry in (_earn_gates, _spend_gates, _after_post_hooks, _adjust_gates):
        if callback in registry:
            registry.remove(callback)
    _after_earn_hooks[:] = [(hook, many) for hook, many in _after_earn_hooks if hook is not callback]


def run_spend_gates(context: SpendContext) -> None:
    """The gates judge a member's spends: an organization wallet's (no member) passes none."""
    if context.member is None:
        return
    for gate in list(_spend_gates):
        gate(context)


def after_post_hooks() -> list[AfterPostHook]:
    return list(_after_post_hooks)


def run_after_post_hooks(postings: list[tuple[object, object]]) -> None:
    """The after-post hooks for each (posting, wallet), in order."""
    for hook in list(_after_post_hooks):
        for posting, wallet in postings:
            hook(posting=posting, wallet=wallet)


def register_adjust_gate(gate: AdjustGate) -> None:
    if gate not in _adjust_gates:
        _adjust_gates.append(gate)


def run_adjust_gates(context: AdjustContext) -> None:
    for gate in list(_adjust_gates):
        gate(context)


def register_redemption_channel(channel: RedemptionChannel) -> None:
    _redemption_channels[channel.name] = channel


def redemption_channels() -> list[RedemptionChannel]:
    return list(_redemption_channels.values())


def register_reserved_hold_purpose(purpose: str) -> None:
    _reserved_hold_purposes.add(purpose)


def reserved_hold_purposes() -> frozenset[str]:
    return frozenset(_reserved_hold_purposes)


def hold_purpose_reserved(purpose: str) -> bool:
    """Whether an app above points reserves holds of this purpose for its own operations."""
    return purpose in _reserved_hold_purposes


def register_payment_earn_amount(resolver: PaymentEarnAmount) -> None:
    _payment_earn_amount[:] = [resolver]


def payment_earn_amount(*, payment_id: int, member_id: int, business_unit: BusinessUnit, bill_amount: Decimal) -> Decimal:
    """What an earn naming payment `payment_id` counts (see the module docstring). Without a
    registered resolver no payment exists: NotFound."""
    if not _payment_earn_amount:
        raise NotFound(f"payment {payment_id} not found")
    return _payment_earn_amount[0](payment_id=payment_id, member_id=member_id, business_unit=business_unit,
                                   bill_amount=bill_amount)

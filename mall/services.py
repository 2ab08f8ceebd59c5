"""Every write of the mall: one function per operation, keyword-only, one durable transaction each.

The mall never writes a ledger row. An order spends through points.services.spend_locked, and a
cancel (or an expiry that gives points back) reverses through points.services.reverse_locked,
inside the mall operation's own transaction, so that the order and its points commit together
or not at all.

Locks, always taken in this order (so no two operations deadlock): the member's wallet
(points.ledger.wallet_lock), the order, the item, the slot, the coupons, the pool codes.

* order_place: wallet, then the item row (SELECT ... FOR UPDATE): the wallet lock serialises a
  member's orders (their limits and the replay of their key), the item lock an item's stock.
* organization_order_place: the organization's wallet (points.ledger.organization_wallet_lock),
  then as order_place: the wallet lock serialises the orders of all its administrators, so that
  together they never spend more than it holds nor pass an item's limits.
* order_cancel / order_refund / coupon_expire with points back: the wallet that paid (the
  member's, or the organization's for its orders), order, then the rest.
* coupon_redeem / coupon_redeem_undo / order_fulfil / coupon_expire without points back: the
  order row first. Two moves racing on one coupon or order serialise on the order row and the
  loser finds it moved: cancel, write-off and expiry of one coupon, exactly one wins.

Every state move is a conditional UPDATE (`WHERE status = <from>`) checked against ORDER_MOVES
or COUPON_MOVES, and appends an event row. The reasons the services write into events are plain
English, as the ledger's posting reasons are: stored audit text does not depend on the language
of whoever caused it; operators' own reasons are stored as typed.

Idempotency: an order is unique per (member, idempotency key), an organization's per the
administrator who placed it and their key (the same key for their own order and for one of the
organization is a different request: IdempotencyConflict); a replay with the same request
returns the same order and spends nothing, a different request raises IdempotencyConflict. A
request refused for a business reason stores nothing, so a retry under the same key is judged
afresh. The ledger postings carry system keys derived from the order (`mall-order:<number>`,
`mall-cancel:<number>`, `mall-expire:<coupon id>`), so the ledger would refuse a second one.
A write-off is unique per (partner or operator scope, key) in the same way.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.errors import DomainError, IdempotencyConflict, NotFound
from members.models import BusinessUnit, Member, Merchant
from mall import codes
from mall.exceptions import (
    CouponMerchantNotPermitted,
    CouponNotValid,
    CouponUsed,
    InvalidRequest,
    MinSpendNotMet,
    NothingToUndo,
    OrderNotCancellable,
    OrderNotFulfillable,
    OutOfStock,
    SlotFull,
    StockNegative,
    UndoWindowPassed,
)
from mall.models import (
    COUPON_MOVES,
    ORDER_MOVES,
    Category,
    CodeSource,
    Coupon,
    CouponEvent,
    CouponStatus,
    Delivery,
    GoodsDelivery,
    Item,
    ItemKind,
    Order,
    OrderEvent,
    OrderStatus,
    PoolCode,
    Slot,
    WriteOff,
)
from mall.selectors import (
    Usage,
    coupon_by_code,
    free_pool_codes,
    item_refusal,
    may_redeem,
    member_standing,
    member_usage,
    organization_standing,
    organization_usage,
    unit_points,
)
from mall.thumbnails import thumbnail_make
from points.ledger import (
    SYSTEM_SCOPE,
    Idempotency,
    organization_wallet_lock,
    organization_wallet_open,
    request_fingerprint,
    wallet_lock,
)
from points.models import Wallet
from points.organizations import organization_of_admin
from points.services import reverse_locked, spend_locked
from points.timeutils import end_of_local_day, local_date
from tiers.selectors import active_programme

logger = logging.getLogger(__name__)

ORDER_IDEMPOTENCY_CONSTRAINT = "mall_order_idempotency_unique"
WRITE_OFF_IDEMPOTENCY_CONSTRAINT = "mall_write_off_idempotency_unique"
MAX_FREE_TEXT = 300
# The system idempotency key of an order's spend posting (statements tell mall orders by it).
MALL_ORDER_KEY_PREFIX = "mall-order:"


@dataclass(frozen=True)
class OrderResult:
    order: Order
    replayed: bool = False


@dataclass(frozen=True)
class WriteOffResult:
    write_off: WriteOff
    coupon: Coupon
    replayed: bool = False


def actor_label(actor) -> str:
    return f"operator:{actor.get_username()}" if actor is not None else "member"


# --- state moves -----------------------------------------------------------------------------


def _order_move(order: Order, to: str, *, reason: str, by: str, actor=None, error=OrderNotCancellable, **fields) -> None:
    """Move an order from its current status to `to`: a conditional UPDATE and an event. Raises
    `error` when the move is not allowed or the order moved meanwhile."""
    if to not in ORDER_MOVES.get(order.status, ()):
        raise error(status=order.status)
    updated = Order.objects.filter(pk=order.pk, status=order.status).update(status=to, updated_at=timezone.now(),
                                                                            **fields)
    if updated != 1:
        raise error(status=order.status)
    OrderEvent.objects.create(order=order, from_status=order.status, to_status=to, reason=reason[:200], by=by,
                              actor=actor)
    order.status = to
    for name, value in fields.items():
        setattr(order, name, value)


def _coupon_move(coupon: Coupon, to: str, *, reason: str, by: str, actor=None, merchant=None, error=CouponNotValid,
                 **fields) -> None:
    if to not in COUPON_MOVES.get(coupon.status, ()):
        raise error(status=coupon.status)
    updated = Coupon.objects.filter(pk=coupon.pk, status=coupon.status).update(status=to, updated_at=timezone.now(),
                                                                               **fields)
    if updated != 1:
        raise error(status=coupon.status)
    CouponEvent.objects.create(coupon=coupon, from_status=coupon.status, to_status=to, reason=reason[:200], by=by,
                               merchant=merchant, actor=actor)
    coupon.status = to
    for name, value in fields.items():
        setattr(coupon, name, value)


def _order_follow_coupons(order: Order, *, reason: str, by: str, actor=None) -> None:
    """An issued order is used once none of its coupons is open and one was used, expired once
    all ended unused; a write-off's undo opens it again."""
    statuses = set(order.coupons.values_list("status", flat=True))
    for status, target in ((CouponStatus.ISSUED, OrderStatus.ISSUED), (CouponStatus.USED, OrderStatus.USED),
                           (CouponStatus.EXPIRED, OrderStatus.EXPIRED)):
        if status in statuses:
            if order.status != target:
                _order_move(order, target, reason=reason, by=by, actor=actor, error=OrderNotCancellable)
            return


# --- placing an order ------------------------------------------------------------------------


def _checked_quantity(quantity) -> int:
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= settings.MALL_MAX_QUANTITY:
        raise InvalidRequest(_("Ensure this value is between 1 and %(max)d.") % {"max": settings.MALL_MAX_QUANTITY},
                             field="quantity")
    return quantity


def checked_free_text(value: str, *, field: str) -> str:
    """Free text (an address, a reason) as stored: trimmed, at most MAX_FREE_TEXT characters, no
    control characters and no markup. It is stored verbatim otherwise (SQL is only ever bound
    as a parameter)."""
    value = (value or "").strip()
    if len(value) > MAX_FREE_TEXT:
        raise InvalidRequest(_("Ensure this field has no more than %(max)d characters.") % {"max": MAX_FREE_TEXT},
                             field=field)
    if any(not character.isprintable() for character in value) or "<" in value or ">" in value:
        raise InvalidRequest(_("Control characters and markup (< >) are not allowed."), field=field)
    return value


def order_fingerprint(*, item_id, quantity, slot_id, delivery_method, delivery_address) -> str:
    return request_fingerprint("mall-order", item=item_id, quantity=quantity, slot=slot_id,
                               delivery=delivery_method or "", address=delivery_address or "")


def _order_replay(*, member_id: int, idempotency_key: str, fingerprint: str) -> Order | None:
    order = Order.objects.filter(member_id=member_id, idempotency_key=idempotency_key).first()
    if order is not None and order.request_hash != fingerprint:
        raise IdempotencyConflict()
    return order


def _locked_slot(item: Item, slot_id, *, at: datetime) -> Slot | None:
    if item.kind != ItemKind.BOOKABLE:
        if slot_id is not None:
            raise InvalidRequest(_("This item has no time slots."), field="slot")
        return None
    if slot_id is None:
        raise InvalidRequest(_("Choose a time slot."), field="slot")
    if not isinstance(slot_id, int) or isinstance(slot_id, bool):
        raise InvalidRequest(_("A valid integer is required."), field="slot")
    slot = Slot.objects.select_for_update().filter(pk=slot_id, item_id=item.pk).first()
    if slot is None:
        raise InvalidRequest(_("No such time slot for this item."), field="slot")
    if slot.starts_at <= at:
        raise InvalidRequest(_("This time slot has already started."), field="slot")
    return slot


def _delivery(item: Item, method: str, address: str) -> tuple[str, str]:
    address = checked_free_text(address, field="delivery_address")
    if item.kind != ItemKind.GOODS:
        if method or address:
            raise InvalidRequest(_("Only goods are delivered."), field="delivery_method")
        return "", ""
    allowed = {GoodsDelivery.PICKUP: {Delivery.PICKUP}, GoodsDelivery.SHIPPING: {Delivery.SHIPPING},
               GoodsDelivery.EITHER: {Delivery.PICKUP, Delivery.SHIPPING}}[item.delivery]
    method = method or (Delivery.PICKUP if Delivery.PICKUP in allowed else Delivery.SHIPPING)
    if method not in allowed:
        raise InvalidRequest(_("This item is not delivered that way."), field="delivery_method")
    if method == Delivery.SHIPPING and not address:
        raise InvalidRequest(_("Shipping needs an address."), field="delivery_address")
    if method == Delivery.PICKUP and address:
        raise InvalidRequest(_("A pickup needs no address."), field="delivery_address")
    return method, address


def _coupon_validity(item: Item, slot: Slot | None, *, at: datetime) -> tuple[datetime, datetime]:
    if slot is not None:
        return slot.starts_at - timedelta(minutes=settings.MALL_CHECK_IN_EARLY_MINUTES), slot.ends_at
    if item.valid_days:
        return at, end_of_local_day(local_date(at) + timedelta(days=item.valid_days - 1))
    return item.valid_from or at, item.valid_until


def _new_codes(count: int) -> list[str]:
    """`count` generated codes that no coupon has (a clash of 65 random bits is all but impossible;
    the unique constraint on live codes backs this check)."""
    fresh: list[str] = []
    while len(fresh) < count:
        batch = {codes.generate() for _ in range(count - len(fresh))} - set(fresh)
        taken = set(Coupon.objects.filter(code__in=batch).values_list("code", flat=True))
        fresh += sorted(batch - taken)
    return fresh


def _issue_coupons(order: Order, item: Item, slot: Slot | None, *, at: datetime, by: str, actor) -> list[Coupon]:
    valid_from, valid_until = _coupon_validity(item, slot, at=at)
    pool: list[PoolCode] = []
    if item.code_source == CodeSource.POOL:
        pool = list(
            PoolCode.objects.select_for_update(skip_locked=True).filter(item=item, coupon__isnull=True)
            .order_by("id")[:order.quantity]
        )
        if len(pool) < order.quantity:
            raise OutOfStock(remaining=len(pool))
        values = [code.code for code in pool]
    else:
        values = _new_codes(order.quantity)
    coupons = Coupon.objects.bulk_create([
        Coupon(order=order, member_id=order.member_id, item=item, business_unit_id=order.business_unit_id,
               merchant_id=order.merchant_id, code=value, source=item.code_source, status=CouponStatus.ISSUED,
               valid_from=valid_from, valid_until=valid_until, issued_at=at)
        for value in values
    ])
    if any(coupon.pk is None for coupon in coupons):  # a database that returns no ids from a bulk insert
        coupons = list(Coupon.objects.filter(order=order).order_by("id"))
    for pool_code, coupon in zip(pool, coupons):
        PoolCode.objects.filter(pk=pool_code.pk, coupon__isnull=True).update(coupon=coupon)
    CouponEvent.objects.bulk_create([
        CouponEvent(coupon=coupon, from_status="", to_status=CouponStatus.ISSUED, reason=f"order {order.number}", by=by,
                    actor=actor)
        for coupon in coupons
    ])
    return coupons


def order_place(
    *,
    member_id: int,
    item_id,
    quantity=1,
    slot_id=None,
    delivery_method: str = "",
    delivery_address: str = "",
    idempotency_key: str,
    actor=None,
) -> OrderResult:
    """Place an order: check, spend, take stock and a slot or codes, issue coupons; all or nothing.

    In one durable transaction: the wallet lock, the replay of the key, the item row locked and
    checked (sale window, tier, limits, stock: mall.selectors.item_refusal), the slot locked and
    checked, the spend at the item's provider through the ledger, the stock and the slot taken by
    conditional UPDATEs (backed by CHECK constraints), the order, its coupons and events.
    `actor` is the operator placing it for the member at a service desk (None: the member).
    """
    quantity = _checked_order_request(quantity=quantity, item_id=item_id, idempotency_key=idempotency_key)
    fingerprint = order_fingerprint(item_id=item_id, quantity=quantity, slot_id=slot_id,
                                    delivery_method=delivery_method, delivery_address=delivery_address)
    by = actor_label(actor)

    def lock() -> Wallet:
        return wallet_lock(member_id=member_id)

    return _place(lock=lock, member_id=member_id, idempotency_key=idempotency_key, fingerprint=fingerprint, place=dict(
        item_id=item_id, quantity=quantity, slot_id=slot_id, delivery_method=delivery_method,
        delivery_address=delivery_address, idempotency_key=idempotency_key, fingerprint=fingerprint, by=by,
        actor=actor,
    ))


def organization_order_place(*, admin: Member, item_id, quantity=1, slot_id=None, idempotency_key: str) -> OrderResult:
    """An administrator of an organization books a bookable item (a meeting room) for it, paid
    from the organization's wallet: as order_place, under the organization wallet's lock.

    Only an administrator may (not_organization_admin), only bookable items (invalid). The
    organization has no tier: the list price, and an item reserved for a tier is tier_required.
    An item's limits per member count the organization's orders, whichever administrator placed
    them, and never the administrator's own (their own orders never count here either). The
    administrator is the order's member and holds its check-in coupon.
    """
    quantity = _checked_order_request(quantity=quantity, item_id=item_id, idempotency_key=idempotency_key)
    organization = organization_of_admin(member=admin)
    fingerprint = request_fingerprint("mall-organization-order", organization=organization.pk, item=item_id,
                                      quantity=quantity, slot=slot_id)
    organization_wallet_open(organization)

    def lock() -> Wallet:
        return organization_wallet_lock(organization_id=organization.pk)

    return _place(lock=lock, member_id=admin.pk, idempotency_key=idempotency_key, fingerprint=fingerprint, place=dict(
        item_id=item_id, quantity=quantity, slot_id=slot_id, delivery_method="", delivery_address="",
        idempotency_key=idempotency_key, fingerprint=fingerprint, by=actor_label(None), actor=None, placed_by=admin,
    ))


def _checked_order_request(*, quantity, item_id, idempotency_key: str) -> int:
    quantity = _checked_quantity(quantity)
    if not isinstance(item_id, int) or isinstance(item_id, bool):
        raise InvalidRequest(_("A valid integer is required."), field="item")
    if not idempotency_key or len(idempotency_key) > 128:
        raise InvalidRequest(_("1 to 128 printable characters."), field="idempotency_key")
    return quantity


def _place(*, lock, member_id: int, idempotency_key: str, fingerprint: str, place: dict) -> OrderResult:
    """One durable transaction: `lock()` the paying wallet, answer a replay of the key, place."""
    try:
        with transaction.atomic(durable=True):
            wallet = lock()
            if replay := _order_replay(member_id=member_id, idempotency_key=idempotency_key, fingerprint=fingerprint):
                return OrderResult(order=replay, replayed=True)
            return OrderResult(order=_place_locked(wallet=wallet, **place))
    except IntegrityError as exc:
        # The wallet lock serialises the orders of a key's member, so this is a backstop: the
        # loser of a race on the key answers with the winner's order.
        if ORDER_IDEMPOTENCY_CONSTRAINT not in str(exc):
            raise
        replay = _order_replay(member_id=member_id, idempotency_key=idempotency_key, fingerprint=fingerprint)
        if replay is None:
            raise
        return OrderResult(order=replay, replayed=True)


def _place_locked(*, wallet, item_id: int, quantity: int, slot_id, delivery_method: str, delivery_address: str,
                  idempotency_key: str, fingerprint: str, by: str, actor, placed_by: Member | None = None) -> Order:
    """`placed_by` is the administrator of the organization whose wallet `wallet` is; None for
    a member's own order from their own wallet."""
    now = timezone.now()
    item = (
        Item.objects.select_for_update(of=("self",)).select_related("business_unit", "merchant", "min_tier")
        .filter(pk=item_id).first()
    )
    if item is None:
        raise InvalidRequest(_("No such item."), field="item")
    if placed_by is not None and item.kind != ItemKind.BOOKABLE:
        raise InvalidRequest(_("An organization books bookable services only (e.g. a meeting room)."), field="item")
    slot = _locked_slot(item, slot_id, at=now)
    method, address = _delivery(item, delivery_method, delivery_address)
    if placed_by is None:
        standing = member_standing(member=wallet.member, at=now, wallet=wallet)
        usage = member_usage(member_id=wallet.member_id, item_ids=[item.pk], at=now).get(item.pk, Usage())
    else:
        standing = organization_standing(admin=placed_by, wallet=wallet)
        usage = organization_usage(organization_id=wallet.organization_id, item_ids=[item.pk], at=now).get(
            item.pk, Usage())
    free = free_pool_codes(item_ids=[item.pk]).get(item.pk, 0) if item.code_source == CodeSource.POOL else 0
    if refusal := item_refusal(item, standing=standing, usage=usage, free_codes=free, at=now, quantity=quantity):
        raise refusal
    if slot is not None and slot.booked + quantity > slot.capacity:
        raise SlotFull(free=slot.free)
    unit = unit_points(item.price_points, standing.discount_percent)
    number = codes.order_number()
    posting = spend_locked(
        wallet=wallet, points=unit * quantity, business_unit=item.business_unit, merchant=item.merchant,
        reason=f"mall order {number}", idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"{MALL_ORDER_KEY_PREFIX}{number}"),
        fingerprint=fingerprint, actor=actor,
    )
    if item.stock is not None:
        if Item.objects.filter(pk=item.pk, stock__gte=quantity).update(stock=F("stock") - quantity) != 1:
            raise OutOfStock(remaining=item.stock)
    if slot is not None:
        booked = Slot.objects.filter(pk=slot.pk, booked__lte=F("capacity") - quantity).update(booked=F("booked") + quantity)
        if booked != 1:
            raise SlotFull(free=slot.free)
    status = OrderStatus.ISSUED if item.issues_coupons else OrderStatus.AWAITING_FULFILMENT
    order = Order.objects.create(
        number=number, member_id=placed_by.pk if placed_by else wallet.member_id,
        organization_id=wallet.organization_id, item=item, kind=item.kind, business_unit=item.business_unit,
        merchant=item.merchant, quantity=quantity, list_price_points=item.price_points,
        discount_percent=standing.discount_percent, unit_points=unit, points=unit * quantity,
        cash_cny=item.cash_cny * quantity, settlement_value_cny=item.settlement_value_cny,
        points_back_on_expiry=item.points_back_on_expiry, took_stock=item.stock is not None, spend_posting=posting,
        status=status, slot=slot, delivery_method=method, delivery_address=address,
        idempotency_key=idempotency_key, request_hash=fingerprint, actor=actor, placed_at=now,
    )
    OrderEvent.objects.create(order=order, from_status="", to_status=status, reason="placed", by=by, actor=actor)
    if item.issues_coupons:
        _issue_coupons(order, item, slot, at=now, by=by, actor=actor)
    return order


# --- cancel, refund, fulfil ------------------------------------------------------------------


def _order_in_scope(order_id, *, member_id: int | None = None, organization_id: int | None = None) -> Order:
    """The order, if in the caller's scope: a member's own orders (`member_id`: not those they
    placed for an organization), an organization administrator's (`organization_id`: the
    organization's orders), or any (neither: an operator's)."""
    if not isinstance(order_id, int) or isinstance(order_id, bool):
        raise NotFound(_("Order not found."))
    order = Order.objects.filter(pk=order_id).only(
        "id", "member_id", "organization_id", "merchant_id", "business_unit_id").first()
    if order is None:
        raise NotFound(_("Order not found."))
    if member_id is not None and (order.member_id != member_id or order.organization_id is not None):
        raise NotFound(_("Order not found."))
    if organization_id is not None and order.organization_id != organization_id:
        raise NotFound(_("Order not found."))
    return order


def _paying_wallet_lock(order: Order) -> Wallet:
    """Lock the wallet that paid the order: the organization's for its orders, else the member's."""
    if order.organization_id is not None:
        return organization_wallet_lock(organization_id=order.organization_id)
    return wallet_lock(member_id=order.member_id)


def _check_scope(order: Order, *, business_unit: BusinessUnit | None, merchant: Merchant | None) -> None:
    """A caller scoped to a business unit (and a merchant) sees only its own orders."""
    if business_unit is not None and order.business_unit_id != business_unit.pk:
        raise NotFound(_("Order not found."))
    if merchant is not None and order.merchant_id != merchant.pk:
        raise NotFound(_("Order not found."))


def order_cancel(
    *, order_id, reason: str = "", member_id: int | None = None, organization_id: int | None = None,
    merchant: Merchant | None = None, actor=None,
) -> OrderResult:
    """Cancel an order before use: every coupon cancelled, the points back to exactly the lots the
    spend consumed (reverse_locked) in the wallet that paid (the organization's, for its orders),
    the stock and the slot's place given back, the limit freed (a cancelled order counts against
    none). Exactly once: cancelling a cancelled order answers it again (`replayed`).

    A pool code is not given back to the pool: the member has seen it, and issued again it could
    be used by them at the merchant's own system before its new holder. It stays with the
    cancelled coupon (which no till can write off); the merchant uploads more codes.

    `member_id` is the member's own scope; `organization_id` an organization administrator's (see
    organization_order_cancel); `merchant` a merchant staff's. A member (or an administrator) may
    cancel a booking only before its slot starts; an operator may cancel it later. Raises
    order_not_cancellable once a coupon has been used or has expired, or the goods were fulfilled.
    """
    reason = checked_free_text(reason, field="reason")
    found = _order_in_scope(order_id, member_id=member_id, organization_id=organization_id)
    _check_scope(found, business_unit=merchant.business_unit if merchant else None, merchant=merchant)
    by = actor_label(actor)
    with transaction.atomic(durable=True):
        wallet = _paying_wallet_lock(found)
        order = Order.objects.select_for_update(of=("self",)).select_related("spend_posting").get(pk=found.pk)
        if order.status == OrderStatus.CANCELLED:
            return OrderResult(order=order, replayed=True)
        if order.status not in (OrderStatus.ISSUED, OrderStatus.AWAITING_FULFILMENT):
            raise OrderNotCancellable(status=order.status)
        now = timezone.now()
        item = Item.objects.select_for_update().get(pk=order.item_id)
        slot = Slot.objects.select_for_update().get(pk=order.slot_id) if order.slot_id else None
        if slot is not None and actor is None and slot.starts_at <= now:
            raise OrderNotCancellable(status=order.status, slot_started=True)
        coupons = list(Coupon.objects.select_for_update().filter(order=order).order_by("id"))
        if any(coupon.status != CouponStatus.ISSUED for coupon in coupons):
            raise OrderNotCancellable(status=order.status)
        reverse_locked(
            original=order.spend_posting, wallet=wallet, reason=f"mall order {order.number} cancelled",
            idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"mall-cancel:{order.number}"),
            fingerprint=request_fingerprint("mall-cancel", order=order.number), actor=actor,
        )
        for coupon in coupons:
            _coupon_move(coupon, CouponStatus.CANCELLED, reason=reason or "order cancelled", by=by, actor=actor)
        if order.took_stock and item.stock is not None:
            Item.objects.filter(pk=item.pk).update(stock=F("stock") + order.quantity)
        if slot is not None:
            Slot.objects.filter(pk=slot.pk, booked__gte=order.quantity).update(booked=F("booked") - order.quantity)
        _order_move(order, OrderStatus.CANCELLED, reason=reason or "cancelled", by=by, actor=actor)
        return OrderResult(order=order)


def organization_order_cancel(*, admin: Member, order_id, reason: str = "") -> OrderResult:
    """An administrator cancels an order of their organization (whichever administrator placed
    it) before its slot starts: the points go back to the organization's wallet."""
    organization = organization_of_admin(member=admin)
    return order_cancel(order_id=order_id, reason=reason, organization_id=organization.pk)


def order_refund(*, order_id, reason: str, actor, merchant: Merchant | None = None) -> OrderResult:
    """Refund fulfilled goods (returned to the desk): the points back to the lots they came from,
    in the wallet that paid.
    The returned goods are not put back in stock (an operator adds them by hand if resellable)."""
    reason = checked_free_text(reason, field="reason")
    if not reason:
        raise InvalidRequest(_("A reason is required."), field="reason")
    found = _order_in_scope(order_id)
    _check_scope(found, business_unit=merchant.business_unit if merchant else None, merchant=merchant)
    with transaction.atomic(durable=True):
        wallet = _paying_wallet_lock(found)
        order = Order.objects.select_for_update(of=("self",)).select_related("spend_posting").get(pk=found.pk)
        if order.status == OrderStatus.REFUNDED:
            return OrderResult(order=order, replayed=True)
        if order.status != OrderStatus.FULFILLED:
            raise OrderNotCancellable(status=order.status)
        reverse_locked(
            original=order.spend_posting, wallet=wallet, reason=f"mall order {order.number} refunded",
            idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"mall-refund:{order.number}"),
            fingerprint=request_fingerprint("mall-refund", order=order.number), actor=actor,
        )
        _order_move(order, OrderStatus.REFUNDED, reason=reason, by=actor_label(actor), actor=actor)
        return OrderResult(order=order)


def order_fulfil(*, order_id, actor, tracking_no: str = "", reason: str = "", merchant: Merchant | None = None
                 ) -> OrderResult:
    """Goods handed over at the desk, or shipped (a tracking number is then required)."""
    tracking_no = checked_free_text(tracking_no, field="tracking_no")[:64]
    reason = checked_free_text(reason, field="reason")
    found = _order_in_scope(order_id)
    _check_scope(found, business_unit=merchant.business_unit if merchant else None, merchant=merchant)
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().get(pk=found.pk)
        if order.status == OrderStatus.FULFILLED:
            return OrderResult(order=order, replayed=True)
        if order.status != OrderStatus.AWAITING_FULFILMENT:
            raise OrderNotFulfillable(status=order.status)
        if order.delivery_method == Delivery.SHIPPING and not tracking_no:
            raise InvalidRequest(_("A shipped order needs its tracking number."), field="tracking_no")
        fields = {"tracking_no": tracking_no} if tracking_no else {}
        _order_move(order, OrderStatus.FULFILLED, reason=reason or "fulfilled", by=actor_label(actor), actor=actor,
                    error=OrderNotFulfillable, **fields)
        return OrderResult(order=order)


# --- write-off -------------------------------------------------------------------------------


def _coupon_for_caller(raw_code: str, *, business_unit: BusinessUnit) -> Coupon:
    if not codes.lookup_candidates(raw_code):
        raise InvalidRequest(_("This is not a coupon code."), field="code")
    coupon = coupon_by_code(raw_code=raw_code)
    if coupon is None or coupon.business_unit_id != business_unit.pk:
        raise NotFound(_("Coupon not found."))
    return coupon


def coupon_redeem(
    *,
    raw_code: str,
    business_unit: BusinessUnit,
    merchant: Merchant | None,
    bill_amount: Decimal | None = None,
    idempotency: Idempotency | None = None,
    by: str,
    actor=None,
) -> WriteOffResult:
    """Write a coupon off at the till (or check a booking in). Only the issuing merchant may, or
    any caller of the business unit for a BU-wide coupon (merchant_not_permitted); a used coupon
    is coupon_used; expired, cancelled or outside its validity coupon_not_valid; a bill below
    the coupon's minimum spend min_spend_not_met. Replays of the same key answer the same
    write-off; of twenty racing requests for one coupon exactly one writes it off."""
    if bill_amount is not None and (not isinstance(bill_amount, Decimal) or bill_amount < 0):
        raise InvalidRequest(_("A bill amount is a non-negative decimal."), field="bill_amount")
    coupon = _coupon_for_caller(raw_code, business_unit=business_unit)
    if not may_redeem(coupon=coupon, business_unit=business_unit, merchant=merchant):
        raise CouponMerchantNotPermitted()
    fingerprint = request_fingerprint("mall-redeem", coupon=coupon.pk, bill=str(bill_amount))
    try:
        with transaction.atomic(durable=True):
            order = Order.objects.select_for_update().get(pk=coupon.order_id)
            if replay := _write_off_replay(idempotency, fingerprint):
                return WriteOffResult(write_off=replay, coupon=replay.coupon, replayed=True)
            coupon = Coupon.objects.select_for_update(of=("self",)).select_related("item", "merchant", "business_unit").get(pk=coupon.pk)
            now = timezone.now()
            if coupon.status == CouponStatus.USED:
                raise CouponUsed(redeemed_at=coupon.redeemed_at.isoformat())
            if coupon.status != CouponStatus.ISSUED or not coupon.valid_from <= now <= coupon.valid_until:
                raise CouponNotValid(status=coupon.status, valid_from=coupon.valid_from.isoformat(),
                                     valid_until=coupon.valid_until.isoformat())
            minimum = coupon.item.min_spend_cny
            if minimum and (bill_amount is None or bill_amount < minimum):
                raise MinSpendNotMet(min_spend=str(minimum))
            _coupon_move(coupon, CouponStatus.USED, reason="written off", by=by, actor=actor, merchant=merchant,
                         error=CouponUsed, redeemed_at=now, redeemed_by=merchant)
            write_off = WriteOff.objects.create(
                coupon=coupon, business_unit=business_unit, merchant=merchant, bill_amount_cny=bill_amount, by=by,
                actor=actor, idempotency_scope=idempotency.scope if idempotency else "",
                idempotency_key=idempotency.key if idempotency else "", request_hash=fingerprint, at=now,
            )
            _order_follow_coupons(order, reason=f"coupon {coupon.code} written off", by=by,
                                  actor=actor)
            return WriteOffResult(write_off=write_off, coupon=coupon)
    except IntegrityError as exc:
        if WRITE_OFF_IDEMPOTENCY_CONSTRAINT not in str(exc):
            raise
        replay = _write_off_replay(idempotency, fingerprint)
        if replay is None:
            raise
        return WriteOffResult(write_off=replay, coupon=replay.coupon, replayed=True)


def _write_off_replay(idempotency: Idempotency | None, fingerprint: str) -> WriteOff | None:
    if idempotency is None or not idempotency.key:
        return None
    found = WriteOff.objects.select_related("coupon").filter(
        idempotency_scope=idempotency.scope, idempotency_key=idempotency.key
    ).first()
    if found is not None and found.request_hash != fingerprint:
        raise IdempotencyConflict()
    return found


def coupon_redeem_undo(*, raw_code: str, business_unit: BusinessUnit, merchant: Merchant | None, by: str, actor=None
                       ) -> WriteOffResult:
    """Undo a write-off made by mistake: only the caller that wrote it off (same business unit and
    merchant), within MALL_WRITE_OFF_UNDO_SECONDS. The coupon is open again (the one backward
    move the machines allow) and the write-off row records the undo."""
    coupon = _coupon_for_caller(raw_code, business_unit=business_unit)
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().get(pk=coupon.order_id)
        coupon = Coupon.objects.select_for_update().get(pk=coupon.pk)
        write_off = WriteOff.objects.select_for_update().filter(coupon=coupon, undone_at__isnull=True).first()
        if coupon.status != CouponStatus.USED or write_off is None:
            raise NothingToUndo(status=coupon.status)
        if write_off.business_unit_id != business_unit.pk or write_off.merchant_id != (merchant.pk if merchant else None):
            raise CouponMerchantNotPermitted()
        now = timezone.now()
        if now - write_off.at > timedelta(seconds=settings.MALL_WRITE_OFF_UNDO_SECONDS):
            raise UndoWindowPassed(written_off_at=write_off.at.isoformat())
        _coupon_move(coupon, CouponStatus.ISSUED, reason="write-off undone", by=by, actor=actor, merchant=merchant,
                     error=NothingToUndo, redeemed_at=None, redeemed_by=None)
        write_off.undone_at, write_off.undone_by = now, by
        write_off.save(update_fields=["undone_at", "undone_by"])
        _order_follow_coupons(order, reason=f"write-off of {coupon.code} undone", by=by,
                              actor=actor)
        return WriteOffResult(write_off=write_off, coupon=coupon)


# --- expiry ----------------------------------------------------------------------------------


def coupon_expire(*, coupon_id: int, now: datetime) -> bool:
    """Expire one coupon past its validity, in its own transaction; its points go back (to the
    lots its order's spend consumed, in the wallet that paid) only if the order's item said so
    when it was ordered.
    Idempotent: a coupon already moved (used, cancelled, expired) is left alone. Returns whether
    it expired it."""
    coupon = Coupon.objects.select_related("order").filter(pk=coupon_id).first()
    if coupon is None:
        return False
    points_back = coupon.order.points_back_on_expiry
    with transaction.atomic(durable=True):
        wallet = _paying_wallet_lock(coupon.order) if points_back else None
        order = Order.objects.select_for_update(of=("self",)).select_related("spend_posting").get(pk=coupon.order_id)
        coupon = Coupon.objects.select_for_update().get(pk=coupon_id)
        if coupon.status != CouponStatus.ISSUED or coupon.valid_until >= now:
            return False
        _coupon_move(coupon, CouponStatus.EXPIRED, reason="validity ended", by="system")
        if wallet is not None:
            reverse_locked(
                original=order.spend_posting, wallet=wallet, points=order.unit_points,
                reason=f"mall coupon of order {order.number} expired",
                idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"mall-expire:{coupon.pk}"),
                fingerprint=request_fingerprint("mall-expire", coupon=coupon.pk),
            )
        _order_follow_coupons(order, reason="coupon expired", by="system")
        return True


def coupons_expire_batch(*, now: datetime, after_id: int = 0, limit: int | None = None) -> tuple[int, int | None]:
    """Expire the next `limit` coupons past their validity after coupon id `after_id`, each in
    its own transaction. Returns (expired, the cursor to go on from, or None when done). A coupon
    that fails is logged and left for the next run."""
    limit = limit or settings.MALL_EXPIRY_BATCH_SIZE
    due = list(
        Coupon.objects.filter(status=CouponStatus.ISSUED, valid_until__lt=now, id__gt=after_id)
        .order_by("id").values_list("id", flat=True)[:limit]
    )
    expired = 0
    for coupon_id in due:
        try:
            expired += coupon_expire(coupon_id=coupon_id, now=now)
        except DomainError:
            logger.exception("mall: coupon %s could not be expired", coupon_id)
    return expired, (due[-1] if len(due) == limit else None)


# --- the catalogue ---------------------------------------------------------------------------

ITEM_PARTNER_FIELDS = (
    "kind", "category", "name_zh", "name_en", "description_zh", "description_en", "price_points", "cash_cny",
    "merchant", "stock", "limit_total", "limit_per_day", "limit_per_week", "limit_per_month", "display_from",
    "display_until", "sale_from", "sale_until", "min_tier", "is_active", "delivery", "code_source", "benefit",
    "face_value_cny", "discount_percent", "min_spend_cny", "valid_from", "valid_until", "valid_days",
    "settlement_value_cny", "points_back_on_expiry",
)


class ItemInvalid(DomainError):
    code = "invalid"
    default_detail = _("Invalid input.")


def _saved(item: Item, *, actor, by: str) -> Item:
    try:
        item.full_clean()
    except ValidationError as exc:
        raise ItemInvalid(fields={field: [str(m) for m in messages] for field, messages in exc.message_dict.items()})
    item._history_user = actor
    item._change_reason = by
    item.save()
    return item


def item_create(*, business_unit: BusinessUnit, fields: dict, actor=None, by: str) -> Item:
    """A new catalogue item of `business_unit` (its merchant, if given, must be of that unit).

    Not durable, unlike the operations that move points: the console saves an item and its
    slots in the one transaction of its change form."""
    with transaction.atomic():
        item = _saved(Item(business_unit=business_unit, **fields), actor=actor, by=by)
        thumbnail_make(item.image)
        return item


def item_update(
    *, item_id: int, changes: dict, stock_delta: int | None = None, business_unit: BusinessUnit | None = None,
    merchant: Merchant | None = None, actor=None, by: str,
) -> Item:
    """Change an item under its row lock (orders hold it while they take stock): only the fields
    named in `changes`, so a concurrent order's stock decrement is never overwritten by a stale
    read. `stock_delta` adds to (or takes from) the stock as it is now; below zero is
    stock_negative. A caller scoped to a business unit (and merchant) finds only its own items.
    Not durable (see item_create)."""
    with transaction.atomic():
        items = Item.objects.select_for_update().filter(pk=item_id)
        if business_unit is not None:
            items = items.filter(business_unit=business_unit)
        if merchant is not None:
            items = items.filter(merchant=merchant)
        item = items.first()
        if item is None:
            raise NotFound(_("Item not found."))
        for name, value in changes.items():
            setattr(item, name, value)
        if stock_delta is not None:
            if item.stock is None:
                raise InvalidRequest(_("An unlimited stock takes no delta: set a stock first."), field="stock_delta")
            if item.stock + stock_delta < 0:
                raise StockNegative(stock=item.stock)
            item.stock += stock_delta
        item = _saved(item, actor=actor, by=by)
        if "image" in changes:
            thumbnail_make(item.image)
        return item


def pool_codes_add(*, item_id: int, raw_codes: list[str], batch: str = "") -> dict[str, int]:
    """Upload codes to a pool item: bare upper-case letters and digits (4 to 64), de-duplicated
    within the upload and against every code already known (in any pool or on any live coupon).
    Returns how many were added, were duplicates, were not codes."""
    with transaction.atomic(durable=True):
        item = Item.objects.select_for_update().filter(pk=item_id).first()
        if item is None:
            raise NotFound(_("Item not found."))
        if item.code_source != CodeSource.POOL:
            raise InvalidRequest(_("This item generates its codes."), field="item")
        seen: list[str] = []
        invalid = given = 0
        for raw in raw_codes:
            code = codes.bare(raw)
            if not code:
                continue
            given += 1
            if not codes.POOL_CODE.match(code):
                invalid += 1
            elif code not in seen:
                seen.append(code)
        known = set(PoolCode.objects.filter(code__in=seen).values_list("code", flat=True))
        known |= set(Coupon.objects.filter(code__in=seen).exclude(status=CouponStatus.CANCELLED)
                     .values_list("code", flat=True))
        new = [code for code in seen if code not in known]
        PoolCode.objects.bulk_create([PoolCode(item=item, code=code, batch=batch[:64]) for code in new],
                                     ignore_conflicts=True)
        added = PoolCode.objects.filter(item=item, code__in=new).count()
        return {"added": added, "duplicates": given - invalid - added, "invalid": invalid}


def partner_item_fields(*, data: dict, business_unit: BusinessUnit, merchant: Merchant | None) -> dict:
    """A partner's item fields with codes resolved: the category, the tier level (of the active
    programme) and the merchant. A merchant key's items are always its own; a BU key names a
    merchant of its unit, or none (BU-wide). Unknown codes are `invalid` with the field named."""
    fields = {name: value for name, value in data.items() if name in ITEM_PARTNER_FIELDS}
    if "category" in fields and fields["category"] is not None:
        fields["category"] = Category.objects.filter(code=fields["category"]).first()
        if fields["category"] is None:
            raise InvalidRequest(_("No such category."), field="category")
    if "min_tier" in fields and fields["min_tier"] is not None:
        programme = active_programme()
        level = programme.levels.filter(code=fields["min_tier"]).first() if programme else None
        if level is None:
            raise InvalidRequest(_("No such tier level in the active programme."), field="min_tier")
        fields["min_tier"] = level
    if merchant is not None:
        if fields.get("merchant", merchant.code) not in (merchant.code,):
            raise InvalidRequest(_("A merchant key manages its own items only."), field="merchant")
        fields["merchant"] = merchant
    elif "merchant" in fields and fields["merchant"] is not None:
        fields["merchant"] = Merchant.objects.filter(business_unit=business_unit, code=fields["merchant"]).first()
        if fields["merchant"] is None:
            raise InvalidRequest(_("No such merchant in this business unit."), field="merchant")
    return fields

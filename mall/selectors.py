"""Reads of the mall: the catalogue as a member sees it (their price, whether they may order and
why not), their orders and coupons, a coupon by its code, a partner's items and orders.

`item_refusal` is the one statement of who may order what: the member API shows its answer,
and order_place (mall.services) raises it, under the locks, before it spends anything.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from django.db.models import Count, F, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from config.errors import DomainError
from members.models import BusinessUnit, MemberStatus, Merchant
from mall import codes
from mall.exceptions import LimitReached, NotOnSale, OutOfStock, TierRequired
from mall.models import ORDERS_RETURNED, CodeSource, Coupon, CouponStatus, Item, Order, PoolCode, Slot, WriteOff
from points.exceptions import AccountFrozen, MemberInactive
from points.models import Wallet
from points.selectors import member_balance
from points.timeutils import local_period_start
from tiers.models import TierLevel
from tiers.selectors import (
    active_programme,
    level_for_value,
    member_tier_on_active,
    programme_levels,
    qualifying_value,
    rank_of,
)

PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class MemberStanding:
    """What pricing and eligibility need to know of a member, read once per request."""

    member_id: int
    available: int
    is_frozen: bool
    is_active: bool
    level: TierLevel | None

    @property
    def discount_percent(self) -> Decimal:
        return self.level.redemption_discount_percent if self.level is not None else Decimal("0")


@dataclass(frozen=True)
class Usage:
    """Units of an item a member has ordered (orders not cancelled or refunded): in total and in
    the current day, week and month of the group's time zone."""

    total: int = 0
    day: int = 0
    week: int = 0
    month: int = 0


@dataclass(frozen=True)
class Offer:
    """An item as one member sees it now."""

    member_price: int
    discount_percent: Decimal
    affordable: bool
    points_short: int
    remaining_stock: int | None
    remaining_limit: int | None
    refusal: DomainError | None

    @property
    def orderable(self) -> bool:
        return self.refusal is None and self.affordable


def member_level(*, member_id: int, at: datetime) -> TierLevel | None:
    """The member's effective tier level on the active programme (None: no programme, or below
    every level). A member with no tier row yet gets the level their qualifying value earns."""
    member_tier = member_tier_on_active(member_id=member_id)
    if member_tier is not None:
        return member_tier.effective_level(at)
    programme = active_programme()
    if programme is None:
        return None
    value = qualifying_value(member_id=member_id, programme=programme, at=at)
    return level_for_value(levels=programme_levels(programme=programme), value=value)


def member_standing(*, member, at: datetime, wallet: Wallet | None = None) -> MemberStanding:
    """The member's standing. Given the member's wallet, locked (order_place), its frozen flag is
    taken from it and the available points are left to the ledger's spend to judge (0 here)."""
    if wallet is not None:
        available, is_frozen = 0, wallet.is_frozen
    else:
        balance = member_balance(member_id=member.pk, now=at)
        available = balance.available if balance else 0
        is_frozen = bool(Wallet.objects.filter(member_id=member.pk).values_list("is_frozen", flat=True).first())
    return MemberStanding(
        member_id=member.pk, available=available, is_frozen=is_frozen,
        is_active=member.status == MemberStatus.ACTIVE, level=member_level(member_id=member.pk, at=at),
    )


def organization_standing(*, admin, wallet: Wallet) -> MemberStanding:
    """An organization's standing for an order its administrator places, from its wallet, locked
    (organization_order_place): no tier (the list price, and no item reserved for a tier), its
    frozen flag, and the administrator's being active. The available points are the ledger's to
    judge."""
    return MemberStanding(member_id=admin.pk, available=0, is_frozen=wallet.is_frozen,
                          is_active=admin.status == MemberStatus.ACTIVE, level=None)


def unit_points(price_points: int, discount_percent: Decimal) -> int:
    """The member's price of one unit: the list price less the tier discount rounded down (so
    the price is rounded up), never below one point."""
    discount = (Decimal(price_points) * discount_percent / 100).to_integral_value(rounding=ROUND_FLOOR)
    return max(price_points - int(discount), 1)


def member_usage(*, member_id: int, item_ids, at: datetime) -> dict[int, Usage]:
    """Usage of each item in `item_ids` by the member's own orders (not the ones they placed for
    an organization), in one aggregate query."""
    return _usage(Order.objects.filter(member_id=member_id, organization__isnull=True), item_ids=item_ids, at=at)


def organization_usage(*, organization_id: int, item_ids, at: datetime) -> dict[int, Usage]:
    """Usage of each item by the organization's orders, whichever administrator placed them:
    an item's limits per member apply to the organization as one payer."""
    return _usage(Order.objects.filter(organization_id=organization_id), item_ids=item_ids, at=at)


def _usage(orders: QuerySet[Order], *, item_ids, at: datetime) -> dict[int, Usage]:
    starts = {period: local_period_start(at, period) for period in PERIODS}
    rows = (
        orders.filter(item_id__in=list(item_ids)).exclude(status__in=ORDERS_RETURNED)
        .values("item_id")
        .annotate(total=Sum("quantity"), **{
            period: Sum("quantity", filter=Q(placed_at__gte=start)) for period, start in starts.items()
        })
    )
    return {
        row["item_id"]: Usage(total=row["total"] or 0, day=row["day"] or 0, week=row["week"] or 0,
                              month=row["month"] or 0)
        for row in rows
    }


def free_pool_codes(*, item_ids) -> dict[int, int]:
    rows = (
        PoolCode.objects.filter(item_id__in=list(item_ids), coupon__isnull=True)
        .values("item_id").annotate(free=Count("id"))
    )
    return {row["item_id"]: row["free"] for row in rows}


def remaining_limit(item: Item, usage: Usage) -> int | None:
    """Units the member may still order (None: no limit)."""
    left = [
        limit - used
        for limit, used in (
            (item.limit_total, usage.total), (item.limit_per_day, usage.day), (item.limit_per_week, usage.week),
            (item.limit_per_month, usage.month),
        )
        if limit is not None
    ]
    return max(min(left), 0) if left else None


def remaining_stock(item: Item, free_codes: int) -> int | None:
    """Units left (None: unlimited): the stock, and for a pool item its free codes."""
    left = [] if item.stock is None else [item.stock]
    if item.issues_coupons and item.code_source == CodeSource.POOL:
        left.append(free_codes)
    return min(left) if left else None


def _limit_refusal(item: Item, usage: Usage, quantity: int) -> DomainError | None:
    for period, limit, used in (
        ("total", item.limit_total, usage.total), ("day", item.limit_per_day, usage.day),
        ("week", item.limit_per_week, usage.week), ("month", item.limit_per_month, usage.month),
    ):
        if limit is not None and used + quantity > limit:
            return LimitReached(period=period, limit=limit, remaining=max(limit - used, 0))
    return None


def sale_refusal(item: Item, at: datetime) -> DomainError | None:
    if not item.is_active or (item.display_from and at < item.display_from) or (
        item.display_until and at >= item.display_until
    ):
        return NotOnSale()
    if item.sale_from and at < item.sale_from:
        return NotOnSale(opens_at=item.sale_from.isoformat())
    if item.sale_until and at >= item.sale_until:
        return NotOnSale(closed_at=item.sale_until.isoformat())
    return None


def item_refusal(
    item: Item, *, standing: MemberStanding, usage: Usage, free_codes: int, at: datetime, quantity: int = 1
) -> DomainError | None:
    """Why the member may not order `quantity` of the item now, first reason first (None: they may,
    points permitting): a frozen account, an inactive member, not on sale, tier too low, a limit
    reached, sold out. Whether they have the points is the ledger's call (insufficient_points)."""
    if standing.is_frozen:
        return AccountFrozen()
    if not standing.is_active:
        return MemberInactive()
    if refusal := sale_refusal(item, at):
        return refusal
    if item.min_tier_id and rank_of(standing.level) < item.min_tier.rank:
        return TierRequired(required_tier=item.min_tier.code)
    if refusal := _limit_refusal(item, usage, quantity):
        return refusal
    left = remaining_stock(item, free_codes)
    if left is not None and left < quantity:
        return OutOfStock(remaining=left)
    return None


def item_offer(item: Item, *, standing: MemberStanding, usage: Usage, free_codes: int, at: datetime) -> Offer:
    price = unit_points(item.price_points, standing.discount_percent)
    return Offer(
        member_price=price, discount_percent=standing.discount_percent, affordable=standing.available >= price,
        points_short=max(price - standing.available, 0), remaining_stock=remaining_stock(item, free_codes),
        remaining_limit=remaining_limit(item, usage),
        refusal=item_refusal(item, standing=standing, usage=usage, free_codes=free_codes, at=at),
    )


def item_offers(items: list[Item], *, standing: MemberStanding, at: datetime) -> dict[int, Offer]:
    """Offers of a page of items: one query for the member's usage, one for free pool codes."""
    ids = [item.pk for item in items]
    usage = member_usage(member_id=standing.member_id, item_ids=ids, at=at)
    free = free_pool_codes(item_ids=[item.pk for item in items if item.code_source == CodeSource.POOL])
    return {
        item.pk: item_offer(item, standing=standing, usage=usage.get(item.pk, Usage()), free_codes=free.get(item.pk, 0),
                            at=at)
        for item in items
    }


# --- the catalogue ---------------------------------------------------------------------------


def catalogue_items(*, at: datetime | None = None) -> QuerySet[Item]:
    """Items members see now: active and inside their display window (a flash sale shows before
    it opens)."""
    at = at or timezone.now()
    return (
        Item.objects.filter(is_active=True)
        .filter(Q(display_from__isnull=True) | Q(display_from__lte=at))
        .filter(Q(display_until__isnull=True) | Q(display_until__gt=at))
        .select_related("category", "business_unit", "merchant", "min_tier")
    )


def affordable_filter(queryset: QuerySet[Item], *, standing: MemberStanding) -> QuerySet[Item]:
    """Items whose member price the member can pay. unit_points(p, d) <= a is exactly
    p * (10000 - 100 d) <= 10000 a in integers (d has two decimals), or a >= 1 at a full discount."""
    basis = 10000 - int(standing.discount_percent * 100)
    if basis <= 0:
        return queryset if standing.available >= 1 else queryset.none()
    return queryset.alias(member_cost=F("price_points") * basis).filter(member_cost__lte=10000 * standing.available)


def free_slots(*, item: Item, at: datetime | None = None, limit: int = 50) -> list[Slot]:
    """Slots of a bookable item that have not started and have places left, soonest first."""
    at = at or timezone.now()
    return list(Slot.objects.filter(item=item, starts_at__gt=at, booked__lt=F("capacity")).order_by("starts_at")[:limit])


# --- orders and coupons ----------------------------------------------------------------------


def member_orders(*, member_id: int) -> QuerySet[Order]:
    """The member's own orders (those they placed for an organization are the organization's)."""
    return (
        Order.objects.filter(member_id=member_id, organization__isnull=True)
        .select_related("item", "business_unit", "merchant", "slot")
        .prefetch_related(_order_coupons())
        .order_by("-id")
    )


def organization_orders(*, organization_id: int) -> QuerySet[Order]:
    """The orders paid from the organization's wallet, whichever administrator placed them."""
    return (
        Order.objects.filter(organization_id=organization_id)
        .select_related("item", "business_unit", "merchant", "slot", "member", "organization")
        .prefetch_related(_order_coupons())
        .order_by("-id")
    )


def _order_coupons() -> Prefetch:
    return Prefetch("coupons", queryset=Coupon.objects.select_related("item", "business_unit", "merchant")
                    .order_by("id"))


def member_coupons(*, member_id: int) -> QuerySet[Coupon]:
    return (
        Coupon.objects.filter(member_id=member_id)
        .select_related("item", "business_unit", "merchant", "order__slot")
        .order_by("-id")
    )


def coupon_by_code(*, raw_code: str) -> Coupon | None:
    """The live coupon (not cancelled) with this code, else the latest cancelled one; None when
    the code is unknown or cannot be a code."""
    candidates = codes.lookup_candidates(raw_code)
    if not candidates:
        return None
    found = (
        Coupon.objects.filter(code__in=candidates)
        .select_related("item", "business_unit", "merchant", "redeemed_by", "order__slot")
        .order_by("-id")
    )
    coupons = list(found[:10])
    live = [coupon for coupon in coupons if coupon.status != CouponStatus.CANCELLED]
    return (live or coupons or [None])[0]


def may_redeem(*, coupon: Coupon, business_unit: BusinessUnit, merchant: Merchant | None) -> bool:
    """Whether this caller may write the coupon off: its issuing merchant, or for a BU-wide
    coupon any caller of its business unit."""
    if coupon.business_unit_id != business_unit.pk:
        return False
    return coupon.merchant_id is None or (merchant is not None and coupon.merchant_id == merchant.pk)


def standing_write_off(*, coupon: Coupon) -> WriteOff | None:
    return coupon.write_offs.filter(undone_at__isnull=True).first()


def partner_items(*, business_unit: BusinessUnit, merchant: Merchant | None) -> QuerySet[Item]:
    """A partner's catalogue: a merchant key's items, or a BU key's items of the whole unit."""
    items = Item.objects.filter(business_unit=business_unit).select_related("category", "business_unit", "merchant",
                                                                            "min_tier")
    return items.filter(merchant=merchant) if merchant is not None else items


def partner_orders(*, business_unit: BusinessUnit, merchant: Merchant | None) -> QuerySet[Order]:
    orders = (
        Order.objects.filter(business_unit=business_unit)
        .select_related("item", "business_unit", "merchant", "slot", "member", "organization")
        .prefetch_related(_order_coupons())
        .order_by("-id")
    )
    return orders.filter(merchant=merchant) if merchant is not None else orders


def partner_write_offs(*, business_unit: BusinessUnit, merchant: Merchant | None) -> QuerySet[WriteOff]:
    write_offs = (
        WriteOff.objects.filter(business_unit=business_unit)
        .select_related("coupon__order", "merchant")
        .order_by("-id")
    )
    return write_offs.filter(merchant=merchant) if merchant is not None else write_offs

"""Factories of the mall's test data, and a helper that funds a member through the ledger."""

from datetime import timedelta

import factory
from django.utils import timezone

from mall.models import Category, Item, ItemKind, Slot
from points.earning import points_earn
from points.ledger import Idempotency
from tests.factories import BusinessUnitFactory


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"cat{n}")
    name_zh = factory.Sequence(lambda n: f"类别{n}")
    name_en = factory.Sequence(lambda n: f"Category {n}")


class ItemFactory(factory.django.DjangoModelFactory):
    """A service voucher valid 30 days, 100 points, unlimited stock, BU-wide unless a merchant is given."""

    class Meta:
        model = Item

    kind = ItemKind.SERVICE_VOUCHER
    category = factory.SubFactory(CategoryFactory)
    name_zh = factory.Sequence(lambda n: f"商品{n}")
    name_en = factory.Sequence(lambda n: f"Item {n}")
    price_points = 100
    business_unit = factory.SubFactory(BusinessUnitFactory)
    merchant = None
    stock = None
    valid_days = 30


def goods(**fields):
    return ItemFactory(kind=ItemKind.GOODS, valid_days=None, **fields)


def bookable(*, slots=1, capacity=3, **fields):
    item = ItemFactory(kind=ItemKind.BOOKABLE, valid_days=None, **fields)
    start = timezone.now() + timedelta(days=1)
    for n in range(slots):
        Slot.objects.create(item=item, starts_at=start + timedelta(hours=n), ends_at=start + timedelta(hours=n, minutes=50),
                            capacity=capacity)
    return item


_keys = iter(range(1, 10**9))


def fund(member, points, business_unit):
    """Credit `points` to the member through the real earn service."""
    return points_earn(member_id=member.pk, business_unit=business_unit, points=points,
                       idempotency=Idempotency(scope="test", key=f"fund-{next(_keys)}")).posting

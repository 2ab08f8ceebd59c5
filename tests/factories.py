"""Factories for test data, one module for every app. Members are enrolled through the
service, so each has a wallet; points are funded through the real earn service."""

from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from mall.models import Category, Item, ItemKind, Slot
from members.models import (
    BusinessUnit,
    BusinessUnitKind,
    Member,
    Merchant,
    MerchantCategory,
    Organization,
)
from members.services import member_enrol
from points.earning import points_earn
from points.ledger import Idempotency
from points.organizations import organization_earn
from points.models import EarningRule, EventType, ExpiryKind, ExpiryPolicy, RuleEffect
from tiers.models import QualificationBasis, TierLevel, TierProgramme


class BusinessUnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessUnit
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"bu{n}")
    name = factory.Sequence(lambda n: f"Business unit {n}")
    kind = BusinessUnitKind.MALL
    point_value_cny = Decimal("0.01")
    earn_rate = Decimal("1")
    pending_days = 0
    expiry_months = 12


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    business_unit = factory.SubFactory(BusinessUnitFactory)
    code = factory.Sequence(lambda n: f"m{n}")
    name = factory.Sequence(lambda n: f"Merchant {n}")
    category = MerchantCategory.RETAIL


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    code = factory.Sequence(lambda n: f"org{n}")
    name = factory.Sequence(lambda n: f"Tenant company {n}")


class OperatorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"operator{n}")
    is_staff = True
    is_superuser = True


_phones = iter(range(13_800_000_000, 13_900_000_000))


def enrol_member(**fields):
    """A member enrolled through the real service (so the wallet exists), with a unique phone."""
    fields.setdefault("phone", str(next(_phones)))
    return member_enrol(**fields)


# --- earning rules and expiry policies


class EarningRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EarningRule

    code = factory.Sequence(lambda n: f"rule-{n}")
    name = factory.LazyAttribute(lambda rule: rule.code.replace("-", " ").title())
    event_type = EventType.PURCHASE
    effect = RuleEffect.FIXED
    points = 10


class ExpiryPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExpiryPolicy

    code = factory.Sequence(lambda n: f"policy-{n}")
    name = factory.LazyAttribute(lambda policy: policy.code)
    kind = ExpiryKind.FIXED_MONTHS
    months = 12


# --- tiers: a programme with a three-rung ladder


class TierProgrammeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TierProgramme

    code = factory.Sequence(lambda n: f"prog{n}")
    name = factory.Sequence(lambda n: f"Programme {n}")
    basis = QualificationBasis.POINTS
    window_months = 12
    grace_days = 30


class TierLevelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TierLevel

    programme = factory.SubFactory(TierProgrammeFactory)
    code = factory.Sequence(lambda n: f"level{n}")
    name = factory.Sequence(lambda n: f"Level {n}")
    rank = factory.Sequence(lambda n: n)
    threshold = Decimal("0")


def ladder(**programme_fields) -> tuple[TierProgramme, dict[str, TierLevel]]:
    """Member (from 0), Silver (from 1,000) and Gold (from 5,000), in points or CNY."""
    programme = TierProgrammeFactory(**programme_fields)
    levels = {
        "member": TierLevelFactory(programme=programme, code="member", name="Member", rank=0, threshold=Decimal("0")),
        "silver": TierLevelFactory(
            programme=programme, code="silver", name="Silver", rank=1, threshold=Decimal("1000"),
            earn_multiplier=Decimal("1.25"), expiry_extension_months=3, redemption_discount_percent=Decimal("2"),
        ),
        "gold": TierLevelFactory(
            programme=programme, code="gold", name="Gold", rank=2, threshold=Decimal("5000"),
            earn_multiplier=Decimal("1.5"), expiry_extension_months=6, redemption_discount_percent=Decimal("5"),
        ),
    }
    return programme, levels


# --- the mall


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


def organization_admin(organization, **fields):
    """A member of `organization` who administers it."""
    member = enrol_member(organization=organization, **fields)
    Member.objects.filter(pk=member.pk).update(is_organization_admin=True)
    member.is_organization_admin = True
    return member


def fund_organization(organization, points, business_unit):
    """Credit `points` to the organization's wallet through the real organization earn."""
    return organization_earn(organization=organization, business_unit=business_unit, points=points,
                             idempotency=Idempotency(scope="test", key=f"fund-org-{next(_keys)}")).posting

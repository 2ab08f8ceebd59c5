"""Factories for test data. Members are enrolled through the service, so each has a wallet."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from members.models import BusinessUnit, BusinessUnitKind, Merchant, MerchantCategory, Organization
from members.services import member_enrol


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

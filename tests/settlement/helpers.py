from decimal import Decimal

from points.earning import points_earn
from tests.factories import BusinessUnitFactory


def units():
    """Three BUs with distinct point values: a hotel (0.02), a mall (0.01) and an office park (0.015)."""
    hotel = BusinessUnitFactory(code="hotel", name="Harbour Hotel", point_value_cny=Decimal("0.02"))
    mall = BusinessUnitFactory(code="mall", name="Central Mall", point_value_cny=Decimal("0.01"))
    park = BusinessUnitFactory(code="park", name="Office Park", point_value_cny=Decimal("0.015"))
    return hotel, mall, park


def earn(member, unit, points):
    return points_earn(member_id=member.pk, business_unit=unit, points=points, reason="test").posting

"""Factories for tier data: a programme with a three-rung ladder."""

from decimal import Decimal

import factory

from tiers.models import QualificationBasis, TierLevel, TierProgramme


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

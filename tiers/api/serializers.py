"""Output shapes of the tier endpoints."""

from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tiers.models import QualificationBasis


def _amount(progress, value: Decimal | None) -> str | None:
    """Whole points for a points programme ("120"), CNY with cents for a spend one ("350.00")."""
    if value is None:
        return None
    if progress.programme.basis == QualificationBasis.POINTS:
        return str(int(value))
    return f"{value:.2f}"


class TierLevelOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    rank = serializers.IntegerField()
    threshold = serializers.DecimalField(max_digits=14, decimal_places=2)
    earn_multiplier = serializers.DecimalField(max_digits=5, decimal_places=2)
    expiry_extension_months = serializers.IntegerField()
    redemption_discount_percent = serializers.DecimalField(max_digits=5, decimal_places=2)


class TierProgressOutputSerializer(serializers.Serializer):
    programme = serializers.CharField(source="programme.code")
    basis = serializers.ChoiceField(source="programme.basis", choices=QualificationBasis.choices)
    unit = serializers.SerializerMethodField(help_text="`points` or `CNY`: the unit of the amounts below.")
    window_start = serializers.DateTimeField(help_text="Start of the rolling qualification window.")
    window_end = serializers.DateTimeField()
    qualifying_value = serializers.SerializerMethodField(
        help_text="Points earned (or CNY spent) in the window, minus refunds; never the balance."
    )
    tier = TierLevelOutputSerializer(source="level", allow_null=True, help_text="The member's tier now.")
    manual_until = serializers.DateTimeField(
        source="override_ends_at", allow_null=True, help_text="Set when the tier was set by hand, until then."
    )
    next_tier = TierLevelOutputSerializer(source="next_level", allow_null=True)
    remaining = serializers.SerializerMethodField(help_text="Still needed for the next tier; null at the top.")
    progress_text = serializers.CharField(source="text", help_text='E.g. "120 points to Gold".')
    downgrade_due_at = serializers.DateTimeField(
        allow_null=True, help_text="When below the tier: the first requalification that may move the member down."
    )

    @extend_schema_field(serializers.ChoiceField(choices=["points", "CNY"]))
    def get_unit(self, progress) -> str:
        return "points" if progress.programme.basis == QualificationBasis.POINTS else "CNY"

    @extend_schema_field(OpenApiTypes.STR)
    def get_qualifying_value(self, progress):
        return _amount(progress, progress.qualifying_value)

    @extend_schema_field({"type": "string", "nullable": True})
    def get_remaining(self, progress):
        return _amount(progress, progress.remaining)

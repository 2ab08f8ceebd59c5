"""Serializers of the events and rule-simulation endpoints: inputs check shape only."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from points.api.serializers import AmountField, EarnInputSerializer, ExplanationLineSerializer
from points.models import EventType

# Referrals are awarded by the system after the referee's first purchase, never posted by partners.
PARTNER_EVENT_TYPES = [choice for choice in EventType.choices if choice[0] != EventType.REFERRAL]


class EventSerializer(EarnInputSerializer):
    event_type = serializers.ChoiceField(choices=PARTNER_EVENT_TYPES)
    amount = AmountField(source="amount_cny", required=False, default=None)
    reference = serializers.CharField(
        source="receipt_no", max_length=64, required=False, default="", allow_blank=True,
        help_text=_("The partner's reference of the event (receipt, bill, ticket, survey id...)."),
    )

    def validate(self, attrs):
        if attrs["event_type"] == EventType.PURCHASE and attrs["amount_cny"] is None:
            raise serializers.ValidationError({"amount": [_("A purchase needs an amount.")]})
        return super().validate(attrs)


class SimulatedLotSerializer(serializers.Serializer):
    points = serializers.IntegerField()
    rule = serializers.CharField(source="rule_code", help_text=_("The rule giving most of these points."))
    available_at = serializers.DateTimeField(source="terms.available_at")
    expires_at = serializers.DateTimeField(source="terms.expires_at")


class SimulationSerializer(serializers.Serializer):
    points = serializers.IntegerField(help_text=_("Points the event would give now."))
    explanation = ExplanationLineSerializer(many=True)
    lots = SimulatedLotSerializer(many=True, help_text=_("How the points would be credited: one lot per pending/expiry."))

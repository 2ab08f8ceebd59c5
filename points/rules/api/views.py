"""Views of the earning events and the rule simulation (partners).

`POST /events/` credits the points the earning rules give for an event (Idempotency-Key
required; 201 new, 200 replay); `POST /rules/simulate/` answers the same question for the same
body without posting anything.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, IDEMPOTENCY_PARAMETER, error_responses
from members.permissions import IsPartner
from points.rules.api.serializers import EventSerializer, SimulationSerializer
from points.api.views import EarnView, earn_arguments, write_responses
from points.earning import earn_simulate

EVENT_EXAMPLES = [
    OpenApiExample("check-in", value={"member": 42, "event_type": "check_in", "reference": "app-checkin-20260301"},
                   request_only=True),
    OpenApiExample("parking payment",
                   value={"card_no": "8800123456789012", "event_type": "parking", "amount": "30.00",
                          "merchant": "parking", "reference": "P-88812"},
                   request_only=True),
]
INVALID_FIELDS = {"event_type": ['"lottery" is not a valid choice.']}


class EventView(EarnView):
    input_serializer = EventSerializer

    @extend_schema(
        operation_id="events_create",
        summary="Credit the points the earning rules give for an event",
        description=(
            "Purchases, bills, parking, check-ins, event sign-ins, surveys, reviews, registration, birthday. "
            "The rules of the key's business unit decide the points; the transaction's `explanation` lists each "
            "rule that fired and its points. An event no rule rewards is recorded with 0 points."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=EventSerializer,
        responses=write_responses("invalid_occurred_at", "merchant_not_permitted", "not_found", "member_inactive",
                                  invalid_fields=INVALID_FIELDS),
        examples=EVENT_EXAMPLES,
        tags=["events"],
    )
    def post(self, request):
        return super().post(request)


class RuleSimulationView(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="rules_simulate",
        summary="How many points an event would give this member now, and why (posts nothing)",
        description="The same body as `POST /events/`; no Idempotency-Key, since nothing is written.",
        request=EventSerializer,
        responses={
            200: SimulationSerializer,
            **error_responses("invalid", "parse_error", "invalid_occurred_at", "merchant_not_permitted", "not_found",
                              "member_inactive", *AUTH_ERRORS,
                              invalid_fields=INVALID_FIELDS),
        },
        examples=EVENT_EXAMPLES,
        tags=["events"],
    )
    def post(self, request):
        arguments = earn_arguments(request, EventSerializer)
        del arguments["receipt_no"]  # a simulation records nothing
        return Response(SimulationSerializer(earn_simulate(**arguments)).data)

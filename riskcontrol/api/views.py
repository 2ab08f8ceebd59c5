"""Thin views: who may ask, one selector call, the output serializer."""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, error_responses
from members.permissions import IsMember
from riskcontrol.api.serializers import RiskStatusOutputSerializer
from riskcontrol.selectors import member_risk_status


def status_message(status) -> str:
    if not status.under_review:
        return _("Your account is in good standing.")
    return _("Your account is under review. Some points or operations may be unavailable until the review is "
             "complete; customer service can tell you more.")


class MyRiskStatusApi(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_risk_status",
        summary="Whether my account is under review",
        description="Tells the member whether their account is under review and what is paused, without naming "
                    "the rule or the reason.",
        responses={200: RiskStatusOutputSerializer, **error_responses(*AUTH_ERRORS)},
        examples=[OpenApiExample("under review", response_only=True, value={
            "under_review": True, "earning_paused": False, "spending_paused": True,
            "message": "Your account is under review. Some points or operations may be unavailable until the "
                       "review is complete; customer service can tell you more.",
        })],
        tags=["me"],
    )
    def get(self, request):
        status = member_risk_status(member=request.user.member)
        return Response(RiskStatusOutputSerializer({**vars(status), "message": status_message(status)}).data)

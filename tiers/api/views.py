"""Thin views: who may ask, one selector call, the output serializer."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, ErrorSerializer, error_responses
from members.permissions import IsMember, IsPartner
from tiers.api.serializers import TierProgressOutputSerializer
from tiers.exceptions import NoTierProgramme
from tiers.selectors import tier_progress

NO_PROGRAMME = {
    409: OpenApiResponse(
        response=ErrorSerializer,
        description="`no_tier_programme`",
        examples=[OpenApiExample(
            "no_tier_programme", value={"code": NoTierProgramme.code, "detail": str(NoTierProgramme.default_detail)},
            status_codes=["409"], response_only=True,
        )],
    )
}


# Built once: binding a serializer's fields costs more than representing one progress.
PROGRESS_OUTPUT = TierProgressOutputSerializer()


def _progress_response(member_id: int) -> Response:
    progress = tier_progress(member_id=member_id)
    if progress is None:
        raise NoTierProgramme()
    return Response(PROGRESS_OUTPUT.to_representation(progress))


class MemberTierApi(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="member_tier",
        summary="A member's tier and progress to the next one",
        responses={200: TierProgressOutputSerializer, **error_responses("not_found", *AUTH_ERRORS), **NO_PROGRAMME},
        tags=["tiers"],
    )
    def get(self, request, member_id: int):
        return _progress_response(member_id)


class MyTierApi(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_tier",
        summary="My tier and what I still need for the next one",
        responses={200: TierProgressOutputSerializer, **error_responses(*AUTH_ERRORS), **NO_PROGRAMME},
        tags=["tiers"],
    )
    def get(self, request):
        return _progress_response(request.user.member.pk)

"""Thin views: who may ask, one selector call, the output serializer."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.permissions import IsMember, IsPartner
from config.errors import NotFound
from members.models import Member
from tiers.api.serializers import TierProgressOutputSerializer
from tiers.exceptions import NoTierProgramme
from tiers.selectors import tier_progress

ERRORS = {
    401: OpenApiResponse(description="`not_authenticated` / `authentication_failed`."),
    403: OpenApiResponse(description="`permission_denied`: the wrong kind of caller."),
    409: OpenApiResponse(description="`no_tier_programme`: no tier programme is active."),
}


def _progress_response(member: Member) -> Response:
    progress = tier_progress(member=member)
    if progress is None:
        raise NoTierProgramme()
    return Response(TierProgressOutputSerializer(progress).data)


class MemberTierApi(APIView):
    permission_classes = [IsPartner]

    @extend_schema(
        operation_id="member_tier",
        summary="A member's tier and progress to the next one",
        responses={200: TierProgressOutputSerializer, 404: OpenApiResponse(description="`not_found`."), **ERRORS},
        tags=["tiers"],
    )
    def get(self, request, member_id: int):
        member = Member.objects.filter(pk=member_id).first()
        if member is None:
            raise NotFound(_("Member not found."))
        return _progress_response(member)


class MyTierApi(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_tier",
        summary="My tier and what I still need for the next one",
        responses={200: TierProgressOutputSerializer, **ERRORS},
        tags=["tiers"],
    )
    def get(self, request):
        return _progress_response(request.user.member)

"""Views of the members API: enrolment and look-up (partners), the member's profile, sign-in."""

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.api.openapi import AUTH_ERRORS, error_responses
from members.permissions import IsMember, IsPartner
from members.api.serializers import (
    MemberEnrolSerializer,
    MemberLookupSerializer,
    MemberSerializer,
    MeUpdateSerializer,
    OtpRequestSerializer,
    OtpSentSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)
from members.selectors import member_search
from members.services import member_enrol, member_sign_in, member_token_revoke, member_update, otp_send

ENROL_EXAMPLE = OpenApiExample(
    "enrol",
    value={"phone": "13800138000", "name": "Li Lei", "birthday": "1990-05-17", "email": "li.lei@example.com",
           "organization": "acme", "consent_marketing": True, "consent_sms": True, "consent_email": True,
           "language": "en"},
    request_only=True,
)


class MemberListCreateView(generics.ListAPIView):
    """Enrol a member, or look one up by phone or card number (never a listing of all members)."""

    permission_classes = [IsPartner]
    serializer_class = MemberSerializer
    filter_backends = []

    def get_queryset(self):
        lookup = MemberLookupSerializer(data=self.request.query_params)
        lookup.is_valid(raise_exception=True)
        return member_search(**lookup.validated_data)

    @extend_schema(
        operation_id="members_lookup",
        summary="Look up members by phone or card number",
        parameters=[MemberLookupSerializer],
        responses={
            200: MemberSerializer(many=True),
            **error_responses("invalid", "page_not_found", *AUTH_ERRORS, invalid_fields={
                "non_field_errors": ["Give phone or card_no: members are looked up, never listed."]}),
        },
        tags=["members"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="members_enrol",
        summary="Enrol a member",
        description="Enrols a member at the key's business unit and opens their wallet. A phone enrols once.",
        request=MemberEnrolSerializer,
        responses={
            201: MemberSerializer,
            **error_responses("invalid", "invalid_referral_code", "phone_already_enrolled", "risk_blocked", *AUTH_ERRORS,
                             invalid_fields={"phone": ["This value does not match the required pattern."]}),
        },
        examples=[ENROL_EXAMPLE],
        tags=["members"],
    )
    def post(self, request):
        data = MemberEnrolSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        member = member_enrol(business_unit=request.user.business_unit, **data.validated_data)
        return Response(MemberSerializer(member).data, status=status.HTTP_201_CREATED)


class MeView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="me_profile",
        summary="The signed-in member's profile",
        responses={200: MemberSerializer, **error_responses(*AUTH_ERRORS)},
        tags=["me"],
    )
    def get(self, request):
        return Response(MemberSerializer(request.user.member).data)

    @extend_schema(
        operation_id="me_profile_update",
        summary="Change my language and consents",
        description=(
            "The language of statements and messages, and the consents: statements and reminders go only by "
            "e-mail or SMS when consented to (e-mail also needs an address); offers need the marketing consent. "
            "Fields left out are unchanged."
        ),
        request=MeUpdateSerializer,
        responses={200: MemberSerializer, **error_responses(
            "invalid", *AUTH_ERRORS, invalid_fields={"language": ['"fr" is not a valid choice.']})},
        examples=[OpenApiExample("opt in", value={"language": "en", "consent_email": True, "consent_sms": False},
                                 request_only=True)],
        tags=["me"],
    )
    def patch(self, request):
        data = MeUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        member = member_update(member=request.user.member, **data.validated_data)
        return Response(MemberSerializer(member).data)


class OtpView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "otp"

    @extend_schema(
        operation_id="auth_otp",
        summary="Send a sign-in code by SMS",
        description=(
            "Sends a six-digit code to the phone if a member has it. The answer is the same whether or not the "
            "phone is enrolled. Limited per phone per hour (`otp_rate_limited`) and per client (`throttled`)."
        ),
        request=OtpRequestSerializer,
        responses={
            202: OtpSentSerializer,
            **error_responses("invalid", "otp_rate_limited", "throttled",
                              invalid_fields={"phone": ["This field is required."]}),
        },
        examples=[OpenApiExample("request", value={"phone": "13800138000"}, request_only=True)],
        tags=["auth"],
    )
    def post(self, request):
        data = OtpRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        otp_send(phone=data.validated_data["phone"])
        body = {"detail": _("If this phone number is enrolled, a code was sent to it."),
                "expires_in": settings.OTP_TTL_SECONDS}
        return Response(OtpSentSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class TokenView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    @extend_schema(
        operation_id="auth_token",
        summary="Exchange phone and code for a bearer token",
        request=TokenRequestSerializer,
        responses={
            200: TokenSerializer,
            **error_responses("invalid", "invalid_code", "throttled",
                              invalid_fields={"code": ["This value does not match the required pattern."]}),
        },
        examples=[OpenApiExample("request", value={"phone": "13800138000", "code": "482913"}, request_only=True)],
        tags=["auth"],
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sign_in = member_sign_in(**data.validated_data)
        return Response(TokenSerializer(sign_in).data)


class TokenRevokeView(APIView):
    permission_classes = [IsMember]

    @extend_schema(
        operation_id="auth_token_revoke",
        summary="Revoke the presented bearer token",
        request=None,
        responses={204: None, **error_responses(*AUTH_ERRORS)},
        tags=["auth"],
    )
    def post(self, request):
        member_token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)

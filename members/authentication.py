"""Authentication of API callers: partners by `Api-Key <key>`, members by `Bearer <token>`.

A partner key is checked (its secret, expiry, revocation), its last use recorded (at most once a
minute) and its request counted against its rate limit (members.ratelimit: 429 `rate_limited`)."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from members.exceptions import RateLimited
from members.permissions import IsMember, IsPartner
from members.principals import MemberPrincipal, PartnerPrincipal
from members.ratelimit import partner_rate_limit_wait
from members.selectors import member_for_token, partner_key_for_prefix
from members.services import partner_key_mark_used


def _credentials(request, scheme: str) -> str | None:
    header = authentication.get_authorization_header(request).decode("latin-1")
    prefix, _sep, value = header.partition(" ")
    if prefix.lower() != scheme.lower():
        return None
    if not value.strip():
        raise exceptions.AuthenticationFailed(_("Empty credentials."))
    return value.strip()


class PartnerKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        key = _credentials(request, self.keyword)
        if key is None:
            return None
        prefix, _dot, _secret = key.partition(".")
        api_key = partner_key_for_prefix(prefix=prefix)
        if api_key is None or not api_key.is_valid(key):
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        if api_key.has_expired or not api_key.business_unit.is_active:
            raise exceptions.AuthenticationFailed(_("API key revoked or expired."))
        partner_key_mark_used(key=api_key)
        wait = partner_rate_limit_wait(key=api_key)
        if wait is not None:
            raise RateLimited(wait=wait)
        principal = PartnerPrincipal(key=api_key, business_unit=api_key.business_unit, merchant=api_key.merchant)
        return principal, api_key

    def authenticate_header(self, request):
        return self.keyword


class MemberTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        token = _credentials(request, self.keyword)
        if token is None:
            return None
        member = member_for_token(token=token)
        if member is None:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked token."))
        return MemberPrincipal(member=member), token

    def authenticate_header(self, request):
        return self.keyword


def _view_admits(auto_schema, permission) -> bool:
    """Whether an operation admits the principal of `permission`: a view that requires the other
    kind of caller does not list this scheme in the schema (both authenticate, so that a wrong
    caller gets a clear 403 rather than a bare 401)."""
    required = {type(p) for p in auto_schema.view.get_permissions()} & {IsPartner, IsMember}
    return not required or permission in required


class PartnerKeyScheme(OpenApiAuthenticationExtension):
    target_class = PartnerKeyAuthentication
    name = "PartnerApiKey"

    def get_security_requirement(self, auto_schema):
        return super().get_security_requirement(auto_schema) if _view_admits(auto_schema, IsPartner) else None

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Api-Key <key>`: a partner key scoped to one business unit (and optionally a merchant)."}


class MemberTokenScheme(OpenApiAuthenticationExtension):
    target_class = MemberTokenAuthentication
    name = "MemberBearer"

    def get_security_requirement(self, auto_schema):
        return super().get_security_requirement(auto_schema) if _view_admits(auto_schema, IsMember) else None

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A member token from POST /api/v1/auth/token/."}

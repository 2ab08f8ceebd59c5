"""Permissions of the API: which kind of caller (partner or member) an endpoint admits."""

from rest_framework.permissions import BasePermission

from members.principals import MemberPrincipal, PartnerPrincipal


class IsPartner(BasePermission):
    message = "This endpoint is for partner systems (Authorization: Api-Key <key>)."

    def has_permission(self, request, view):
        return isinstance(request.user, PartnerPrincipal)


class IsMember(BasePermission):
    message = "This endpoint is for members (Authorization: Bearer <token>)."

    def has_permission(self, request, view):
        return isinstance(request.user, MemberPrincipal)

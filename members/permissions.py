"""Permissions of the API: which kind of caller (partner or member) an endpoint admits."""

from rest_framework.permissions import BasePermission

from members.exceptions import PresenceRequired
from members.principals import MemberPrincipal, PartnerPrincipal


class IsPartner(BasePermission):
    message = "This endpoint is for partner systems (Authorization: Api-Key <key>)."

    def has_permission(self, request, view):
        return isinstance(request.user, PartnerPrincipal)


class IsMember(BasePermission):
    message = "This endpoint is for members (Authorization: Bearer <token>)."

    def has_permission(self, request, view):
        return isinstance(request.user, MemberPrincipal)


class MaySpendWithoutPresence(BasePermission):
    """For a partner that names the member by id alone (spend, hold): its key must be allowed to
    spend without the member present (`PartnerKey.may_spend_without_presence`), else 403
    `presence_required` and the till authorises a payment with the member's pay code instead.
    Read from the key already loaded by authentication: no statement of its own."""

    def has_permission(self, request, view):
        if isinstance(request.user, PartnerPrincipal) and not request.user.key.may_spend_without_presence:
            raise PresenceRequired()
        return True

"""Reads on parties."""

import hashlib

from django.db.models import QuerySet
from django.utils import timezone

from members.exceptions import MerchantNotPermitted
from members.models import BusinessUnit, Member, MemberToken, Merchant, Organization


def member_search(*, phone: str = "", card_no: str = "") -> QuerySet[Member]:
    members = Member.objects.select_related("organization")
    if phone:
        members = members.filter(phone=phone)
    if card_no:
        members = members.filter(card_no=card_no)
    return members


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def member_for_token(*, token: str) -> Member | None:
    """The member a bearer token belongs to, if the token is live (not expired, not revoked)."""
    found = (
        MemberToken.objects.select_related("member")
        .filter(key_hash=token_hash(token), revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    return found.member if found else None


def member_get(*, member_id: int) -> Member | None:
    return Member.objects.select_related("organization").filter(pk=member_id).first()


def organization_by_code(*, code: str) -> Organization | None:
    return Organization.objects.filter(code=code).first()


def merchant_for_partner(*, business_unit: BusinessUnit, key_merchant: Merchant | None, code: str) -> Merchant | None:
    """The merchant a partner books a purchase to: an active merchant of the key's BU.

    A key scoped to a merchant always books to that merchant; naming another one is refused
    (MerchantNotPermitted) rather than silently rewritten. Returns None when no merchant of the
    BU has that code.
    """
    if key_merchant is not None:
        if code and code != key_merchant.code:
            raise MerchantNotPermitted()
        return key_merchant
    return Merchant.objects.filter(business_unit=business_unit, code=code, is_active=True).first()

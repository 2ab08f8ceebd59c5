"""Reads on parties."""

import hashlib

from django.db.models import QuerySet
from django.utils import timezone

from members.models import Member, MemberToken


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

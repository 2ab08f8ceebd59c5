"""Reads on parties."""

import hashlib

from django.db.models import Q, QuerySet
from django.utils import timezone

from config.cache import VersionedCache
from members.exceptions import MerchantNotPermitted, UnknownMerchant
from members.models import BusinessUnit, Member, MemberToken, Merchant, Organization, PartnerKey


def member_search(*, phone: str = "", card_no: str = "") -> QuerySet[Member]:
    members = Member.objects.select_related("organization")
    if phone:
        members = members.filter(phone=phone)
    if card_no:
        members = members.filter(card_no=card_no)
    return members


def member_id_for(*, card_no: str = "", phone: str = "") -> int | None:
    """The id of the member with this card number or phone (both unique), if any: how a POS,
    which knows a card or a phone but not a member id, names the member of an earn."""
    members = Member.objects.filter(card_no=card_no) if card_no else Member.objects.filter(phone=phone)
    return members.values_list("pk", flat=True).first()


def member_ids_by_identifier(*, card_nos: set[str], phones: set[str]) -> dict[tuple[str, str], int]:
    """`member_id_for` of many in one statement: {("card_no", value) or ("phone", value): id}."""
    if not card_nos and not phones:
        return {}
    rows = Member.objects.filter(Q(card_no__in=card_nos) | Q(phone__in=phones)).values_list("pk", "card_no", "phone")
    found = {}
    for pk, card_no, phone in rows:
        if card_no in card_nos:
            found["card_no", card_no] = pk
        if phone in phones:
            found["phone", phone] = pk
    return found


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
    """The merchant a partner's request books to: the one resolution of every earn, event,
    simulation and bulk-earn item.

    A blank code means no merchant named: the key's merchant for a key scoped to one, else none
    (the posting is the business unit's own). A code must name an active merchant of the key's
    business unit (else UnknownMerchant, 400 `invalid` naming `merchant`); a key scoped to a
    merchant may name only that one (another is MerchantNotPermitted, 403), never silently
    rewritten.
    """
    if not code or (key_merchant is not None and code == key_merchant.code):
        return key_merchant
    merchant = active_merchants.get(business_unit.pk, code)
    if merchant is None:
        raise UnknownMerchant()
    if key_merchant is not None:
        raise MerchantNotPermitted()
    return merchant


def _partner_key_load(prefix: str) -> PartnerKey | None:
    return PartnerKey.objects.get_usable_keys().select_related("business_unit", "merchant").filter(prefix=prefix).first()


def _active_merchant_load(business_unit_id: int, code: str) -> Merchant | None:
    return Merchant.objects.filter(business_unit_id=business_unit_id, code=code, is_active=True).first()


# Read on every partner request; invalidated by any change of keys, business units or merchants
# (wired in MembersConfig.ready).
partner_keys = VersionedCache("partner-keys", _partner_key_load)
active_merchants = VersionedCache("merchants", _active_merchant_load)


def partner_key_for_prefix(*, prefix: str) -> PartnerKey | None:
    """The unrevoked partner key with this prefix, its business unit and merchant loaded; the
    caller checks the secret and the expiry date (both per request)."""
    return partner_keys.get(prefix)

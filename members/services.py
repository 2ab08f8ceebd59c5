"""Writes on parties. Enrolment runs the registered enrolment hooks in the same transaction.

Apps above members (points opens the wallet) register a hook in their AppConfig.ready, so a
member never exists without a wallet and members never imports the apps above it.
"""

import secrets
from collections.abc import Callable
from datetime import date, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from members.exceptions import InvalidReferralCode, PhoneAlreadyEnrolled
from members.models import BusinessUnit, Member, MemberToken, Organization
from members.selectors import token_hash

EnrolmentHook = Callable[[Member], None]
_enrolment_hooks: list[EnrolmentHook] = []

REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CARD_PREFIX = "88"


def register_enrolment_hook(hook: EnrolmentHook) -> None:
    """Register a function run for every new member inside the enrolment transaction."""
    if hook not in _enrolment_hooks:
        _enrolment_hooks.append(hook)


def luhn_check_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def card_number_generate() -> str:
    """A 16-digit card number: prefix, 13 random digits and a Luhn check digit."""
    body = CARD_PREFIX + "".join(secrets.choice("0123456789") for _ in range(13))
    return body + luhn_check_digit(body)


def referral_code_generate() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(8))


def member_enrol(
    *,
    phone: str,
    name: str = "",
    birthday: date | None = None,
    email: str = "",
    organization: Organization | None = None,
    business_unit: BusinessUnit | None = None,
    referral_code: str = "",
    consent_marketing: bool = False,
    consent_sms: bool = False,
    consent_data_sharing: bool = False,
) -> Member:
    """Enrol a member and open their wallet; a phone number enrols once."""
    referrer = None
    if referral_code:
        referrer = Member.objects.filter(referral_code=referral_code.strip().upper()).first()
        if referrer is None:
            raise InvalidReferralCode()
    try:
        with transaction.atomic():
            member = Member.objects.create(
                phone=phone,
                name=name,
                birthday=birthday,
                email=email,
                organization=organization,
                enrolled_business_unit=business_unit,
                referred_by=referrer,
                consent_marketing=consent_marketing,
                consent_sms=consent_sms,
                consent_data_sharing=consent_data_sharing,
                card_no=card_number_generate(),
                referral_code=referral_code_generate(),
            )
            for hook in _enrolment_hooks:
                hook(member)
    except IntegrityError as exc:
        if Member.objects.filter(phone=phone).exists():
            raise PhoneAlreadyEnrolled() from exc
        raise
    return member


def member_token_issue(*, member: Member) -> str:
    """Issue a bearer token for the member; only its hash is stored. Returns the token once."""
    token = secrets.token_urlsafe(32)
    MemberToken.objects.create(
        member=member,
        key_hash=token_hash(token),
        expires_at=timezone.now() + timedelta(seconds=settings.MEMBER_TOKEN_TTL_SECONDS),
    )
    return token


def member_token_revoke(*, token: str) -> bool:
    """Revoke a token; returns whether a live token was revoked."""
    return bool(
        MemberToken.objects.filter(key_hash=token_hash(token), revoked_at__isnull=True).update(revoked_at=timezone.now())
    )

"""Writes on parties. Enrolment runs the registered enrolment hooks in the same transaction.

Apps above members (points opens the wallet) register a hook in their AppConfig.ready, so a
member never exists without a wallet and members never imports the apps above it.
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from members.exceptions import InvalidCode, InvalidReferralCode, OtpRateLimited, PartnerKeyNotRotatable, PhoneAlreadyEnrolled
from members.models import (
    BusinessUnit, Member, MemberLanguage, MemberStatus, MemberToken, OneTimeCode, Organization, PartnerKey,
)
from members.selectors import token_hash
from members.sms import sms_backend

EnrolmentHook = Callable[[Member], None]
_enrolment_hooks: list[EnrolmentHook] = []

REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CARD_PREFIX = "88"
_RANDOM = secrets.SystemRandom()  # card and referral numbers: the operating system's randomness


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
    body = f"{CARD_PREFIX}{_RANDOM.randrange(10**13):013d}"  # one draw: 13 uniform digits
    return body + luhn_check_digit(body)


def referral_code_generate() -> str:
    """8 characters of REFERRAL_ALPHABET, uniform, from one draw (a draw per character costs a
    system call each, which a bulk import of a million members feels)."""
    number, characters = _RANDOM.randrange(len(REFERRAL_ALPHABET) ** 8), []
    for _ in range(8):
        number, index = divmod(number, len(REFERRAL_ALPHABET))
        characters.append(REFERRAL_ALPHABET[index])
    return "".join(characters)


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
    consent_email: bool = False,
    consent_data_sharing: bool = False,
    language: str = MemberLanguage.ZH_HANS,
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
                consent_email=consent_email,
                consent_data_sharing=consent_data_sharing,
                language=language,
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


# --- sign-in with a one-time code ------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    token: str
    expires_at: datetime
    member: Member


def otp_code_hash(*, phone: str, code: str) -> str:
    """A keyed hash: a leaked table of six-digit codes cannot be reversed without SECRET_KEY."""
    return hmac.new(settings.SECRET_KEY.encode(), f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def _phone_lock(phone: str) -> None:
    """Serialise code requests for one phone (PostgreSQL advisory lock, released at commit), so
    concurrent requests cannot overshoot the hourly limit. SQLite serialises writers anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"otp:{phone}"])


def otp_send(*, phone: str) -> None:
    """Send a six-digit sign-in code by SMS, at most OTP_MAX_PER_PHONE_PER_HOUR times an hour.

    The caller learns nothing about enrolment: a code is recorded, and counted against the
    limit, for every phone alike; the SMS goes out only when an active member has the phone.
    Only the latest code of a phone can be exchanged for a token.
    """
    code = f"{secrets.randbelow(10**6):06d}"
    now = timezone.now()
    with transaction.atomic(durable=True):
        _phone_lock(phone)
        recent = OneTimeCode.objects.filter(phone=phone, created_at__gt=now - timedelta(hours=1)).count()
        if recent >= settings.OTP_MAX_PER_PHONE_PER_HOUR:
            raise OtpRateLimited()
        OneTimeCode.objects.create(
            phone=phone,
            code_hash=otp_code_hash(phone=phone, code=code),
            expires_at=now + timedelta(seconds=settings.OTP_TTL_SECONDS),
        )
        enrolled = Member.objects.filter(phone=phone, status=MemberStatus.ACTIVE).exists()
    if enrolled:
        minutes = max(1, settings.OTP_TTL_SECONDS // 60)
        message = _("Your sign-in code is %(code)s. It expires in %(minutes)d minutes.") % {"code": code, "minutes": minutes}
        sms_backend().send(phone=phone, message=message)


def member_sign_in(*, phone: str, code: str) -> SignIn:
    """Exchange a phone's latest one-time code for a bearer token.

    The code is single-use, expires after OTP_TTL_SECONDS and dies after OTP_MAX_ATTEMPTS wrong
    tries (each wrong try is counted even though the request fails). Every failure, including a
    phone nobody enrolled, raises the same InvalidCode.
    """
    now = timezone.now()
    with transaction.atomic(durable=True):
        otp = OneTimeCode.objects.select_for_update().filter(phone=phone).order_by("-id").first()
        live = (
            otp is not None and otp.used_at is None and otp.expires_at > now
            and otp.attempts < settings.OTP_MAX_ATTEMPTS
        )
        if live:
            member = Member.objects.filter(phone=phone, status=MemberStatus.ACTIVE).first()
            if member is not None and hmac.compare_digest(otp.code_hash, otp_code_hash(phone=phone, code=code)):
                otp.used_at = now
                otp.save(update_fields=["used_at"])
                token = member_token_issue(member=member)
                issued = MemberToken.objects.get(key_hash=token_hash(token))
                return SignIn(token=token, expires_at=issued.expires_at, member=member)
            otp.attempts += 1
            otp.save(update_fields=["attempts"])
    raise InvalidCode()


def member_tokens_revoke_all(*, member: Member) -> int:
    """Revoke every live token of the member (sign out everywhere); returns how many."""
    return MemberToken.objects.filter(member=member, revoked_at__isnull=True).update(revoked_at=timezone.now())


MEMBER_PROFILE_FIELDS = (
    "phone", "name", "birthday", "email", "organization", "is_organization_admin", "status", "enrolled_business_unit",
    "consent_marketing", "consent_sms", "consent_data_sharing", "consent_email", "language",
)


def member_update(*, member: Member, **changes) -> Member:
    """Change a member's profile fields (not the card number or referral code, which never change).

    Returns the member; a phone number already enrolled by someone else is refused.
    """
    unknown = set(changes) - set(MEMBER_PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"not profile fields: {sorted(unknown)}")
    for field, value in changes.items():
        setattr(member, field, value)
    try:
        with transaction.atomic():
            member.save(update_fields=list(changes))
    except IntegrityError as exc:
        if "phone" in changes and Member.objects.filter(phone=changes["phone"]).exclude(pk=member.pk).exists():
            raise PhoneAlreadyEnrolled() from exc
        raise
    return member


# --- partner keys ------------------------------------------------------------------------


def partner_key_rotate(*, key: PartnerKey, old_expires_in: timedelta | None = None,
                       expiry_date: datetime | None = None) -> tuple[PartnerKey, str]:
    """Issue the successor of a live key: same business unit, merchant, name, rate limit and
    presence rule, and the same idempotency scope (the chain's `lineage`), so a retry sent with
    either key replays.
    The old key keeps working until it expires or is revoked; `old_expires_in` brings its expiry
    forward to now + that (never later than it was). Returns the new key and its secret, shown once."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        old = PartnerKey.objects.select_for_update().get(pk=key.pk)
        if old.revoked or old.has_expired:
            raise PartnerKeyNotRotatable()
        successor, secret = PartnerKey.objects.create_key(
            name=old.name, business_unit_id=old.business_unit_id, merchant_id=old.merchant_id,
            rate_limit_per_minute=old.rate_limit_per_minute, predecessor=old, lineage=old.idempotency_prefix,
            may_spend_without_presence=old.may_spend_without_presence,
            expiry_date=expiry_date,
        )
        if old_expires_in is not None:
            ends = now + old_expires_in
            if old.expiry_date is None or ends < old.expiry_date:
                old.expiry_date = ends
                old.save(update_fields=["expiry_date"])
    return successor, secret


def partner_key_mark_used(*, key: PartnerKey, now: datetime | None = None) -> bool:
    """Record that `key` authenticated a request, at most once per PARTNER_KEY_LAST_USED_SECONDS:
    this process remembers when it last wrote each key (no round trip at all in between), and
    its conditional UPDATE writes only when the stored time is older than the interval, so the
    processes together write about once per interval. No save signal fires: the cached keys stay
    cached. Returns whether it wrote."""
    interval = settings.PARTNER_KEY_LAST_USED_SECONDS
    now = now or timezone.now()
    last = _keys_marked.get(key.prefix)
    if last is not None and now - last < timedelta(seconds=interval):
        return False
    _keys_marked[key.prefix] = now
    return bool(
        PartnerKey.objects.filter(pk=key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(seconds=interval)))
        .update(last_used_at=now)
    )


_keys_marked: dict[str, datetime] = {}  # key prefix: when this process last wrote its last use


def partner_key_presence_set(*, key: PartnerKey, may_spend_without_presence: bool) -> PartnerKey:
    """Set whether the key may spend a member's points by member id alone, without the member
    present (the console's actions; the demo seed)."""
    with transaction.atomic(durable=True):
        key = PartnerKey.objects.select_for_update().get(pk=key.pk)
        if key.may_spend_without_presence != may_spend_without_presence:
            key.may_spend_without_presence = may_spend_without_presence
            key.save(update_fields=["may_spend_without_presence"])  # the save invalidates the cached keys
    return key

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions

from config.errors import DomainError


class PhoneAlreadyEnrolled(DomainError):
    status_code = 409
    code = "phone_already_enrolled"
    default_detail = _("A member with this phone number is already enrolled.")


class InvalidReferralCode(DomainError):
    code = "invalid_referral_code"
    default_detail = _("No member has this referral code.")


class UnknownMerchant(DomainError):
    """A merchant code that no active merchant of the key's business unit has: bad input of the
    request's `merchant` field, answered like any validation error (400 `invalid`, the field named)."""

    code = "invalid"
    default_detail = _("Invalid input.")
    field_message = _("No active merchant of this business unit has this code.")

    def __init__(self, field: str = "merchant"):
        super().__init__(fields={field: [self.field_message]})

    def as_dict(self) -> dict:
        return {"code": self.code, "detail": str(self.detail),
                "fields": {name: [str(message) for message in messages] for name, messages in self.extra["fields"].items()}}


class MerchantNotPermitted(DomainError):
    status_code = 403
    code = "merchant_not_permitted"
    default_detail = _("This API key is scoped to another merchant.")


class OtpRateLimited(DomainError):
    status_code = 429
    code = "otp_rate_limited"
    default_detail = _("Too many codes were requested for this phone number. Try again later.")


class InvalidCode(DomainError):
    code = "invalid_code"
    default_detail = _("The code is wrong, expired or already used.")


class PartnerKeyNotRotatable(DomainError):
    status_code = 409
    code = "partner_key_not_rotatable"
    default_detail = _("A revoked or expired key cannot be rotated: issue a new key.")


class RateLimited(exceptions.Throttled):
    """A partner key over its requests per minute (members.ratelimit): 429 `rate_limited` with
    Retry-After, the seconds until the key's window opens again."""

    default_code = "rate_limited"

    def __init__(self, wait: int):
        # Throttled's own message appends an untranslatable "Expected available in N seconds".
        exceptions.APIException.__init__(
            self, _("This API key sent too many requests; retry after the Retry-After seconds."), self.default_code)
        self.wait = wait


class PresenceRequired(DomainError):
    status_code = 403
    code = "presence_required"
    default_detail = _("This API key may not spend without the member present: authorise with the member's pay code.")

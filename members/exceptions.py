from django.utils.translation import gettext_lazy as _

from config.errors import DomainError


class PhoneAlreadyEnrolled(DomainError):
    status_code = 409
    code = "phone_already_enrolled"
    default_detail = _("A member with this phone number is already enrolled.")


class InvalidReferralCode(DomainError):
    code = "invalid_referral_code"
    default_detail = _("No member has this referral code.")


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

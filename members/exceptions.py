from django.utils.translation import gettext_lazy as _

from config.errors import DomainError


class PhoneAlreadyEnrolled(DomainError):
    status_code = 409
    code = "phone_already_enrolled"
    default_detail = _("A member with this phone number is already enrolled.")


class InvalidReferralCode(DomainError):
    code = "invalid_referral_code"
    default_detail = _("No member has this referral code.")

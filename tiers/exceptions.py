"""Domain errors of tiers; each declares its HTTP status, stable code and message."""

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError


class NoTierProgramme(DomainError):
    status_code = 409
    code = "no_tier_programme"
    default_detail = _("No tier programme is active.")


class TierLevelNotInProgramme(DomainError):
    code = "tier_level_not_in_programme"
    default_detail = _("This tier level belongs to another programme than the member's.")


class ManualTierEndInPast(DomainError):
    code = "manual_tier_end_in_past"
    default_detail = _("A tier set by hand needs an end date in the future.")

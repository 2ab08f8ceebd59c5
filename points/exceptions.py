"""Domain errors of the ledger; each declares its HTTP status, stable code and message."""

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError, IdempotencyConflict, NotFound

__all__ = [
    "IdempotencyConflict",
    "NotFound",
    "InsufficientPoints",
    "AccountFrozen",
    "InvalidPoints",
    "InvalidOccurredAt",
    "InvalidEventType",
    "NotReversible",
    "ReversalExceedsOriginal",
    "ReasonRequired",
    "MemberInactive",
    "AmountNotAllowed",
    "AmountTooLarge",
    "InvalidField",
    "InvalidHold",
    "HoldExpired",
    "HoldResolved",
    "CaptureExceedsHold",
    "HoldReserved",
    "TransfersDisabled",
    "TransferLimitExceeded",
    "NotOrganizationAdmin",
    "NotAnEmployee",
    "InvalidRecipient",
]


class InsufficientPoints(DomainError):
    status_code = 409
    code = "insufficient_points"
    default_detail = _("The member does not have enough available points.")


class AccountFrozen(DomainError):
    status_code = 409
    code = "account_frozen"
    default_detail = _("The member's points account is frozen.")


class MemberInactive(DomainError):
    status_code = 409
    code = "member_inactive"
    default_detail = _("The member is not active.")


class InvalidPoints(DomainError):
    code = "invalid_points"
    default_detail = _("Points must be a positive whole number.")


class InvalidOccurredAt(DomainError):
    code = "invalid_occurred_at"
    default_detail = _("occurred_at is in the future or too far in the past.")


class NotReversible(DomainError):
    status_code = 409
    code = "not_reversible"
    default_detail = _("Only earn and spend transactions can be reversed.")


class ReversalExceedsOriginal(DomainError):
    status_code = 409
    code = "reversal_exceeds_original"
    default_detail = _("The reversal is larger than what is left of the original transaction.")


class ReasonRequired(DomainError):
    code = "reason_required"
    default_detail = _("A reason is required.")


class InvalidEventType(DomainError):
    code = "invalid_event_type"
    default_detail = _("Unknown event type.")


class InvalidField(DomainError):
    """Bad input the service finds (not the serializer): 400 `invalid`, naming the field."""

    code = "invalid"
    default_detail = _("Invalid input.")

    def __init__(self, message: str, *, field: str):
        super().__init__(_("Invalid input."), fields={field: [message]})


class InvalidHold(InvalidField):
    pass


class HoldExpired(DomainError):
    status_code = 409
    code = "hold_expired"
    default_detail = _("The hold has expired; its points were released.")


class HoldResolved(DomainError):
    status_code = 409
    code = "hold_resolved"
    default_detail = _("The hold was already captured, voided or expired.")


class CaptureExceedsHold(DomainError):
    status_code = 409
    code = "capture_exceeds_hold"
    default_detail = _("The capture is larger than the points held.")


class HoldReserved(DomainError):
    """A hold whose purpose an app above points reserves (points.policies): only that app moves it."""

    status_code = 409
    code = "hold_reserved"
    default_detail = _("This hold belongs to an operation of its own (e.g. a payment): move it through that operation.")


class AmountNotAllowed(DomainError):
    code = "amount_not_allowed"
    default_detail = _("Only purchase, bill and parking events carry an amount.")

    def __init__(self):
        super().__init__(_("Invalid input."), fields={"amount": [str(self.default_detail)]})


class AmountTooLarge(DomainError):
    code = "amount_too_large"
    default_detail = _("The amount is above the largest single amount accepted.")

    def __init__(self, *, ceiling):
        super().__init__(_("Invalid input."), fields={"amount": [f"{self.default_detail} ({ceiling})"]})


class TransfersDisabled(DomainError):
    status_code = 403
    code = "transfers_disabled"
    default_detail = _("Transfers between members are not offered.")


class TransferLimitExceeded(DomainError):
    status_code = 409
    code = "transfer_limit_exceeded"
    default_detail = _("The transfer is above what the member may still transfer today.")


class NotOrganizationAdmin(DomainError):
    status_code = 403
    code = "not_organization_admin"
    default_detail = _("Only an administrator of an organization may use its points.")


class NotAnEmployee(DomainError):
    status_code = 409
    code = "not_an_employee"
    default_detail = _("The member is not an employee of this organization.")


class InvalidRecipient(InvalidField):
    pass

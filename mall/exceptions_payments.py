"""Domain errors of payments with points; each declares its HTTP status, stable code and message."""

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError
from members.exceptions import PresenceRequired  # noqa: F401 - the partner key's rule, raised by payments too


class PayCodeInvalid(DomainError):
    code = "pay_code_invalid"
    default_detail = _("The pay code is wrong, expired or already used: ask the member for a new one.")


class PointsNotAccepted(DomainError):
    status_code = 409
    code = "points_not_accepted"
    default_detail = _("This business unit does not take points as payment.")


class InvalidPointsUnit(DomainError):
    code = "invalid_points_unit"
    default_detail = _("Points are used here in multiples of the unit.")


class PaymentLimitExceeded(DomainError):
    code = "payment_limit_exceeded"
    default_detail = _("More points than this business unit takes for this bill.")


class BillAmountMismatch(DomainError):
    code = "bill_amount_mismatch"
    default_detail = _("The bill amount differs from the amount of the property bill with this number.")


class BillAlreadyPaid(DomainError):
    status_code = 409
    code = "bill_already_paid"
    default_detail = _("This bill already has a payment with points for a different request.")


class BillPayerMismatch(DomainError):
    status_code = 409
    code = "bill_payer_mismatch"
    default_detail = _("This property bill is not the member's to pay.")


class PaymentExpired(DomainError):
    status_code = 409
    code = "payment_expired"
    default_detail = _("The authorisation has expired; its points were released.")


class PaymentResolved(DomainError):
    status_code = 409
    code = "payment_resolved"
    default_detail = _("The payment is no longer in a state that allows this.")


class CaptureExceedsAuthorization(DomainError):
    status_code = 409
    code = "capture_exceeds_authorization"
    default_detail = _("The capture is larger than the points authorised.")


class RefundExceedsCapture(DomainError):
    status_code = 409
    code = "refund_exceeds_capture"
    default_detail = _("The refund is larger than what is left of the captured points.")


class NotPropertyBusinessUnit(DomainError):
    status_code = 403
    code = "not_property_business_unit"
    default_detail = _("Only a property-management business unit posts property bills.")


class PropertyBillConflict(DomainError):
    status_code = 409
    code = "property_bill_conflict"
    default_detail = _("A property bill with this number exists with different details.")


class PaymentNotCaptured(DomainError):
    status_code = 409
    code = "payment_not_captured"
    default_detail = _("Only a captured payment can be refunded.")


class InvalidPaymentInput(DomainError):
    """A field the serializer cannot judge alone (e.g. bill_amount left out for a bill that is not
    a property bill); the body names the field, as a validation error does."""

    code = "invalid"
    default_detail = _("Invalid input.")

    def __init__(self, message: str, *, field: str):
        super().__init__(_("Invalid input."), fields={field: [message]})


class PaymentPending(DomainError):
    status_code = 409
    code = "payment_pending"
    default_detail = _("A payment of this bill is authorised and not yet captured or voided.")


class PaymentMemberMismatch(DomainError):
    status_code = 409
    code = "payment_member_mismatch"
    default_detail = _("The payment named is another member's.")

"""Domain errors of risk control; each declares its HTTP status, stable code and message.

A refusal says neither which rule fired nor why: partners and members see a reference that
the risk team finds in the console (blocked attempts)."""

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError, NotFound

__all__ = [
    "NotFound",
    "RiskBlocked",
    "CaseResolved",
    "ReviewNotPermitted",
    "AdjustmentApprovalRequired",
    "ReasonCodeRequired",
    "DuplicateAdjustmentRequest",
    "RequestNotPending",
    "RequestExpired",
    "MakerCannotDecide",
    "ApprovalNotPermitted",
    "OperatorRequired",
    "FreezeLifted",
    "InvalidRiskInput",
]


class RiskBlocked(DomainError):
    status_code = 409
    code = "risk_blocked"
    default_detail = _("This request was refused by risk control. Quote the reference to customer service.")

    def __init__(self, *, reference: str):
        super().__init__(reference=reference)
        self.reference = reference


class CaseResolved(DomainError):
    status_code = 409
    code = "case_resolved"
    default_detail = _("The case was already approved or rejected.")


class ReviewNotPermitted(DomainError):
    status_code = 403
    code = "review_not_permitted"
    default_detail = _("Only operators of the risk review role may decide review cases.")


class AdjustmentApprovalRequired(DomainError):
    """Not an error of the operator's: the adjustment became a request for a second operator."""

    status_code = 409
    code = "approval_required"
    default_detail = _("The adjustment needs a second operator's approval: request #%(request)s was created.")

    def __init__(self, *, request_id: int):
        super().__init__(self.default_detail % {"request": request_id}, request=request_id)
        self.request_id = request_id


class ReasonCodeRequired(DomainError):
    code = "reason_code_required"
    default_detail = _("An adjustment that needs approval needs a reason code: start the reason with one of %(codes)s.")

    def __init__(self, *, codes: list[str]):
        super().__init__(self.default_detail % {"codes": ", ".join(f"{code}:" for code in codes)})


class DuplicateAdjustmentRequest(DomainError):
    status_code = 409
    code = "duplicate_adjustment_request"
    default_detail = _("A request to adjust this member by the same points is already awaiting approval.")


class RequestNotPending(DomainError):
    status_code = 409
    code = "request_not_pending"
    default_detail = _("The request was already decided, withdrawn or expired.")


class RequestExpired(DomainError):
    status_code = 409
    code = "request_expired"
    default_detail = _("The request expired before it was decided.")


class MakerCannotDecide(DomainError):
    status_code = 403
    code = "maker_cannot_decide"
    default_detail = _("The operator who made a request cannot approve or reject it: a second operator must.")


class ApprovalNotPermitted(DomainError):
    status_code = 403
    code = "approval_not_permitted"
    default_detail = _("Only operators with the approve permission may decide adjustment requests.")


class OperatorRequired(DomainError):
    code = "operator_required"
    default_detail = _("Manual adjustments are made by a named operator while approval limits are set.")


class FreezeLifted(DomainError):
    status_code = 409
    code = "freeze_lifted"
    default_detail = _("The freeze was already lifted.")


class InvalidRiskInput(DomainError):
    code = "invalid"
    default_detail = _("Invalid input.")

    def __init__(self, message: str, *, field: str):
        super().__init__(_("Invalid input."), fields={field: [message]})

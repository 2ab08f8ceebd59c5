"""The base of every domain error. Each subclass declares its HTTP status, stable code and message.

Services raise these; the one API exception handler (config.api.exceptions) turns them into
`{"code": ..., "detail": ...}` responses, and admin actions show their message to the operator.
"""

from django.utils.translation import gettext_lazy as _


class DomainError(Exception):
    status_code = 400
    code = "error"
    default_detail = _("The request could not be processed.")

    def __init__(self, detail=None, **extra):
        self.detail = detail if detail is not None else self.default_detail
        self.extra = extra
        super().__init__(str(self.detail))

    def as_dict(self) -> dict:
        """The error body clients see: code, detail and any extra facts (e.g. available points)."""
        return {"code": self.code, "detail": str(self.detail),
                **{key: value for key, value in self.extra.items() if value is not None}}


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    default_detail = _("Not found.")


class IdempotencyConflict(DomainError):
    status_code = 409
    code = "idempotency_conflict"
    default_detail = _("This Idempotency-Key was already used with a different request.")

"""The one exception handler: every API error is `{"code": ..., "detail": ...}`.

Domain errors carry their own status and code; DRF validation errors become
`{"code": "invalid", "detail": ..., "fields": {field: [messages]}}` so each bad field is named.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import DomainError


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"code": "invalid", "detail": str(_("Invalid input.")), "fields": fields}
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    codes = exc.get_codes()
    response.data = {"code": codes if isinstance(codes, str) else "error", "detail": str(exc.detail)}
    return response

"""The one exception handler: every API error is JSON `{"code": ..., "detail": ...}`.

- Domain errors carry their own status, code and extra facts (e.g. `available`, `requested`).
- Every 400 carries `fields`: `{field: [messages]}`, each bad field named (a nested one by its
  path, e.g. `items.0.amount`), `non_field_errors` for the request as a whole; empty when the
  error is not about a field (`parse_error`, `idempotency_key_required`, `invalid_occurred_at`).
- A database that does not answer (an outage, a restart) is 503 `service_unavailable` with
  `Retry-After`, logged with the request's id: the client retries, a write with the same
  Idempotency-Key.
- Anything unexpected is logged with the request's id and answered 500 `server_error` in the
  same shape, never an HTML page; the request's database work is rolled back.
"""

import logging
import sys

from django.core.exceptions import PermissionDenied
from django.conf import settings
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from config.api.headers import REQUEST_ID_HEADER, request_id
from config.errors import DomainError

logger = logging.getLogger("config.api")


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, DomainError):
        set_rollback()
        return _answer(exc.as_dict(), exc.status_code)
    if isinstance(exc, (OperationalError, InterfaceError)):
        return _service_unavailable(exc, request)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return _server_error(exc, request)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"code": "invalid", "detail": _("Invalid input."), "fields": field_messages(detail)}
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    codes = exc.get_codes()
    body = {"code": codes if isinstance(codes, str) else "error", "detail": str(exc.detail)}
    response.data = _with_fields(body, response.status_code)
    return response


def field_messages(detail) -> dict[str, list[str]]:
    """DRF's error detail, however nested, as `{field path: [messages]}`."""
    flat: dict[str, list[str]] = {}

    def walk(path: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{path}.{key}" if path else str(key), inner)
        elif isinstance(value, (list, tuple)):
            for index, inner in enumerate(value):
                if isinstance(inner, (dict, list, tuple)):
                    walk(f"{path}.{index}" if path else str(index), inner)
                else:
                    flat.setdefault(path or "non_field_errors", []).append(str(inner))
        else:
            flat.setdefault(path or "non_field_errors", []).append(str(value))

    walk("", detail)
    return flat


def _with_fields(body: dict, status_code: int) -> dict:
    if status_code == status.HTTP_400_BAD_REQUEST:
        return {**body, "fields": field_messages(body.get("fields", {}))}
    return body


def _answer(body: dict, status_code: int) -> Response:
    return Response(_with_fields(body, status_code), status=status_code)


def _server_error(exc, request) -> Response:
    """A bug: logged (and signalled, as Django does, so a test client re-raises it), rolled back,
    answered in the API's own shape."""
    set_rollback()
    django_request = getattr(request, "_request", request)
    if django_request is not None:
        got_request_exception.send(sender=None, request=django_request)
    logger.error("Server error answering %s (Request-Id %s)", getattr(django_request, "path", "?"),
                 request_id(django_request) if django_request is not None else "-", exc_info=exc)
    return Response(
        {"code": "server_error", "detail": _("The server failed to answer. Retry later; a write may be retried "
                                             "with the same Idempotency-Key.")},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def service_unavailable_detail() -> str:
    return _("The service is briefly unavailable. Retry after the Retry-After seconds; a write may be retried "
             "with the same Idempotency-Key.")


def _service_unavailable(exc, request) -> Response:
    """The database did not answer: nothing of the request was committed by this call's failure
    (its transaction rolls back); 503 with Retry-After, logged without the noise of a traceback."""
    try:
        set_rollback()
    except Exception:  # the connection may be gone with the transaction
        pass
    django_request = getattr(request, "_request", request)
    logger.error("Database unavailable answering %s (Request-Id %s): %s", getattr(django_request, "path", "?"),
                 request_id(django_request) if django_request is not None else "-", exc)
    return Response({"code": "service_unavailable", "detail": service_unavailable_detail()},
                    status=status.HTTP_503_SERVICE_UNAVAILABLE,
                    headers={"Retry-After": str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)})


def service_unavailable_response(request) -> HttpResponse:
    """503 for a request the database could not serve, outside DRF: JSON `service_unavailable`
    under /api/, a short page elsewhere; both with Retry-After and the Request-Id."""
    if request.path.startswith("/api/"):
        response = JsonResponse({"code": "service_unavailable", "detail": service_unavailable_detail()}, status=503)
    else:
        response = HttpResponse(service_unavailable_detail(), status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)
    response[REQUEST_ID_HEADER] = request_id(request)
    return response


def server_error(request):
    """Django's 500 handler (an exception outside any view's handler: a middleware, a template):
    a database error is 503 `service_unavailable` with Retry-After; under /api/ the API's JSON
    body, elsewhere Django's page."""
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return service_unavailable_response(request)
    if not request.path.startswith("/api/"):
        return defaults.server_error(request)
    response = JsonResponse({"code": "server_error", "detail": _("The server failed to answer. Retry later; a write "
                                                                 "may be retried with the same Idempotency-Key.")},
                            status=500)
    response[REQUEST_ID_HEADER] = request_id(request)
    return response


def page_not_found(request, exception):
    """Django's 404 for a path no route matches: under /api/ the API's own JSON body (a partner's
    client meets the same `not_found` there as from a view), elsewhere Django's page."""
    if not request.path.startswith("/api/"):
        return defaults.page_not_found(request, exception)
    response = JsonResponse({"code": "not_found", "detail": str(_("Not found."))}, status=404)
    response[REQUEST_ID_HEADER] = request_id(request)
    return response

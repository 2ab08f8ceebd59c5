"""The headers every API answer carries, and the one renderer and content negotiation that set them.

- `Request-Id`: the caller's own `Request-Id` (or `X-Request-Id`) when it is 1 to 128 visible
  ASCII characters, else a new one; on every answer, errors included, and in the log of a
  server error, so that a partner and the operator speak of the same request.
- JSON only: every answer is `application/json` whatever the `Accept` header asks (never a
  406, never the browsable HTML); bodies are read as JSON only (settings: JSONParser), so a
  form or multipart body is 415 `unsupported_media_type`.
"""

import re
import uuid

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer

REQUEST_ID_HEADER = "Request-Id"

_CALLERS_ID = re.compile(r"[\x21-\x7e]{1,128}")


def request_id(request) -> str:
    """The request's id: the caller's when usable, else a new UUID; the same for the whole request."""
    request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    found = getattr(request, "points_request_id", None)
    if found is None:
        given = request.headers.get(REQUEST_ID_HEADER) or request.headers.get(f"X-{REQUEST_ID_HEADER}") or ""
        found = given if _CALLERS_ID.fullmatch(given) else uuid.uuid4().hex
        request.points_request_id = found
    return found


class ApiJSONRenderer(JSONRenderer):
    """The API's one renderer: JSON, with the request's Request-Id on the answer."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        context = renderer_context or {}
        response, request = context.get("response"), context.get("request")
        if response is not None and request is not None:
            response[REQUEST_ID_HEADER] = request_id(request)
        return super().render(data, accepted_media_type, renderer_context)


class JsonContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, but an `Accept` no renderer offers gets the first (JSON) instead of 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type

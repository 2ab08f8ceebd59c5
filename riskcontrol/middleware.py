"""RiskRequestMiddleware: the device and client address of an API request, for the risk gates.

The points API's write views do not know about risk control; this middleware reads, for every
API request (paths under /api/v1/):

* the device: the `X-Device-Id` header, or else a `device_id` field of a JSON body (both
  optional, at most 128 characters; the earn and spend serializers ignore the field);
* the client address: REMOTE_ADDR, or the first address of the header named by the setting
  RISK_CLIENT_ADDRESS_HEADER (e.g. "HTTP_X_FORWARDED_FOR") behind a proxy that sets it.

and opens riskcontrol.context.risk_request around the view, so that a refusal's record is
written once the view's transaction has rolled back. Console requests get a request scope too
(their refusals are recorded) but no device or address: those are the operator's, not a member's.
"""

import json

from django.conf import settings

from config.middleware import is_api
from riskcontrol.context import risk_request

DEVICE_HEADER = "X-Device-Id"


def request_device_id(request) -> str:
    device = request.headers.get(DEVICE_HEADER, "")
    if device or request.method not in ("POST", "PUT", "PATCH"):
        return device
    if request.content_type != "application/json":
        return ""
    body = request.body
    if b'"device_id"' not in body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    value = data.get("device_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def request_client_address(request) -> str:
    header = getattr(settings, "RISK_CLIENT_ADDRESS_HEADER", "")
    if header and request.META.get(header):
        return request.META[header].split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "")


class RiskRequestMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api(request):
            with risk_request():
                return self.get_response(request)
        with risk_request(device_id=request_device_id(request), client_address=request_client_address(request)):
            return self.get_response(request)

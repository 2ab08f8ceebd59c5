"""Sessions, the Django user and flash messages, for every path but the API's; the language;
static files, the request log and the answer to a database outage.

The API authenticates each request with its own classes (members.authentication): it reads
no session, needs no Django user and shows no message, so these three middleware skip its paths,
a part of every API call's cost. The console, the language switch and the API docs keep them.
"""

import logging
import os
import time

from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import InterfaceError, OperationalError
from django.middleware.locale import LocaleMiddleware
from django.utils import translation
from django.utils.functional import SimpleLazyObject, empty
from whitenoise.middleware import WhiteNoiseMiddleware

from config.api.exceptions import service_unavailable_response
from config.api.headers import REQUEST_ID_HEADER, request_id

API_PREFIX = "/api/v1/"


def is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


class BrowserSessionMiddleware(SessionMiddleware):
    def process_request(self, request):
        if not is_api(request):
            super().process_request(request)

    def process_response(self, request, response):
        return response if is_api(request) else super().process_response(request, response)


class BrowserAuthenticationMiddleware(AuthenticationMiddleware):
    def process_request(self, request):
        if not is_api(request):
            super().process_request(request)


class BrowserMessageMiddleware(MessageMiddleware):
    def process_request(self, request):
        if not is_api(request):
            super().process_request(request)


class ApiLocaleMiddleware(LocaleMiddleware):
    """Django's, without looking for a language prefix in an API path: `/api/v1/...` has none,
    and the failed look-up of "api" as a language is redone on every request (its LookupError is
    not cached). The language an API request gets is the one Django's would give it."""

    def process_request(self, request):
        if not is_api(request):
            return super().process_request(request)
        urlconf = getattr(request, "urlconf", settings.ROOT_URLCONF)
        i18n_patterns_used, prefixed_default_language = is_language_prefix_patterns_used(urlconf)
        if i18n_patterns_used and not prefixed_default_language:
            language = settings.LANGUAGE_CODE
        else:
            language = translation.get_language_from_request(request, check_path=i18n_patterns_used)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        return None


# --- static files, request log, database outage ----------------------------------------------

request_logger = logging.getLogger("points.requests")
DATABASE_ERRORS = (OperationalError, InterfaceError)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """whitenoise, logging (not warning, once per middleware instance) a STATIC_ROOT that
    `collectstatic` has not filled: the demo and the tests find the files in the apps."""

    def add_files(self, root, prefix=None):
        if not self.autorefresh and not os.path.isdir(root):
            logging.getLogger("config.static").warning("No static files at %s: run collectstatic", root)
            return
        super().add_files(root, prefix)


def _principal_fields(request) -> dict:
    """Who called, read by attribute only (config imports no app): a partner principal has a
    `key` (its prefix is logged, never the key), a member principal a `member`, a console user
    a `username`."""
    user = getattr(request, "user", None)
    while isinstance(user, SimpleLazyObject):
        # The console's user is loaded on first use: not loaded, not logged (no query for a log).
        if user._wrapped is empty:
            return {}
        user = user._wrapped
    fields = {}
    key = getattr(user, "key", None)
    if key is not None:
        fields["partner_key"] = getattr(key, "prefix", None) or str(key)[:8]
    member = getattr(user, "member", None)
    if member is not None:
        fields["member_id"] = getattr(member, "pk", member)
    if getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False):
        fields["operator"] = getattr(user, "username", None)
    return fields


class RequestLogMiddleware:
    """One log line per request (logger `points.requests`: method, path, status, duration in
    ms, request id and who called), and the request's Request-Id on every answer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        rid = request_id(request)
        response = self.get_response(request)
        if REQUEST_ID_HEADER not in response:
            response[REQUEST_ID_HEADER] = rid
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        fields = {
            "method": request.method, "path": request.path, "status": response.status_code,
            "duration_ms": duration_ms, "request_id": rid, **_principal_fields(request),
        }
        request_logger.info("%s %s %s %.1fms", request.method, request.path, response.status_code, duration_ms,
                            extra={"request": fields})
        return response


class DatabaseUnavailableMiddleware:
    """A view (outside DRF, whose exception handler answers for its own) that fails on a
    database error answers 503 service_unavailable, logged, instead of a 500 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            logging.getLogger("config.api").error("Database unavailable answering %s (Request-Id %s): %s",
                                                  request.path, request_id(request), exception)
            return service_unavailable_response(request)
        return None

"""Sessions, the Django user and flash messages, for every path but the API's.

The API authenticates each request with its own classes (members.authentication): it reads
no session, needs no Django user and shows no message, so these three middleware skip its paths,
a part of every API call's cost. The console, the language switch and the API docs keep them.
"""

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware

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

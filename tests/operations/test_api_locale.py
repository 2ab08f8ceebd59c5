"""The API's language middleware picks the language Django's LocaleMiddleware would, without
looking for a language prefix in API paths."""

import pytest
from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.test import RequestFactory
from django.utils import translation

from config.middleware import ApiLocaleMiddleware


def language_of(middleware_class, request) -> str:
    with translation.override(None):
        middleware_class(lambda r: None).process_request(request)
        return request.LANGUAGE_CODE


@pytest.mark.parametrize("path", ["/api/v1/transactions/spend/", "/api/v1/members/1/balance/", "/admin/", "/en/admin/"])
@pytest.mark.parametrize("accept", [None, "en", "en-US,en;q=0.9", "zh-CN", "zh-hans", "fr", "de;q=0.5,en;q=0.4"])
@pytest.mark.parametrize("cookie", [None, "en", "zh-hans"])
def test_the_api_gets_the_language_djangos_middleware_gives(path, accept, cookie):
    headers = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}
    factory = RequestFactory()

    def request():
        made = factory.get(path, **headers)
        if cookie:
            made.COOKIES[settings.LANGUAGE_COOKIE_NAME] = cookie
        return made

    assert language_of(ApiLocaleMiddleware, request()) == language_of(LocaleMiddleware, request())


def test_an_api_request_in_english_is_answered_in_english():
    request = RequestFactory().get("/api/v1/members/1/balance/", HTTP_ACCEPT_LANGUAGE="en")
    assert language_of(ApiLocaleMiddleware, request) == "en"

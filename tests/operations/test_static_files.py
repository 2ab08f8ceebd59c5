"""Static files served by the application itself (whitenoise), as deployed: DEBUG off, after
collectstatic with the production storage (compressed, names by content hash)."""

import re

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=str(root), STORAGES=PRODUCTION_STORAGES, DEBUG=False):
        call_command("collectstatic", "--noinput", verbosity=0)
    return root


@pytest.fixture
def deployed(collected, settings):
    settings.STATIC_ROOT = str(collected)
    settings.STORAGES = PRODUCTION_STORAGES
    settings.DEBUG = False
    return Client()  # a new client loads the middleware, which reads STATIC_ROOT


def test_collectstatic_wrote_the_manifest_and_compressed_copies(collected):
    assert (collected / "staticfiles.json").is_file()
    assert (collected / "admin" / "css" / "base.css").is_file()
    assert (collected / "admin" / "css" / "base.css.gz").is_file()


def test_a_static_file_is_served_with_debug_off(deployed):
    response = deployed.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_a_missing_static_file_is_a_404(deployed):
    assert deployed.get("/static/admin/css/no-such-file.css").status_code == 404


@pytest.mark.django_db
def test_the_console_links_its_hashed_stylesheet_and_it_is_served_cacheable_for_ever(deployed):
    page = deployed.get("/admin/login/")
    assert page.status_code == 200
    hashed = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.content.decode())
    assert hashed, page.content.decode()[:2000]
    response = deployed.get(hashed.group(1), HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert response["Content-Encoding"] == "gzip"
    assert "immutable" in response["Cache-Control"]

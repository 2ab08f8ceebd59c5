"""Playwright driving Debian's Chromium (scripts/ensure-chromium.sh puts it there; no browser of
Playwright's own is downloaded). A missing browser fails these tests: they never skip."""

import os
import shutil

import pytest


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("Chromium is missing: run scripts/ensure-chromium.sh (scripts/test.sh does) or set CHROMIUM_PATH")
    return path


@pytest.fixture
def browser_page():
    """A page of a fresh headless Chromium. Playwright's sync API runs an event loop in the
    test's thread, where Django refuses the ORM: a test reads and writes its data in fixtures
    set up before this one."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser.new_page(locale="zh-CN")
        finally:
            browser.close()


def sign_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")

"""Fixtures for statements and notifications: a clock that books postings at chosen moments,
and sends run in-process instead of through the broker."""

from datetime import datetime
from unittest import mock
from zoneinfo import ZoneInfo

import pytest

SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


class Clock:
    """timezone.now() at a chosen moment: postings are booked (created_at) and occur then."""

    def __init__(self):
        self.now = None
        self._patch = mock.patch("django.utils.timezone.now", side_effect=lambda: self.now)

    def set(self, moment: datetime) -> datetime:
        if self.now is None:
            self._patch.start()
        self.now = moment
        return moment

    def stop(self):
        if self.now is not None:
            self._patch.stop()
            self.now = None


@pytest.fixture
def clock():
    clock = Clock()
    yield clock
    clock.stop()


@pytest.fixture(autouse=True)
def sends(monkeypatch):
    """The log ids handed to the send task, in order; nothing reaches a broker."""
    handed: list[int] = []
    monkeypatch.setattr("members.notifications.services.enqueue_send", handed.append)
    return handed


@pytest.fixture(autouse=True)
def _no_quiet_hours(settings):
    settings.NOTIFICATIONS_SMS_QUIET_HOURS = ""

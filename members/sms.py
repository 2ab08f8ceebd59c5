"""Pluggable SMS sending. settings.SMS_BACKEND names the class; a production deployment plugs
in its SMS provider by writing a class with the same `send` method.

The two built-in backends send nothing: ConsoleSmsBackend logs the message (the demo),
FileSmsBackend appends it as one JSON line to settings.SMS_FILE_PATH (tests, load scripts).
"""

import json
import logging
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class SmsBackend:
    def send(self, *, phone: str, message: str) -> None:
        raise NotImplementedError


class ConsoleSmsBackend(SmsBackend):
    def send(self, *, phone: str, message: str) -> None:
        logger.info("SMS to %s: %s", phone, message)


class FileSmsBackend(SmsBackend):
    def send(self, *, phone: str, message: str) -> None:
        path = Path(settings.SMS_FILE_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"sent_at": timezone.now().isoformat(), "phone": phone, "message": message}, ensure_ascii=False)
        with path.open("a", encoding="utf-8") as sms_file:
            sms_file.write(line + "\n")


def sms_backend() -> SmsBackend:
    return import_string(settings.SMS_BACKEND)()

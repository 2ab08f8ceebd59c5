"""Channel backends that fail, for the retry tests: the first `failures` sends raise."""

from django.core.mail.backends.locmem import EmailBackend as LocmemEmailBackend

from members.sms import SmsBackend


class Failing:
    failures = 0
    sent: list = []

    @classmethod
    def reset(cls, failures: int):
        cls.failures, cls.sent = failures, []


class FailingEmailBackend(LocmemEmailBackend):
    def send_messages(self, messages):
        if Failing.failures > 0:
            Failing.failures -= 1
            raise ConnectionRefusedError("SMTP server refused the connection")
        return super().send_messages(messages)


class FailingSmsBackend(SmsBackend):
    def send(self, *, phone: str, message: str) -> None:
        if Failing.failures > 0:
            Failing.failures -= 1
            raise TimeoutError("SMS gateway timed out")
        Failing.sent.append((phone, message))

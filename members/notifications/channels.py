"""The senders of each channel. A sender raises on failure (the log row records the error and
the send is retried); success is its returning.

* e-mail: Django's e-mail framework (settings.EMAIL_BACKEND: a file or console backend for
  the demo, SMTP in production), a text body with an HTML alternative;
* SMS: the pluggable members.sms backend (settings.SMS_BACKEND), the text only.
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from members.notifications.models import Channel, NotificationLog
from members.sms import sms_backend


def send_email(log: NotificationLog) -> None:
    message = EmailMultiAlternatives(
        subject=log.subject, body=log.body_text, from_email=settings.DEFAULT_FROM_EMAIL, to=[log.recipient],
        headers={"X-Notification-Key": log.key},
    )
    if log.body_html:
        message.attach_alternative(log.body_html, "text/html")
    message.send(fail_silently=False)


def send_sms(log: NotificationLog) -> None:
    sms_backend().send(phone=log.recipient, message=log.body_text.strip())


SENDERS = {Channel.EMAIL: send_email, Channel.SMS: send_sms}


def channel_send(log: NotificationLog) -> None:
    SENDERS[log.channel](log)

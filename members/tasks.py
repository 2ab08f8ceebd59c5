"""Celery finds the members app's tasks here: the notification tasks."""

from members.notifications.tasks import notification_send, notifications_dispatch_due  # noqa: F401

"""Celery application: tasks are discovered in every app's tasks.py."""

import os

from celery import Celery

from config.metrics import connect_task_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
connect_task_signals()  # every task's duration and failures in /metrics

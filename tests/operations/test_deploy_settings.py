"""The production settings path: `check --deploy` clean, and refusal to start without a secret."""

import os
import secrets
import subprocess
import sys

from django.conf import settings

ROOT = settings.BASE_DIR


def manage(*args, **env):
    environment = {key: value for key, value in os.environ.items()
                   if key not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    environment.update({"DJANGO_SETTINGS_MODULE": "config.settings_production", **env})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)


def test_check_deploy_reports_no_issue_on_the_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=secrets.token_urlsafe(50),
                  ALLOWED_HOSTS="points.example.com", DEBUG="true")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr
    assert "WARNINGS" not in done.stdout + done.stderr


def test_the_production_settings_turn_debug_off_whatever_the_environment_says():
    done = manage("shell", "--no-imports", "-c",
                  "from django.conf import settings as s; print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
                  "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, s.ALLOWED_HOSTS)",
                  SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="a.example.com, b.example.com", DEBUG="true")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False True True True True ['a.example.com', 'b.example.com']"


def test_the_production_settings_refuse_to_start_without_a_secret_key():
    done = manage("check", ALLOWED_HOSTS="points.example.com")
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr


def test_the_production_settings_refuse_the_demo_key():
    done = manage("check", SECRET_KEY="insecure-demo-key-change-me-in-production", ALLOWED_HOSTS="points.example.com")
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr


def test_the_production_settings_refuse_to_start_without_allowed_hosts():
    done = manage("check", SECRET_KEY=secrets.token_urlsafe(50))
    assert done.returncode != 0
    assert "ALLOWED_HOSTS must name" in done.stderr

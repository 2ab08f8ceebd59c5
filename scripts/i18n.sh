#!/usr/bin/env bash
# Refresh the Simplified Chinese catalogue (locale/zh_Hans) from the source and compile it.
# Needs GNU gettext (Debian: apt-get install gettext). New msgids come out untranslated
# (empty msgstr): translate them in locale/zh_Hans/LC_MESSAGES/django.po, then run this again.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p locale
ignore=(--ignore=.venv --ignore=var --ignore=bench --ignore=tests --ignore=htmlcov)
.venv/bin/python manage.py makemessages --locale=zh_Hans --no-obsolete "${ignore[@]}"
.venv/bin/python manage.py compilemessages --locale=zh_Hans "${ignore[@]}"

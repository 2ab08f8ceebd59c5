#!/usr/bin/env bash
# The whole test suite on a real PostgreSQL (and Redis for the celery integration tests),
# both started by the project's own scripts when DATABASE_URL / TEST_REDIS_URL are not given,
# and Debian's Chromium for the real-browser tests (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL=${DATABASE_URL:-$(scripts/ensure-postgres.sh)}
export TEST_REDIS_URL=${TEST_REDIS_URL:-$(scripts/ensure-redis.sh)}
export CHROMIUM_PATH=${CHROMIUM_PATH:-$(scripts/ensure-chromium.sh)}
.venv/bin/lint-imports
.venv/bin/python manage.py makemigrations --check --dry-run
.venv/bin/python -m pytest "$@"

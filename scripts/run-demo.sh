#!/usr/bin/env bash
# The demo on embedded defaults: SQLite in var/, a filesystem celery broker in var/broker/.
# Migrates, loads the demo data, then runs the web server, a celery worker and celery beat
# together until Ctrl-C, which stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
PORT=${PORT:-8000}
export DATABASE_URL=${DEMO_DATABASE_URL:-sqlite:///$PWD/var/db.sqlite3}
export CELERY_BROKER_URL=filesystem://
unset VAR_DIR
mkdir -p var/broker/out var/broker/processed var/broker/control

$PY manage.py migrate --noinput
$PY manage.py seed_demo --credentials-out var/demo-credentials.json
$PY manage.py seed_payments --credentials-out var/demo-credentials.json
$PY manage.py seed_tiers
$PY manage.py seed_risk_demo
$PY manage.py requalify_tiers
$PY manage.py seed_mall --credentials-out var/demo-credentials.json
$PY manage.py seed_settlement
# The dashboard's daily aggregates of everything seeded (the beat job keeps them current).
$PY manage.py rebuild_aggregates

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping the web server, worker and beat..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

$PY manage.py runserver "127.0.0.1:$PORT" --noreload &
pids+=($!)
# --pool=solo: one task at a time, which suits a single SQLite file.
.venv/bin/celery -A config worker --pool=solo --loglevel=INFO &
pids+=($!)
.venv/bin/celery -A config beat --loglevel=INFO --pidfile= --schedule=var/celerybeat-schedule &
pids+=($!)

cat <<INFO

================================================================================
 Operator console : http://127.0.0.1:$PORT/admin/   (dashboard: /admin/dashboard/)
 API docs         : http://127.0.0.1:$PORT/api/docs/   (schema: /api/schema/)
 Demo credentials (also in var/demo-credentials.json):
$(sed 's/^/   /' var/demo-credentials.json)
 Ctrl-C stops the web server, the celery worker and celery beat.
================================================================================

INFO

# Stop everything as soon as one of the three exits.
wait -n

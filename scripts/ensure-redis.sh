#!/usr/bin/env bash
# Start a private Redis on 127.0.0.1 (for the celery integration tests), installing the Debian
# package first when it is missing. Prints the broker URL to use.
set -euo pipefail
port=${1:-${REDIS_PORT:-56379}}
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing Redis (Debian package)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq redis-server >&2
fi
if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --logfile "/tmp/points-redis-$port.log" >&2
  for _ in $(seq 1 30); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
echo "redis://127.0.0.1:$port/0"

#!/usr/bin/env bash
# Start a private PostgreSQL cluster on 127.0.0.1 for tests and benchmarks, installing the
# Debian package first when no server is on the machine. Prints the DATABASE_URL to use.
# Usage: scripts/ensure-postgres.sh [port]   (default port 55432; data in /tmp/points-pg-<port>)
set -euo pipefail
port=${1:-${PG_PORT:-55432}}
data=/tmp/points-pg-$port
log=/tmp/points-pg-$port.log

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "installing PostgreSQL (Debian package)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-contrib >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ ! -s "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
  as_postgres "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >&2
fi
if ! as_postgres "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  touch "$log"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$log"
  as_postgres "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB" start >&2
fi
for _ in $(seq 1 30); do
  "$bindir/pg_isready" -h 127.0.0.1 -p "$port" -q && break
  sleep 1
done
"$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'points'" | grep -q 1 \
  || "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres points
echo "postgres://postgres@127.0.0.1:$port/points"

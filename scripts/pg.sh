#!/usr/bin/env bash
# Start or stop a throw-away PostgreSQL cluster on loopback for the tests.
# `pg.sh start` prints `DUROX_TEST_PG_DSN=...` (for eval); `pg.sh stop` stops it.
# Installs Debian's postgresql package when no server binaries are found.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${DUROX_PG_DIR:-$ROOT/.cache/pg}"

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  done
  return 1
}

case "${1:-}" in
  start)
    if ! BIN="$(find_bin)"; then
      echo "==> installing PostgreSQL from Debian's packages" >&2
      (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql) >&2
      BIN="$(find_bin)"
    fi
    PORT="$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')"
    rm -rf "$DATA"; mkdir -p "$DATA"
    RUNAS=()
    if [ "$(id -u)" = "0" ]; then
      id postgres >/dev/null 2>&1 || useradd -r -M postgres >&2
      chown -R postgres "$DATA"
      RUNAS=(runuser -u postgres --)
    fi
    "${RUNAS[@]}" "$BIN/initdb" -D "$DATA/data" -U durox --auth=trust -E UTF8 >/dev/null
    "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA/data" -l "$DATA/log" -w -o \
      "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=on -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
      start >&2
    "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U durox durox_test >&2
    echo "DUROX_TEST_PG_DSN=postgresql://durox@127.0.0.1:$PORT/durox_test"
    ;;
  stop)
    if BIN="$(find_bin)" && [ -d "$DATA/data" ]; then
      RUNAS=()
      [ "$(id -u)" = "0" ] && RUNAS=(runuser -u postgres --)
      "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA/data" -m fast stop >/dev/null 2>&1 || true
    fi
    ;;
  *) echo "usage: pg.sh start|stop" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Start or stop a throw-away PostgreSQL cluster on loopback for the tests.
# `pg.sh start` prints `DUROX_TEST_PG_DSN=...` and `export DUROX_PG_DIR=...` (for eval);
# `pg.sh stop` stops the cluster in DUROX_PG_DIR. Installs Debian's postgresql package when no
# server binaries are found.
#
# The cluster lives outside the checkout, in a fresh directory under /tmp (under $TMPDIR when not
# root), which `stop` removes: as root the server runs as the `postgres` user, which often cannot
# reach the checkout (a clone under /root, mode 0700, say), and a deep checkout path could
# overflow the length limit of the socket's path. Set DUROX_PG_DIR to keep the cluster in a
# directory of your choosing instead (as root, one the `postgres` user can reach); it is kept.
set -euo pipefail

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  done
  return 1
}

RUNAS=()
if [ "$(id -u)" = "0" ]; then RUNAS=(runuser -u postgres --); fi
THROWAWAY=durox-throwaway  # marks a directory `start` made, which `stop` removes

stop_cluster() {  # DIR
  local BIN
  if BIN="$(find_bin)" && [ -d "$1/data" ]; then
    (cd / && "${RUNAS[@]}" "$BIN/pg_ctl" -D "$1/data" -m fast stop >/dev/null 2>&1) || true
  fi
  if [ -f "$1/$THROWAWAY" ]; then rm -rf "$1"; fi
}

case "${1:-}" in
  start)
    if ! BIN="$(find_bin)"; then
      echo "==> installing PostgreSQL from Debian's packages" >&2
      (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql) >&2
      BIN="$(find_bin)"
    fi
    DATA="${DUROX_PG_DIR:-}"
    if [ -n "$DATA" ] && [ -f "$DATA/$THROWAWAY" ]; then
      stop_cluster "$DATA"  # this shell's previous throw-away cluster: replace it
      DATA=""
    fi
    if [ -n "$DATA" ]; then
      rm -rf "$DATA"; mkdir -p "$DATA"
    else
      if [ "$(id -u)" = "0" ]; then TMP=/tmp; else TMP="${TMPDIR:-/tmp}"; fi
      DATA="$(mktemp -d "$TMP/durox-pg.XXXXXX")"
      touch "$DATA/$THROWAWAY"
    fi
    if [ "$(id -u)" = "0" ]; then
      id postgres >/dev/null 2>&1 || useradd -r -M postgres >&2
      chown -R postgres "$DATA"
      if ! runuser -u postgres -- test -w "$DATA"; then
        echo "pg.sh: the server runs as the postgres user, which cannot reach $DATA:" \
          "set DUROX_PG_DIR to a directory it can reach, or unset it" >&2
        exit 1
      fi
    fi
    PORT="$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')"
    cd "$DATA"  # the server's user may not be allowed into the caller's working directory
    "${RUNAS[@]}" "$BIN/initdb" -D "$DATA/data" -U durox --auth=trust -E UTF8 >/dev/null
    "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA/data" -l "$DATA/log" -w -o \
      "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=on -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
      start >&2
    "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U durox durox_test >&2
    echo "DUROX_TEST_PG_DSN=postgresql://durox@127.0.0.1:$PORT/durox_test"
    printf 'export DUROX_PG_DIR=%q\n' "$DATA"
    ;;
  stop)
    if [ -z "${DUROX_PG_DIR:-}" ]; then
      echo "pg.sh stop: DUROX_PG_DIR is not set (eval the output of pg.sh start)" >&2
      exit 2
    fi
    stop_cluster "$DUROX_PG_DIR"
    ;;
  *) echo "usage: pg.sh start|stop" >&2; exit 2 ;;
esac

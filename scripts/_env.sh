# Shared set-up for scripts/*.sh: a project virtualenv with every extra installed.
# Sourced, not run. Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DUROX_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtualenv $VENV" >&2
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.durox-installed"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing durox[dev,postgres,operator] into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev,postgres,operator]" >&2
    echo "$want" > "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

#!/usr/bin/env bash
# The README's second command: every check and every test tier, with real services.
# Installs what it needs (Python packages, PostgreSQL, the Kubernetes binaries) on first use.
source "$(dirname "$0")/_env.sh"
ensure_venv
cd "$ROOT"

echo "==> ruff check"; ruff check .
echo "==> ruff format --check"; ruff format --check .
echo "==> mypy"; mypy  # [tool.mypy] files: the runtime, the operator, tests/, bench/
echo "==> import-linter"; lint-imports

# --- services -----------------------------------------------------------------------------
# PostgreSQL: a throw-away cluster on loopback unless DUROX_TEST_PG_DSN names a server.
if [ -z "${DUROX_TEST_PG_DSN:-}" ]; then
  eval "$(bash "$ROOT/scripts/pg.sh" start)"
  trap 'bash "$ROOT/scripts/pg.sh" stop' EXIT
fi
export DUROX_TEST_PG_DSN

# The fault tier (tests/faults) injects its faults from outside: network namespaces and
# iptables, a skewed clock (libfaketime), a small tmpfs. As root, install what is missing.
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  missing=()
  command -v ip >/dev/null || missing+=(iproute2)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v faketime >/dev/null || missing+=(faketime)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing ${missing[*]} for the fault tier" >&2
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" \
      || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}")) >&2
  fi
fi

# Kubernetes control plane binaries (built from Go modules, cached).
if [ -f "$ROOT/tests/k8s/toolchain/build.sh" ]; then
  DUROX_K8S_BIN="$(bash "$ROOT/tests/k8s/toolchain/build.sh")"
  export DUROX_K8S_BIN
fi
# The kstatus checker (sigs.k8s.io/cli-utils, a small Go module, cached the same way).
if [ -f "$ROOT/tests/k8s/toolchain/build-kstatus.sh" ]; then
  DUROX_KSTATUS_CHECK="$(bash "$ROOT/tests/k8s/toolchain/build-kstatus.sh")"
  export DUROX_KSTATUS_CHECK
fi
# -------------------------------------------------------------------------------------------

echo "==> pytest"
set +e
python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"

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

# Debian packages the tiers need, installed when missing (as root):
# - tests/k8s's real node (k8s_node.py) runs pods with containerd, runc and the CNI plugins,
#   builds images with buildah on a debootstrap base, and compiles the pause binary with gcc;
# - tests/faults injects its faults from outside: network namespaces and iptables, a skewed
#   clock (libfaketime), a small tmpfs;
# - tests/integration/test_dashboard_browser.py looks at the dashboard in headless chromium
#   (driven by the playwright Python package, which downloads no browser of its own).
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  pkgs=()
  for need in containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
    buildah:buildah debootstrap:debootstrap gcc:gcc /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev \
    iptables:iptables ip:iproute2 faketime:faketime /usr/bin/chromium:chromium; do
    what="${need%%:*}"
    if [ "${what:0:1}" = / ]; then [ -e "$what" ] && continue; else command -v "$what" >/dev/null && continue; fi
    pkgs+=("${need#*:}")
  done
  if [ "${#pkgs[@]}" -gt 0 ]; then
    echo "==> installing ${pkgs[*]} from Debian's packages" >&2
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}") >&2
  fi
fi

# Kubernetes binaries (built from Go modules, cached), then the real node's images (base by
# debootstrap, the worker image built offline from the Dockerfile; cached by content hash).
if [ -f "$ROOT/tests/k8s/toolchain/build.sh" ]; then
  DUROX_K8S_BIN="$(bash "$ROOT/tests/k8s/toolchain/build.sh")"
  export DUROX_K8S_BIN
  echo "==> real-node images" >&2
  PYTHON="$VENV/bin/python" bash "$ROOT/tests/k8s/node/images.sh" >/dev/null
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
# The full run also passes the store suites and the runtime's scenarios with the instance
# cache off (the pass above runs them with it on, every kept turn checked against a cold
# replay): both ways must hold, and a fallback path that only the cache hides is found here.
if [ "$rc" -eq 0 ] && [ "$#" -eq 0 ]; then
  echo "==> pytest, instance cache off: tests/conformance tests/unit/test_scenarios.py"
  set +e
  DUROX_TEST_INSTANCE_CACHE=off python -m pytest -p no:cacheprovider -q \
    tests/conformance tests/unit/test_scenarios.py
  rc=$?
  set -e
fi
exit "$rc"

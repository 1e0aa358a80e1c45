#!/usr/bin/env bash
# Builds (or reuses) kstatus-check, a small Go program around sigs.k8s.io/cli-utils'
# kstatus library (the status logic Flux and kpt share), and prints
# its path. The k8s tier feeds it objects read from the real control plane, so the operator's
# conditions are judged by the library itself, not by our reading of its rules.
#
# Like build.sh: modules come from the Go module proxy, the binary is cached outside the clone
# (CI is a fresh clone) in a folder keyed by the cli-utils version and a digest of the
# module's files; stdout carries only the path; --check reports an existing build only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/kstatus"

log() { echo "kstatus-check: $*" >&2; }

cli_utils="$(sed -n 's/^\s*sigs.k8s.io\/cli-utils \(v[^ ]*\).*/\1/p' "$src/go.mod" | head -1)"
digest="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
root="${DUROX_CACHE_DIR:-$HOME/.cache/durox}/kstatus/cli-utils-${cli_utils}-${digest}"
exe="$root/kstatus-check"

if [ -x "$exe" ]; then
  echo "$exe"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  log "not built yet: run bash tests/k8s/toolchain/build-kstatus.sh"
  exit 1
fi
command -v go >/dev/null || { log "building needs Go 1.24+ (https://go.dev/dl/)"; exit 1; }

mkdir -p "$root"
exec 9>"$root/.lock"
flock 9
if [ -x "$exe" ]; then
  echo "$exe"
  exit 0
fi
start=$(date +%s)
log "building against sigs.k8s.io/cli-utils ${cli_utils}"
(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly nice go build -trimpath -ldflags "-s -w" \
  -o "$root/.kstatus-check.tmp" .)
mv "$root/.kstatus-check.tmp" "$exe"
log "built in $(($(date +%s) - start))s: $exe"
echo "$exe"

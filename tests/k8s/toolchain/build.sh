#!/usr/bin/env bash
# Builds (or reuses) the Kubernetes test tier's binaries and prints their directory.
#
# Nothing we can reach ships Kubernetes binaries, but the Go module proxy serves Kubernetes'
# own source, so we compile etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok and helm with the machine's Go. A cold build takes tens of minutes on two
# cores, and CI runs from a fresh clone, so the binaries live outside the clone in a folder
# keyed by the pinned versions: a changed pin builds a new folder, an unchanged one is reused.
# Go's module and build caches stay at their defaults under $HOME for the same reason.
#
# Contract with scripts/test.sh: stdout carries only the bin directory; logs go to stderr;
# a failure exits non-zero. With --check it only reports an existing build, never builds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

log() { echo "k8s-toolchain: $*" >&2; }

mods_hash="$(cat "$here"/kube/go.mod "$here"/kube/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum |
  sha256sum | cut -c1-12)"
key="r${TOOLCHAIN_RECIPE}-k8s${KUBERNETES_VERSION}-etcd${ETCD_VERSION}-kwok${KWOK_VERSION}-helm${HELM_VERSION}-${mods_hash}"
root="${DUROX_CACHE_DIR:-$HOME/.cache/durox}/k8s/${key}"
bin="$root/bin"

binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kwok helm pause)
complete() {
  local b
  for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || return 1; done
  [ -s "$bin/kwok-stages.yaml" ]
}

if complete; then
  echo "$bin"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  log "not built yet: run bash tests/k8s/toolchain/build.sh"
  exit 1
fi

command -v go >/dev/null || { log "building needs Go 1.26+ (https://go.dev/dl/)"; exit 1; }

# One builder at a time per key; a second caller waits and then finds the binaries.
mkdir -p "$bin"
exec 9>"$root/.lock"
flock 9
if complete; then
  echo "$bin"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-mod=readonly
ld_common="-s -w"
kv="v${KUBERNETES_VERSION}"
kube_ld="$ld_common -X k8s.io/component-base/version.gitVersion=${kv}
  -X k8s.io/component-base/version.gitMajor=${KUBERNETES_VERSION%%.*}
  -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  -X k8s.io/component-base/version.gitTreeState=clean
  -X k8s.io/client-go/pkg/version.gitVersion=${kv}
  -X k8s.io/client-go/pkg/version.gitMajor=${KUBERNETES_VERSION%%.*}
  -X k8s.io/client-go/pkg/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
kube_ld="$(echo "$kube_ld" | tr -s ' \n' '  ')"

# build NAME DIR PACKAGE LDFLAGS: compile into a temporary name, then rename, so an interrupted
# build never leaves a truncated binary that looks complete.
build() {
  local name="$1" dir="$2" pkg="$3" ld="$4" start
  if [ -x "$bin/$name" ]; then return 0; fi
  start=$(date +%s)
  log "building $name ($pkg)"
  (cd "$dir" && nice go build -trimpath -ldflags "$ld" -o "$bin/.$name.tmp" "$pkg")
  mv "$bin/.$name.tmp" "$bin/$name"
  log "built $name in $(($(date +%s) - start))s, $(du -h "$bin/$name" | cut -f1)"
}

# install NAME MODULE@VERSION LDFLAGS: for tools whose modules need no replaces.
install() {
  local name="$1" pkg="$2" ld="$3" start tmp
  if [ -x "$bin/$name" ]; then return 0; fi
  start=$(date +%s)
  tmp="$(mktemp -d)"
  log "building $name ($pkg)"
  (cd "$tmp" && GOFLAGS= GOBIN="$tmp" nice go install -trimpath -ldflags "$ld" "$pkg")
  mv "$tmp/$name" "$bin/$name"
  rm -rf "$tmp"
  log "built $name in $(($(date +%s) - start))s, $(du -h "$bin/$name" | cut -f1)"
}

total_start=$(date +%s)
build etcd "$here/etcd" go.etcd.io/etcd/server/v3 "$ld_common"
install kwok "sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}" \
  "$ld_common -X sigs.k8s.io/kwok/pkg/consts.Version=v${KWOK_VERSION}"
# Helm's default Kubernetes version for `template` and `lint` is stamped like its Makefile does,
# from the client-go minor it is built with; unstamped it claims 1.20 and fails kubeVersion.
helm_gomod="$(cd /tmp && GOFLAGS= go mod download -json "helm.sh/helm/v3@v${HELM_VERSION}" |
  sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
helm_k8s_minor="$(sed -n 's/^\s*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$helm_gomod")"
helm_ld="$ld_common -X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}"
for pkg in pkg/chartutil pkg/lint/rules; do
  helm_ld="$helm_ld -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1"
  helm_ld="$helm_ld -X helm.sh/helm/v3/$pkg.k8sVersionMinor=${helm_k8s_minor}"
done
install helm "helm.sh/helm/v3/cmd/helm@v${HELM_VERSION}" "$helm_ld"
# kwok's binary embeds no lifecycle: its stages (node ready + heartbeat, pod ready, complete,
# delete) ship as YAML in the same module, so take them from the pinned version's source.
if [ ! -s "$bin/kwok-stages.yaml" ]; then
  kwok_dir="$(cd /tmp && GOFLAGS= go mod download -json "sigs.k8s.io/kwok@v${KWOK_VERSION}" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  stages="$kwok_dir/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$stages/$f"
  done >"$bin/.kwok-stages.tmp"
  mv "$bin/.kwok-stages.tmp" "$bin/kwok-stages.yaml"
fi
for cmd in kubectl kube-scheduler kube-controller-manager kube-apiserver kubelet; do
  build "$cmd" "$here/kube" "k8s.io/kubernetes/cmd/$cmd" "$kube_ld"
done
# The pod sandbox's "pause" process: the module ships its C source; a static binary is all the
# real-pod node's sandbox image holds (tests/k8s/k8s_node.py wraps it into an image).
if [ ! -x "$bin/pause" ]; then
  command -v gcc >/dev/null || { log "building pause needs gcc (apt-get install gcc libc6-dev)"; exit 1; }
  kube_dir="$(cd /tmp && GOFLAGS= go mod download -json "k8s.io/kubernetes@${kv}" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  gcc -Os -Wall -Werror -static -DVERSION="${kv}" -o "$bin/.pause.tmp" "$kube_dir/build/pause/linux/pause.c"
  strip "$bin/.pause.tmp"
  mv "$bin/.pause.tmp" "$bin/pause"
fi
log "toolchain ready in $(($(date +%s) - total_start))s: $(du -sh "$bin" | cut -f1) in $bin"
echo "$bin"

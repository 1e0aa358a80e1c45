#!/usr/bin/env bash
# Builds (or reuses) the real-pod node's images without any registry and prints, one per line,
# NAME=TARBALL for each: `ctr images import` loads them into the node's containerd.
#
#   base    docker.io/library/python:3.11-slim, a stand-in made from Debian packages by
#           debootstrap (no registry can be reached here); cached by the hash of this recipe.
#   worker  durox-worker:0.1.0, the project's Dockerfile built by buildah OFFLINE on that base:
#           the build context holds a wheelhouse made on the host (`pip wheel`) and the build
#           is told to install from it only (see "Building the image offline" in the README).
#           Cached by the hash of the base and of everything in the build context.
#   operator durox-operator:APPVERSION (the chart's appVersion, so the chart's default image
#           names it), the same Dockerfile's `operator` target, built the same way. Tagged
#           docker.io/library/..., the name a pod's short `durox-operator:TAG` resolves to.
#   app     with arguments `app TAG DIR`: an application image built FROM the worker image the
#           way the README tells users (DIR's content copied to /app), cached by content.
#   recipe  with arguments `recipe TAG DIR`: DIR's own Dockerfile (FROM durox-worker:0.1.0,
#           examples/worker) built as it is, DIR the context, cached by content.
#   postgres with argument `postgres`: docker.io/library/postgres:15, a stand-in for the official
#           image (none can be pulled here) made from Debian's postgresql-15 by debootstrap,
#           with an entry point that honours the official image's environment contract
#           (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB, PGDATA), so the quickstart's
#           manifest runs unchanged. Cached by the hash of this recipe.
#
# Contract like toolchain/build.sh: stdout carries only the result lines, logs go to stderr.
# Needs root, debootstrap and buildah (scripts/test.sh installs them). Nothing of this
# machine's certificates, proxy or DNS settings goes into an image.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${DUROX_CACHE_DIR:-$HOME/.cache/durox}/k8s-images"
mkdir -p "$cache"
log() { echo "k8s-images: $*" >&2; }

SUITE=bookworm
MIRROR="${DUROX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=python3,python3-venv,ca-certificates
BASE_TAG=docker.io/library/python:3.11-slim
WORKER_TAG=localhost/durox-worker:0.1.0
APP_VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/helm/durox/Chart.yaml")"
OPERATOR_TAG="docker.io/library/durox-operator:$APP_VERSION"

# buildah keeps its own storage, so a system's containers are never touched.
store="$cache/buildah"
bh() { buildah --root "$store/root" --runroot "$store/run" --storage-driver overlay "$@"; }

exec 9>"$cache/.lock"
flock 9

# -- base -------------------------------------------------------------------------------------
base_key="$( (echo "$SUITE $PACKAGES $BASE_TAG"; sed -n '/^# -- base/,/^# -- end base/p' "$0") |
  sha256sum | cut -c1-12)"
base_tar="$cache/base-$base_key.tar"
if [ ! -s "$base_tar" ]; then
  start=$(date +%s)
  rootfs="$(mktemp -d "$cache/rootfs.XXXX")"
  mkdir -p "$cache/debs"
  log "debootstrap $SUITE ($PACKAGES) into $rootfs"
  debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$PACKAGES" \
    "$SUITE" "$rootfs" "$MIRROR" >&2
  # Stand in for the official image's interpreter: a venv in /usr/local, first on PATH.
  chroot "$rootfs" python3 -m venv /usr/local >&2
  # What debootstrap took from this host, and what an image does not need.
  rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
  : >"$rootfs/etc/hosts"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
  ctr_id="$(bh from --pull=never scratch)"
  mnt="$(bh mount "$ctr_id")"
  cp -a "$rootfs"/. "$mnt"/
  bh umount "$ctr_id" >/dev/null
  bh config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr_id"
  bh commit --rm "$ctr_id" "$BASE_TAG" >&2
  bh push "$BASE_TAG" "docker-archive:$base_tar.tmp:$BASE_TAG" >&2
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"
  log "base image in $(($(date +%s) - start))s: $(du -h "$base_tar" | cut -f1)"
fi
# -- end base
echo "base=$base_tar"

# -- worker -----------------------------------------------------------------------------------
# The wheelhouse: every dependency of durox[postgres,operator] (the Dockerfile's build stage
# makes the wheels of both images) and the build backend, as wheels for this Python (the
# base's Python is Debian's 3.11, like the host's). Fetched once from PyPI.
py="${PYTHON:-python3}"
EXTRAS="postgres,operator"
wh_key="$( (echo "$EXTRAS"; cat "$repo/pyproject.toml"
  "$py" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -c1-12)"
wheelhouse="$cache/wheelhouse-$wh_key"
if [ ! -d "$wheelhouse" ]; then
  log "wheelhouse for durox[$EXTRAS] into $wheelhouse"
  rm -rf "$wheelhouse.tmp"
  "$py" -m pip wheel -q --disable-pip-version-check --wheel-dir "$wheelhouse.tmp" \
    "setuptools>=77" wheel "$repo[$EXTRAS]" >&2
  rm -f "$wheelhouse.tmp"/durox-*.whl # the image builds durox itself, from the context
  mv "$wheelhouse.tmp" "$wheelhouse"
fi
context_files=(Dockerfile .dockerignore pyproject.toml README.md runtime operator)
worker_key="$( (echo "$base_key $wh_key"; cd "$repo" && find "${context_files[@]}" -type f \
  -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12)"
worker_tar="$cache/worker-$worker_key.tar"
if [ ! -s "$worker_tar" ]; then
  start=$(date +%s)
  ctx="$(mktemp -d "$cache/context.XXXX")"
  (cd "$repo" && tar --exclude=__pycache__ -cf - "${context_files[@]}") | tar -xf - -C "$ctx"
  cp -r "$wheelhouse" "$ctx/wheelhouse"
  bh pull -q "docker-archive:$base_tar" >&2
  # --network=none: the build reaches nothing, so offline is proven, not assumed
  bh bud --pull=never --network=none --layers=false --build-arg WHEELHOUSE=wheelhouse \
    --target worker -t "$WORKER_TAG" -f "$ctx/Dockerfile" "$ctx" >&2
  bh push "$WORKER_TAG" "docker-archive:$worker_tar.tmp:$WORKER_TAG" >&2
  mv "$worker_tar.tmp" "$worker_tar"
  rm -rf "$ctx"
  log "worker image in $(($(date +%s) - start))s: $(du -h "$worker_tar" | cut -f1)"
fi
echo "worker=$worker_tar"

# -- operator ---------------------------------------------------------------------------------
operator_tar="$cache/operator-$worker_key-$APP_VERSION.tar"
if [ ! -s "$operator_tar" ]; then
  start=$(date +%s)
  ctx="$(mktemp -d "$cache/context.XXXX")"
  (cd "$repo" && tar --exclude=__pycache__ -cf - "${context_files[@]}") | tar -xf - -C "$ctx"
  cp -r "$wheelhouse" "$ctx/wheelhouse"
  bh pull -q "docker-archive:$base_tar" >&2
  bh bud --pull=never --network=none --layers=false --build-arg WHEELHOUSE=wheelhouse \
    --target operator -t "$OPERATOR_TAG" -f "$ctx/Dockerfile" "$ctx" >&2
  bh push "$OPERATOR_TAG" "docker-archive:$operator_tar.tmp:$OPERATOR_TAG" >&2
  mv "$operator_tar.tmp" "$operator_tar"
  rm -rf "$ctx"
  log "operator image in $(($(date +%s) - start))s: $(du -h "$operator_tar" | cut -f1)"
fi
echo "operator=$operator_tar"

# -- engine -----------------------------------------------------------------------------------
# With `app TAG DIR ENGINE`: first a worker image whose engine calls itself ENGINE (the one line
# of durox/_version.py changed), the image an older or newer durox release would be. Its
# executions are pinned to ENGINE, which is how the drain pool's test gets executions outside
# the main pool's replay range without writing to the store behind the runtime's back.
if [ "${1:-}" = "app" ] && [ -n "${4:-}" ]; then
  engine="$4"
  engine_tag="localhost/durox-worker:engine-$engine"
  engine_tar="$cache/worker-$worker_key-engine-$engine.tar"
  if [ ! -s "$engine_tar" ]; then
    ctx="$(mktemp -d "$cache/context.XXXX")"
    (cd "$repo" && tar --exclude=__pycache__ -cf - "${context_files[@]}") | tar -xf - -C "$ctx"
    cp -r "$wheelhouse" "$ctx/wheelhouse"
    sed -i "s/^__version__ = .*/__version__ = \"$engine\"/" "$ctx/runtime/durox/_version.py"
    bh pull -q "docker-archive:$base_tar" >&2
    bh bud --pull=never --network=none --layers=false --build-arg WHEELHOUSE=wheelhouse \
      --target worker -t "$engine_tag" -f "$ctx/Dockerfile" "$ctx" >&2
    bh push "$engine_tag" "docker-archive:$engine_tar.tmp:$engine_tag" >&2
    mv "$engine_tar.tmp" "$engine_tar"
    rm -rf "$ctx"
  fi
  worker_tar="$engine_tar" WORKER_TAG="$engine_tag" worker_key="$worker_key-engine-$engine"
fi

# -- app --------------------------------------------------------------------------------------
if [ "${1:-}" = "app" ]; then
  tag="$2" dir="$3"
  app_key="$( (echo "$worker_key $tag"; cd "$dir" && find . -type f -not -path '*/__pycache__/*' \
    -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12)"
  app_tar="$cache/app-$app_key.tar"
  if [ ! -s "$app_tar" ]; then
    ctx="$(mktemp -d "$cache/context.XXXX")"
    (cd "$dir" && tar --exclude=__pycache__ -cf - .) | tar -xf - -C "$ctx"
    bh pull -q "docker-archive:$worker_tar" >&2
    printf 'FROM %s\nCOPY --chown=65532:65532 . /app/\n' "$WORKER_TAG" >"$ctx/Containerfile.durox"
    bh bud --pull=never --network=none --layers=false -t "$tag" -f "$ctx/Containerfile.durox" "$ctx" >&2
    bh push "$tag" "docker-archive:$app_tar.tmp:$tag" >&2
    mv "$app_tar.tmp" "$app_tar"
    rm -rf "$ctx"
  fi
  echo "app=$app_tar"
fi

# -- recipe -----------------------------------------------------------------------------------
if [ "${1:-}" = "recipe" ]; then
  tag="$2" dir="$3"
  recipe_key="$( (echo "$worker_key $tag"; cd "$dir" && find . -type f -not -path '*/__pycache__/*' \
    -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12)"
  recipe_tar="$cache/recipe-$recipe_key.tar"
  if [ ! -s "$recipe_tar" ]; then
    ctx="$(mktemp -d "$cache/context.XXXX")"
    (cd "$dir" && tar --exclude=__pycache__ -cf - .) | tar -xf - -C "$ctx"
    bh pull -q "docker-archive:$worker_tar" >&2
    bh bud --pull=never --network=none --layers=false -t "$tag" -f "$ctx/Dockerfile" "$ctx" >&2
    bh push "$tag" "docker-archive:$recipe_tar.tmp:$tag" >&2
    mv "$recipe_tar.tmp" "$recipe_tar"
    rm -rf "$ctx"
  fi
  echo "recipe=$recipe_tar"
fi

# -- postgres ---------------------------------------------------------------------------------
if [ "${1:-}" = "postgres" ]; then
  PG_TAG=docker.io/library/postgres:15
  pg_key="$( (echo "$SUITE $PG_TAG"; sed -n '/^# -- postgres/,$p' "$0") | sha256sum | cut -c1-12)"
  pg_tar="$cache/postgres-$pg_key.tar"
  if [ ! -s "$pg_tar" ]; then
    start=$(date +%s)
    rootfs="$(mktemp -d "$cache/rootfs.XXXX")"
    mkdir -p "$cache/debs"
    log "debootstrap $SUITE (postgresql-15) into $rootfs"
    debootstrap --variant=minbase --cache-dir="$cache/debs" --include=postgresql-15 \
      "$SUITE" "$rootfs" "$MIRROR" >&2
    # the cluster Debian's package made, and what debootstrap took from this host
    rm -rf "$rootfs"/etc/postgresql/15/main "$rootfs"/var/lib/postgresql/15
    rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
    : >"$rootfs/etc/hosts"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
    cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
# The official postgres image's environment contract, for a stand-in built without a registry:
# a first start makes the cluster in $PGDATA with $POSTGRES_USER (password $POSTGRES_PASSWORD,
# scram-sha-256 from any address) and database $POSTGRES_DB, then runs the command as postgres.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}" "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "POSTGRES_PASSWORD must be set" >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "database $POSTGRES_DB of user $POSTGRES_USER created in $PGDATA"
fi
exec "$@"
ENTRY
    chmod 755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
    ctr_id="$(bh from --pull=never scratch)"
    mnt="$(bh mount "$ctr_id")"
    cp -a "$rootfs"/. "$mnt"/
    bh umount "$ctr_id" >/dev/null
    bh config --env PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --env PGDATA=/var/lib/postgresql/data --port 5432 \
      --entrypoint '["docker-entrypoint.sh"]' --cmd postgres "$ctr_id"
    bh commit --rm "$ctr_id" "$PG_TAG" >&2
    bh push "$PG_TAG" "docker-archive:$pg_tar.tmp:$PG_TAG" >&2
    mv "$pg_tar.tmp" "$pg_tar"
    rm -rf "$rootfs"
    log "postgres stand-in in $(($(date +%s) - start))s: $(du -h "$pg_tar" | cut -f1)"
  fi
  echo "postgres=$pg_tar"
fi

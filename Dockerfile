# syntax=docker/dockerfile:1
# Two images from one recipe. The default (last) target is the durox worker base image; user
# images extend it with their own code:
#
#   FROM durox-worker:0.1.0
#   COPY --chown=65532:65532 myapp/ /app/myapp/
#   CMD ["--app", "myapp.worker:app", "--config", "/etc/durox/worker.yaml"]
#
# The `operator` target is the operator image the Helm chart runs (durox-operator:APPVERSION):
#
#   docker build --target operator -t durox-operator:0.1.0 .
#
# The build stage turns the source into wheels (durox and every dependency of both images);
# each final stage installs only what it needs from them through a bind mount, so no wheel,
# compiler or source tree ends up in a layer. Both run as UID 65532 and write nothing outside
# /tmp, so they run with a read-only root file system.
#
# Offline (air-gapped) builds: put the wheels of every dependency and of the build backend in a
# folder `wheelhouse/` of the build context and pass `--build-arg WHEELHOUSE=wheelhouse`; pip
# then reads only that folder (README, "Building the image offline").
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG WHEELHOUSE=""
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runtime/ runtime/
COPY operator/ operator/
RUN --mount=type=bind,target=/context \
    pip wheel --no-cache-dir --wheel-dir /wheels \
      ${WHEELHOUSE:+--no-index --find-links "/context/$WHEELHOUSE"} ".[postgres,operator]"

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DUROX_LOG_FORMAT=json
RUN groupadd --system --gid 65532 durox \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin durox

# The operator reads PostgreSQL stores too (activation on the workers' word, Stranded).
# DL3013 (pin versions): pip reads nothing but the build stage's wheels (--no-index), so the
# versions are the ones built there.
FROM base AS operator
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels "durox[operator,postgres]" \
    && pip uninstall --yes setuptools wheel
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["durox-operator"]
CMD ["run"]

FROM base AS worker
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels "durox[postgres]" \
    && pip uninstall --yes setuptools wheel \
    && mkdir /app \
    && chown 65532:65532 /app
WORKDIR /app
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["durox", "worker"]
CMD ["--help"]

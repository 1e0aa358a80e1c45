# syntax=docker/dockerfile:1
# The durox worker base image. User images extend it with their own code:
#
#   FROM durox-worker:0.1.0
#   COPY --chown=65532:65532 myapp/ /app/myapp/
#   CMD ["--app", "myapp.worker:app", "--config", "/etc/durox/worker.yaml"]
#
# The build stage turns the source into wheels (durox and every dependency, with the postgres
# extra); the final stage installs them from a bind mount, so no wheel, compiler or source tree
# ends up in a layer. It runs as UID 65532, the user the operator's pods ask for.
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
      ${WHEELHOUSE:+--no-index --find-links "/context/$WHEELHOUSE"} ".[postgres]"

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DUROX_LOG_FORMAT=json
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl \
    && pip uninstall --yes setuptools wheel \
    && groupadd --system --gid 65532 durox \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin durox \
    && mkdir /app \
    && chown 65532:65532 /app
WORKDIR /app
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["durox", "worker"]
CMD ["--help"]

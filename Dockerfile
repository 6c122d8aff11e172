# syntax=docker/dockerfile:1
# The Almanac operator image: `almanac run` as an unprivileged user on a read-only root.
#
#   docker build -t almanac:dev .
#   docker run --rm almanac:dev next --help
#
# Two stages: the builder turns the project and its dependencies into wheels; the final
# image installs those wheels and nothing else (no compiler, no pip cache, no sources).
# tests/unit/test_packaging.py checks these properties, and lints this file with hadolint
# when it is installed.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from (see .dockerignore): pyproject.toml, README.md, the package.
COPY pyproject.toml README.md ./
COPY operator/ ./operator/
# Every dependency is a pure-Python or manylinux wheel: no compiler is needed here either.
RUN pip wheel --wheel-dir /wheels .

# ------------------------------------------------------------------------------ final
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="almanac" \
      org.opencontainers.image.description="Almanac: a Kubernetes operator for calendar-aware scheduled jobs" \
      org.opencontainers.image.licenses="Apache-2.0"

# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only at run time (the wheels'
# bytecode is compiled at install time below). HOME=/tmp: the only writable place (an
# emptyDir in the chart) for anything that wants a home directory.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp

# Install the wheels straight from the builder stage (a bind mount leaves no layer behind),
# offline, then remove pip, setuptools and wheel: nothing installs packages at run time.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/almanac_operator-*.whl \
    && pip uninstall --yes pip setuptools wheel \
    && groupadd --system --gid 65532 almanac \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin almanac

# Numeric, so that Kubernetes can verify runAsNonRoot without a passwd lookup.
USER 65532:65532
WORKDIR /tmp

# 8080 Prometheus /metrics, 8081 liveness (/healthz), 9443 admission webhook (HTTPS).
EXPOSE 8080 8081 9443

ENTRYPOINT ["almanac"]
CMD ["run"]

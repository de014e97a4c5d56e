# syntax=docker/dockerfile:1
#
# Hugging Face connector for Camunda 8: container image of the Zeebe job worker.
#
#   docker build -t hf-camunda-connector:0.1.0 .
#   docker run --rm -e ZEEBE_ADDRESS=zeebe:26500 hf-camunda-connector:0.1.0
#
# Base image: pinned to a full Python patch version and Debian release. It is not
# pinned by digest because the image could not be pulled where this file was
# written (no container engine there), and a digest that nobody has checked would
# be worse than none. To pin it, resolve the digest on a machine with access to
# the registry and append it to the tag below (both stages use it):
#   docker buildx imagetools inspect python:3.11.17-slim-bookworm
#   FROM python:3.11.17-slim-bookworm@sha256:<digest> AS base
FROM python:3.11.17-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore


# ---------------------------------------------------------------------------
# builder: install the project and its dependencies, as declared in
# pyproject.toml, into a self-contained virtual environment.
# ---------------------------------------------------------------------------
FROM base AS builder

WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

# Only what the build needs (see .dockerignore): the project metadata and the package.
COPY pyproject.toml README.md ./
COPY hf_connector ./hf_connector

# `pip install .` builds the wheel from pyproject.toml (PEP 517) and resolves the
# runtime dependencies from the project's own metadata: no hand-kept list here.
# --compile leaves bytecode in the venv so the read-only runtime never writes any.
RUN pip install --no-cache-dir --compile . \
    && hf-connector --help > /dev/null


# ---------------------------------------------------------------------------
# runtime: the interpreter, the venv and an unprivileged user; no build tools.
# ---------------------------------------------------------------------------
FROM base AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="hf-camunda-connector" \
      org.opencontainers.image.description="Hugging Face connector for Camunda 8: a Zeebe job worker that calls Hugging Face models" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.17-slim-bookworm"

# Fixed UID/GID so that volume and secret-file permissions can be planned, and
# so that Kubernetes' runAsNonRoot can verify the numeric USER below.
RUN groupadd --system --gid 10001 hfconnector \
    && useradd --system --uid 10001 --gid 10001 --create-home \
       --home-dir /home/hfconnector --shell /usr/sbin/nologin hfconnector

COPY --from=builder /opt/venv /opt/venv

# Defaults; override with -e / env_file (see deploy/worker.env.example).
ENV PATH="/opt/venv/bin:${PATH}" \
    HOME=/home/hfconnector \
    ZEEBE_ADDRESS=zeebe:26500 \
    HF_INFERENCE_ENDPOINT=https://router.huggingface.co \
    HF_CONNECTOR_HTTP_PORT=8081

WORKDIR /home/hfconnector
USER 10001:10001

# /health/live, /health/ready and /metrics (Prometheus).
EXPOSE 8081

# Readiness (the worker is connected to Zeebe), with the standard library only:
# slim images have no curl. Proxies are bypassed on purpose: HTTP(S)_PROXY set for
# the calls to Hugging Face must not catch this loopback request.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; port = os.environ.get('HF_CONNECTOR_HTTP_PORT') or '8081'; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:' + port + '/health/ready', timeout=4).close()"]

# The worker drains in-flight jobs on SIGTERM (30 s grace period by default);
# give the container runtime a longer stop timeout than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["hf-connector"]
CMD ["run"]

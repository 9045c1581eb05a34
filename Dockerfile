# syntax=docker/dockerfile:1
# crm-scoring worker image.
#
#   docker build -t crm-scoring-worker .
#   docker run --rm -e CRM_KAFKA_BOOTSTRAP=... -e CRM_REDIS_URL=... crm-scoring-worker
#
# The entrypoint is the `crm-score` console script and the default command is `worker`,
# so `docker run IMAGE` runs `crm-score worker`; any other subcommand can be passed instead
# (e.g. `docker compose run --rm worker simulate ...`).

ARG PYTHON_IMAGE=python:3.11-slim

# --- build stage: install the project and its dependencies into a virtualenv ---------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler for any dependency that has no wheel for this platform (not copied to the runtime).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

WORKDIR /src
COPY . .
RUN pip install --upgrade pip setuptools wheel \
    && pip install . \
    && crm-score --help > /dev/null

# --- runtime stage ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="crm-scoring worker" \
      org.opencontainers.image.description="Streaming customer scoring: Kafka in, Redis state, scores and alerts out." \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CRM_WEB_HOST=0.0.0.0 \
    CRM_WEB_PORT=6066

# Unprivileged user; the worker's local state (Faust data dir) lives in its working directory.
RUN groupadd --system --gid 10001 crm \
    && useradd --system --uid 10001 --gid crm --home-dir /var/lib/crm-scoring \
       --shell /usr/sbin/nologin crm \
    && mkdir -p /var/lib/crm-scoring \
    && chown crm:crm /var/lib/crm-scoring

COPY --from=build /opt/venv /opt/venv

USER crm:crm
WORKDIR /var/lib/crm-scoring

EXPOSE 6066

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('CRM_WEB_PORT', '6066'), timeout=4).read()"]

ENTRYPOINT ["crm-score"]
CMD ["worker"]

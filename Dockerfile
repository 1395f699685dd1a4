# qos-agent: the agent, Debian's Chromium and fonts, a non-root user, tini as PID 1.
#
#   make image        # without Docker: buildah, localhost/qos-agent:latest (make image-test runs it)
#   docker build -t qos-agent .
#   docker run -d --name qos-agent -e QOS_REGION=eu-west -e SHOP_URL=https://shop.example.com \
#     -v "$PWD/journeys.yaml:/etc/qos-agent/journeys.yaml:ro" -v qos-state:/var/lib/qos-agent \
#     -p 127.0.0.1:9469:9469 --shm-size=1g --read-only --tmpfs /tmp qos-agent
#   docker kill -s HUP qos-agent      # reload journeys.yaml (an invalid file is refused, the old one runs on)
#
# The mounted journeys.yaml should take state_dir and listen from the environment, as
# deploy/journeys.yaml (the default copied below) does:
#   state_dir: ${QOS_STATE_DIR:-/var/lib/qos-agent}
#   listen: ${QOS_LISTEN:-0.0.0.0:9469}
# docs/deploy.md has the rest (compose, systemd, Kubernetes) and what was and was not tested here.
#
# BASE: any bookworm image with `python` (3.11), python3-venv and ca-certificates. `make image` builds
# with buildah and, where no registry is reachable, a base made from Debian's archive
# (scripts/image-debian-base.sh); the steps below are the same for both.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# `make image` points pip at this machine's index settings, mounted for the build only
# (scripts/pip_build_volumes.py); unset, pip uses PyPI. An ARG of this stage never reaches the image.
ARG PIP_CONFIG_FILE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/qos-agent
COPY pyproject.toml README.md ./
COPY qos_agent ./qos_agent
COPY probes ./probes
COPY exporters ./exporters
RUN /opt/qos-agent/bin/pip install --no-cache-dir . \
 && /opt/qos-agent/bin/qos-agent --version

FROM ${BASE}
# Versions are not pinned: bookworm's security updates replace them, and the base image tag pins
# the release. Playwright's own browser download is never used: QOS_CHROMIUM points at Debian's.
# libatomic1: Playwright's Node.js driver does not start without it. Sizes: docs/benchmarks.md.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      chromium fonts-liberation fonts-dejavu-core fonts-noto-color-emoji tini ca-certificates libatomic1 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 qos \
 && useradd --system --uid 10001 --gid qos --home-dir /var/lib/qos-agent --shell /usr/sbin/nologin qos \
 && mkdir -p /etc/qos-agent /var/lib/qos-agent \
 && chown qos:qos /var/lib/qos-agent
COPY --from=build /opt/qos-agent /opt/qos-agent
COPY deploy/journeys.yaml /etc/qos-agent/journeys.yaml
ENV PATH=/opt/qos-agent/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    QOS_CHROMIUM=/usr/bin/chromium \
    QOS_STATE_DIR=/var/lib/qos-agent \
    QOS_LISTEN=0.0.0.0:9469 \
    QOS_HEALTH_URL=http://127.0.0.1:9469/livez
VOLUME /var/lib/qos-agent
WORKDIR /var/lib/qos-agent
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 9469
# /livez: 503 (or no answer) only when the scheduler is stuck, the one problem a restart solves; a sink,
# spool or disk problem never restarts the container (/healthz tells a person).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(os.environ.get('QOS_HEALTH_URL', 'http://127.0.0.1:9469/livez'), timeout=4)"]
ENTRYPOINT ["/usr/bin/tini", "--", "qos-agent"]
CMD ["run", "/etc/qos-agent/journeys.yaml"]

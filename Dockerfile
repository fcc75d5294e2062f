# iptv-exporter image. The exporter watches the HOST: run it with the host's PID namespace and network
# (docker-compose.yml does: pid: host, network_mode: host), or it sees only its own container.
# docs/deploy.md explains the privileges it needs and why.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# The build context has no .git: pass the revision, e.g. --build-arg VCS_REVISION="$(git rev-parse HEAD)".
ARG VCS_REVISION=unknown VCS_BRANCH=unknown
RUN python -m exporter.buildinfo write --revision "${VCS_REVISION}" --branch "${VCS_BRANCH}" \
 && python -m venv /opt/iptv-exporter \
 && /opt/iptv-exporter/bin/pip install --no-compile '.[paneldb]' \
 && /opt/iptv-exporter/bin/python -m compileall -q /opt/iptv-exporter

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="iptv-exporter" \
      org.opencontainers.image.description="Prometheus exporter and alert-driven auto-restarts for IPTV restreaming hosts" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed, unprivileged uid for metrics-only use. Reading other users' /proc/<pid>/io and restarting
# host processes need more: docker-compose.yml runs it as uid 0 with only the capabilities it needs, and
# without CAP_DAC_OVERRIDE uid 0 is checked like any user. So the journal directory (which Docker copies,
# with owner and mode, into a new named volume) is writable by the image's user AND by group 0:
# both ways of running it can write the journal (tests/test_compose.py runs it with setpriv).
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin iptv \
 && install -d -o 10001 -g 0 -m 0770 /var/lib/iptv-exporter \
 && install -d -m 0755 /etc/iptv-exporter
COPY --from=build /opt/iptv-exporter /opt/iptv-exporter
ENV PATH=/opt/iptv-exporter/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /var/lib/iptv-exporter
EXPOSE 9756
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9756/-/healthy', timeout=4)"]
ENTRYPOINT ["iptv-exporter"]
CMD ["--web.listen-address=:9756"]

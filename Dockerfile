# wn-persist as a standalone service: `wn-persist run` follows zKillboard's R2Z2 feed and
# keeps the killmails of the characters tracked on a Wanderer map (or a static list).
# SQLite by default (/data/wn_persist.db, a volume); PostgreSQL when POSTGRES_HOST or
# DATABASE_URL is set. See docs/standalone.md and docker-compose.yml.
#
# Built and run in CI by .ci/container-smoke (podman). No secret is baked in: the map API
# key and database passwords come from the environment (or compose's .env) at run time.

# --- build: install the package and its dependencies into a venv ---------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY wn_persist_plugin ./wn_persist_plugin
COPY migrations ./migrations
# psycopg2-binary is a wheel: nothing is compiled, and the runtime stage gets only the venv.
RUN python -m venv /opt/wn-persist \
    && /opt/wn-persist/bin/pip install '.[postgres,web]' \
    && /opt/wn-persist/bin/pip uninstall -y pip setuptools \
    && /opt/wn-persist/bin/wn-persist --help >/dev/null

# --- runtime ---------------------------------------------------------------------------
FROM python:3.11-slim
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="wn-persist" \
      org.opencontainers.image.description="Killmail history and statistics for WandererNotifier groups (wn-persist run: zKillboard R2Z2 feed to SQLite or PostgreSQL)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

# Stop budget: the host's final flush (HOST_FLUSH_TIMEOUT) plus the plugin's retries of an
# unreachable database (PERSISTENCE_SHUTDOWN_TIMEOUT) plus a few seconds stay under the
# 50 s stop grace period of docker-compose.yml (`docker stop -t 50` by hand).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/wn-persist/bin:$PATH \
    PERSISTENCE_SHUTDOWN_TIMEOUT=20 \
    HOST_FLUSH_TIMEOUT=15

COPY --from=build /opt/wn-persist /opt/wn-persist
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin wn \
    && mkdir /data \
    && chown wn:wn /data

USER 10001:10001
# The zero-config SQLite database is ./wn_persist.db, relative to the working directory.
WORKDIR /data
VOLUME ["/data"]

# `run` stops cleanly on SIGTERM (docker stop): it flushes, saves the feed position, exits 0.
STOPSIGNAL SIGTERM
# The HTTP API (`run` serves it when PERSISTENCE_HTTP_PORT is set; off loopback it needs
# PERSISTENCE_API_TOKEN): set PERSISTENCE_HTTP_HOST=0.0.0.0 and PERSISTENCE_HTTP_PORT=8080.
EXPOSE 8080
# Healthy = what /readyz says: the server's answer when the API is on, else the same checks
# run in-process (database reachable, schema current).
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["wn-persist", "health"]
ENTRYPOINT ["wn-persist"]
CMD ["run"]

# wn-persist as a standalone service: `wn-persist run` follows zKillboard's R2Z2 feed and
# keeps the killmails of the characters tracked on a Wanderer map (or a static list).
# SQLite by default (/data/wn_persist.db, a volume); PostgreSQL when POSTGRES_HOST or
# DATABASE_URL is set. See docs/standalone.md and docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY wn_persist_plugin ./wn_persist_plugin
COPY migrations ./migrations
RUN pip install '.[postgres]' \
    && useradd --create-home --uid 10001 wn \
    && mkdir /data \
    && chown wn:wn /data \
    && rm -rf /src

USER wn
# The zero-config SQLite database is ./wn_persist.db, relative to the working directory.
WORKDIR /data
VOLUME ["/data"]

# `run` stops cleanly on SIGTERM (docker stop): it flushes, saves the feed position, exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["wn-persist"]
CMD ["run"]

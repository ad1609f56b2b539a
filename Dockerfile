# syntax=docker/dockerfile:1
# One image per tradebus service, all from this file: PACKAGE names the
# workspace distribution to install (tradebus-marketdata, tradebus-strategy,
# tradebus-execution, tradebus-reconciler, tradebus-gateway; tradebus-cli with
# COMMAND=tradebus for the operator's CLI), COMMAND the console script the
# image runs by default (PACKAGE's own script unless told). Build from the
# repository root:
#   docker build --build-arg PACKAGE=tradebus-execution -t tradebus-execution:local .
# docker-compose.yml builds each service this way (build.args).

# The web page (web/, issue 17): built once with Node (npm ci pinned by
# web/package-lock.json, then vite build) and copied into every image as
# /app/web; only the gateway serves it (TRADEBUS_WEB_DIR in compose). The
# stage is shared by every image's build, so BuildKit builds it once.
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build && test -f dist/index.html

FROM python:3.11-slim AS builder
ARG PACKAGE
RUN test -n "$PACKAGE" || { echo "build with --build-arg PACKAGE=<distribution>" >&2; exit 1; }
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# The uv workspace (members libs/*, services/*, cli, examples/*) needs every
# member's pyproject.toml to read uv.lock, whichever package is installed.
COPY pyproject.toml uv.lock ./
COPY libs/ libs/
COPY services/ services/
COPY cli/ cli/
COPY examples/ examples/
# Only PACKAGE and its own dependencies, pinned by uv.lock, installed as
# wheels (not editable) so the venv works without the sources.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "$PACKAGE"

FROM python:3.11-slim
ARG PACKAGE
ARG COMMAND=$PACKAGE
RUN groupadd --system --gid 10001 tradebus \
    && useradd --system --uid 10001 --gid tradebus --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin tradebus
# The venv only (no sources, no uv); owned by root, read-only for the service.
# No TRADEBUS_* here: settings come from compose, and an image may run several
# programs (the execution image also runs tradebus-migrate), and each program
# rejects TRADEBUS_* variables it does not know.
COPY --from=builder /app/.venv /app/.venv
# The built page (static files only; read-only for the service).
COPY --from=web /web/dist /app/web
# The default command, under one name for every image (CMD takes no build
# arguments); the build fails here if PACKAGE does not install COMMAND.
RUN ln -s "$COMMAND" /app/.venv/bin/tradebus-service \
    && test -x /app/.venv/bin/tradebus-service
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER tradebus
EXPOSE 9100
CMD ["tradebus-service"]

"""Composition root of the gateway.

Wires: the settings check, the markets file, the ledger pool (migrations
applied under the ledger's advisory lock, as every writer does), NATS and
JetStream (the shared streams ensured), the stores, the audit trail, the NATS
accounts of people (when configured), execution's sealing key (when
configured), the HTTP server (uvicorn), the audit sink (stream ``AUDIT`` into
``audit_log``: :mod:`.audit_sink`) and the ``/metrics`` endpoint. Stops in
order on ``stop``: the HTTP server first (in-flight requests finish), then
the audit sink, then the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import argon2
import uvicorn

from tradebus.common.bus import connect, ensure_streams
from tradebus.common.clock import LiveClock
from tradebus.common.config import ConfigError
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.control.audit import AuditTrail
from tradebus.gateway.app import create_app
from tradebus.gateway.audit_sink import AuditSink
from tradebus.gateway.context import GatewayContext
from tradebus.gateway.events import EventHub
from tradebus.gateway.metrics import GatewayMetrics
from tradebus.gateway.prices import MarketPrices
from tradebus.gateway.security import AccessTokens, LoginThrottle, Passwords
from tradebus.gateway.settings import MIN_JWT_SECRET_CHARS, GatewaySettings
from tradebus.ledger.audit import AuditLog
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool
from tradebus.natsauth.claims import ClaimsError
from tradebus.natsauth.identities import IdentityError
from tradebus.natsauth.registrar import PeopleRegistrar, RegistrarError

log = logging.getLogger(__name__)

MIN_PASSWORD_MEMORY_KIB = 1024
"""The least argon2 memory a gateway accepts (KiB)."""
POOL_SIZE = 10
"""Ledger connections of the gateway (its queries are short; 100 clients share them)."""
SINK_STOP_SECONDS = 10.0
"""How long a stopping gateway waits for its audit sink to finish the batch in hand."""


def check_settings(settings: GatewaySettings) -> None:
    """Refuse settings the gateway cannot run with.

    Raises
    ------
    ConfigError
        Naming the variable (never a secret's value).
    """
    problems = []
    if len(settings.jwt_secret) < MIN_JWT_SECRET_CHARS:
        problems.append(
            f"TRADEBUS_JWT_SECRET (or TRADEBUS_JWT_SECRET_FILE): required, at least"
            f" {MIN_JWT_SECRET_CHARS} characters (got {len(settings.jwt_secret)})"
        )
    for name in ("access_token_seconds", "refresh_token_seconds", "login_max_failures"):
        if getattr(settings, name) < 1:
            problems.append(f"TRADEBUS_{name.upper()}={getattr(settings, name)!r}: must be >= 1")
    if settings.login_window_seconds <= 0:
        problems.append(
            f"TRADEBUS_LOGIN_WINDOW_SECONDS={settings.login_window_seconds!r}: must be > 0"
        )
    if settings.password_memory_kib < MIN_PASSWORD_MEMORY_KIB:
        problems.append(
            f"TRADEBUS_PASSWORD_MEMORY_KIB={settings.password_memory_kib!r}: must be >="
            f" {MIN_PASSWORD_MEMORY_KIB}"
        )
    if settings.password_time_cost < 1:
        cost = settings.password_time_cost
        problems.append(f"TRADEBUS_PASSWORD_TIME_COST={cost!r}: must be >= 1")
    if settings.max_body_bytes < 1024:
        problems.append(f"TRADEBUS_MAX_BODY_BYTES={settings.max_body_bytes!r}: must be >= 1024")
    nats_keys = (
        settings.nats_sys_creds,
        settings.nats_operator_signing_key_file,
        settings.nats_people_signing_key_file,
    )
    if any(nats_keys) and not all(nats_keys):
        problems.append(
            "TRADEBUS_NATS_SYS_CREDS, TRADEBUS_NATS_OPERATOR_SIGNING_KEY_FILE and"
            " TRADEBUS_NATS_PEOPLE_SIGNING_KEY_FILE: give all three or none"
        )
    if problems:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems))


def read_seal_public_key(path: str, setting: str = "TRADEBUS_SEAL_PUBLIC_KEY_FILE") -> str | None:
    """A public key (base64 text: execution's, or the notifier's) from ``path``; None
    when no path is set. Errors name ``setting``.

    Raises
    ------
    ConfigError
        If the file cannot be read or is empty.
    """
    if not path:
        return None
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        message = f"{setting}: cannot read {path}: {exc.strerror}"
        raise ConfigError(message) from None
    if not key:
        raise ConfigError(f"{setting}: {path} is empty")
    return key


async def open_people(settings: GatewaySettings) -> PeopleRegistrar | None:
    """The registrar of people's NATS accounts (:mod:`tradebus.natsauth`), connected as the
    SYS claims-update user; None when not configured (no ``TRADEBUS_NATS_SYS_CREDS``).

    Raises
    ------
    ConfigError
        If a file is missing or not what it must be, the gateway has no ``.creds`` of
        its own (the account of its user names the exporter of people's subjects), or
        the SYS user cannot connect (naming the variable, never a secret).
    """
    if not settings.nats_sys_creds:
        return None
    if not settings.nats_creds:
        raise ConfigError("TRADEBUS_NATS_CREDS: required with TRADEBUS_NATS_SYS_CREDS")
    try:
        people = PeopleRegistrar.from_files(
            settings.nats_url,
            settings.nats_creds,
            settings.nats_sys_creds,
            settings.nats_operator_signing_key_file,
            settings.nats_people_signing_key_file,
        )
        await people.connect()
    except (IdentityError, ClaimsError, RegistrarError) as exc:
        raise ConfigError(f"NATS accounts of people: {exc}") from None
    return people


class EmbeddedServer(uvicorn.Server):
    """uvicorn's server without its own signal handling: the service's runtime
    (:func:`tradebus.common.runtime.service_main`) owns SIGINT/SIGTERM and sets ``stop``,
    and uvicorn must not re-raise a signal it captured (the process would end with 130
    instead of a clean 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """No signal capture (class docstring)."""
        yield


async def run(settings: GatewaySettings, stop: asyncio.Event) -> int:
    """Serve the API until ``stop`` is set; returns the exit status."""
    check_settings(settings)
    catalog = MarketCatalog.load(settings.markets_file or default_markets_path())
    seal_public_key = read_seal_public_key(settings.seal_public_key_file)
    notify_public_key = read_seal_public_key(
        settings.notify_public_key_file, "TRADEBUS_NOTIFY_PUBLIC_KEY_FILE"
    )
    registry = new_registry()
    metrics = GatewayMetrics(registry)
    metrics_server = serve_metrics(registry, settings.metrics_port, settings.metrics_host)
    clock = LiveClock()
    pool = await create_pool(settings.database_url, min_size=1, max_size=POOL_SIZE)
    async with pool.acquire() as conn:
        applied = await apply_migrations(conn)
    if applied:
        log.info("migrations applied", extra={"versions": applied})
    nc = await connect(
        settings.nats_url,
        "gateway",
        creds=settings.nats_creds,
        stream_replicas=settings.stream_replicas,
    )
    js = nc.jetstream()
    await ensure_streams(js)
    people = await open_people(settings)
    ctx = GatewayContext(
        settings=settings,
        pool=pool,
        nc=nc,
        js=js,
        catalog=catalog,
        clock=clock,
        passwords=Passwords(
            argon2.PasswordHasher(
                time_cost=settings.password_time_cost, memory_cost=settings.password_memory_kib
            )
        ),
        tokens=AccessTokens(settings.jwt_secret, settings.access_token_seconds),
        throttle=LoginThrottle(settings.login_max_failures, settings.login_window_seconds),
        audit=AuditTrail(js, "gateway", clock),
        people=people,
        seal_public_key=seal_public_key,
        notify_public_key=notify_public_key,
        metrics=metrics,
    )
    app = create_app(ctx)
    # /api/v1/events: one feed per process, fanned out; the statuses' prices kept for charts
    events = EventHub(nc, prices=MarketPrices(lambda venue, symbol: (venue, symbol) in catalog))
    await events.start()
    app.state.events = events
    server = EmbeddedServer(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            proxy_headers=True,
        )
    )
    serving = asyncio.create_task(server.serve(), name="gateway-http")
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if serving.done():  # could not bind, say
        await events.stop()
        await nc.drain()
        if people is not None:
            await people.close()
        await pool.close()
        metrics_server.close()
        exc = serving.exception()
        raise ConfigError(
            f"gateway cannot serve on {settings.http_host}:{settings.http_port}: {exc!r}"
        )
    sink_stop = asyncio.Event()
    sink = asyncio.create_task(AuditSink(js, AuditLog(pool)).run(sink_stop), name="audit-sink")
    metrics.ready.set(1)
    log.info("gateway ready", extra={"url": settings.url, "docs": settings.url + "/api/docs"})
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    metrics.ready.set(0)
    await events.stop()  # WebSocket clients closed 1001, told the seq to resume from
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    stopping.cancel()
    sink_stop.set()  # after the last request: its events are written if they can be now
    try:
        await asyncio.wait_for(sink, SINK_STOP_SECONDS)
    except TimeoutError:  # wait_for cancelled it: what it had not acked comes back later
        log.warning("audit sink did not stop in time")
    await nc.drain()
    if people is not None:
        await people.close()
    await pool.close()
    metrics_server.close()
    log.info("gateway stopped")
    return 0

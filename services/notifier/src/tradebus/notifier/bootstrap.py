"""Composition root of the notifier: settings sources, NATS, the Alertmanager receiver.

* Recipients (:class:`~tradebus.notifier.service.Recipients`) come from the
  notifications file and, with a database, from the settings users saved through
  the gateway (their channels opened with the notifier's private key) and the
  ledger's account owners; both are read at start and every ``refresh_seconds``.
* Bus: core NATS subscriptions to :data:`~tradebus.notifier.service.SUBSCRIPTIONS`
  (events published while the notifier is down are not sent later).
* HTTP (aiohttp): ``POST /v1/alertmanager`` takes Alertmanager's webhook payload
  version 4 and answers 200 ``{"channels": n}``; a body that is not one answers 400
  with the field at fault; without the bearer token (``TRADEBUS_ALERTMANAGER_TOKEN``,
  when set) 401. ``GET /healthz`` answers 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging

import asyncpg
import msgspec
from aiohttp import web
from nats.aio.msg import Msg

from tradebus.common.config import ConfigError
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.common.sealed import SealedError, load_private_key, open_sealed
from tradebus.ledger.notification_settings import account_owners, all_notification_settings
from tradebus.notifier.service import SUBSCRIPTIONS, Notifier, NotifierMetrics, Recipients
from tradebus.notifier.settings import NotifierSettings
from tradebus.notify.alertmanager import PayloadError, decode_payload
from tradebus.notify.channels import (
    EVENT_KINDS,
    UserChannels,
    load_notifications,
    merge,
    quiet_apprise,
)
from tradebus.notify.delivery import Deliverer

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""Largest Alertmanager body accepted."""


async def read_recipients(settings: NotifierSettings, pool: asyncpg.Pool | None) -> Recipients:
    """The recipients now (module docstring).

    Raises
    ------
    ConfigError
        If the notifications file or the private key is not usable.
    OSError, asyncpg.PostgresError
        If the database cannot be read.
    """
    file_users: dict[str, UserChannels] = {}
    operators: list[str] = []
    owners: dict[str, str] = {}
    if settings.notifications_file:
        notifications = load_notifications(settings.notifications_file)
        operators, file_users, owners = (
            notifications.operators,
            notifications.users,
            dict(notifications.accounts),
        )
    api_users: dict[str, UserChannels] = {}
    if pool is not None:
        owners = {**await account_owners(pool), **owners}
        key = None
        if settings.seal_private_key_file:
            try:
                key = load_private_key(settings.seal_private_key_file)
            except SealedError as exc:
                raise ConfigError(f"TRADEBUS_SEAL_PRIVATE_KEY_FILE: {exc}") from None
        for row in await all_notification_settings(pool):
            channels: list[str] = []
            if row.sealed_channels is not None and key is not None:
                try:
                    opened = open_sealed(key, row.sealed_channels)
                    channels = [opened[k] for k in sorted(opened, key=int)]
                except (SealedError, ValueError) as exc:
                    log.warning(
                        "saved channels cannot be opened",
                        extra={"user": row.user_id, "error": str(exc)},
                    )
            # the gateway checked the kinds; one it no longer knows is dropped
            api_users[row.user_id] = msgspec.convert(
                {
                    "channels": channels,
                    "mute": [m for m in row.mute if m in EVENT_KINDS],
                    "mute_bots": row.mute_bots,
                },
                UserChannels,
            )
    return Recipients(operators=operators, users=merge(file_users, api_users), owners=owners)


def alertmanager_app(notifier: Notifier, token: str = "") -> web.Application:
    """The aiohttp application of the Alertmanager receiver (module docstring); with a
    ``token``, a request without ``Authorization: Bearer <token>`` answers 401."""
    expected = f"Bearer {token}".encode()

    async def receive(request: web.Request) -> web.Response:
        if token and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode(), expected
        ):
            return web.json_response(
                {"error": "unauthorized", "message": "Authorization: Bearer <token> required"},
                status=401,
            )
        body = await request.read()
        try:
            payload = decode_payload(body)
        except PayloadError as exc:
            return web.json_response({"error": "bad_request", "message": str(exc)}, status=400)
        return web.json_response({"channels": notifier.on_alert_group(payload)})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=MAX_PAYLOAD_BYTES)
    app.router.add_post("/v1/alertmanager", receive)
    app.router.add_get("/healthz", healthz)
    return app


async def run(settings: NotifierSettings, stop: asyncio.Event) -> int:
    """Run the notifier until ``stop``.

    Raises
    ------
    ConfigError
        If the notifications file or the key is not usable at start.
    nats.errors.NoServersError
        If NATS cannot be reached at start.
    OSError
        If the HTTP port is taken, or Postgres cannot be reached at start.
    """
    from tradebus.common.bus import connect

    quiet_apprise()
    registry = new_registry()
    metrics = NotifierMetrics(registry)
    server = serve_metrics(registry, settings.metrics_port, settings.metrics_host)
    pool = None
    if settings.database_url:
        pool = await asyncpg.create_pool(settings.database_url, min_size=0, max_size=2)
    notifier = Notifier(
        await read_recipients(settings, pool),
        Deliverer(
            attempts=settings.attempts,
            backoff_seconds=settings.backoff_seconds,
            on_result=metrics.delivered,
        ),
        metrics,
    )
    nc = await connect(settings.nats_url, "notifier", creds=settings.nats_creds)

    async def on_msg(msg: Msg) -> None:
        notifier.on_bus_message(msg.subject, msg.data, msg.headers)

    subs = [await nc.subscribe(subject, cb=on_msg) for subject in SUBSCRIPTIONS]
    runner = web.AppRunner(alertmanager_app(notifier, settings.alertmanager_token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    metrics.ready.set(1)
    log.info(
        "notifier ready",
        extra={
            "http": f"{settings.http_host}:{settings.http_port}",
            "operators": len(notifier.recipients.operators),
            "users": len(notifier.recipients.users),
        },
    )

    async def refresh() -> None:
        while True:
            await asyncio.sleep(settings.refresh_seconds)
            try:
                notifier.recipients = await read_recipients(settings, pool)
            except Exception as exc:  # keep the last good settings
                log.warning("notification settings not read again", extra={"error": str(exc)})

    refresher = asyncio.create_task(refresh())
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.batch_seconds)
            notifier.flush()
    finally:
        metrics.ready.set(0)
        refresher.cancel()
        for sub in subs:
            await sub.unsubscribe()
        await notifier.drain()
        await runner.cleanup()
        await nc.drain()
        if pool is not None:
            await pool.close()
        server.close()
    return 0

"""A local webhook receiver: the network edge of notification and alerting tests.

Apprise's ``json://127.0.0.1:<port>/<path>`` POSTs ``{"version": "1.0", "title": ...,
"message": ..., "type": ...}`` (Apprise's JSON plugin); Alertmanager's webhook
receivers POST its webhook payload, version 4
(https://prometheus.io/docs/alerting/latest/configuration/#webhook_config), to
:meth:`WebhookReceiver.http_url`. :class:`WebhookReceiver` records each JSON body
under its path, so one receiver serves several channels (one path each) and a test
sees which channel got what. Paths listed in ``failing`` answer 500 (a channel that
is down).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web


class WebhookReceiver:
    """An aiohttp server on a free loopback port recording JSON POSTs by path."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.attempts: dict[str, int] = {}
        self._failing = set(failing)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._arrived = asyncio.Event()

    async def start(self) -> WebhookReceiver:
        """Listen on a free port (``self.port``)."""

        async def on_post(request: web.Request) -> web.Response:
            path = request.path
            self.attempts[path] = self.attempts.get(path, 0) + 1
            if path in self._failing:
                return web.Response(status=500)
            self.received.setdefault(path, []).append(json.loads(await request.read()))
            self._arrived.set()
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/{tail:.*}", on_post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def url(self, path: str) -> str:
        """The Apprise URL of channel ``path`` (``/alice-token`` -> ``json://...``)."""
        return f"json://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str) -> str:
        """The plain HTTP URL of ``path`` (for senders other than Apprise: Alertmanager)."""
        return f"http://127.0.0.1:{self.port}{path}"

    def messages(self, path: str) -> list[dict[str, Any]]:
        """What channel ``path`` received, oldest first."""
        return self.received.get(path, [])

    async def wait_for(
        self, path: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until channel ``path`` received ``count`` messages; they are returned.

        Raises
        ------
        TimeoutError
            If they do not arrive in ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while len(self.messages(path)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages(path)

    async def wait_for_match(
        self, path: str, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        """The first message of ``path`` that ``match``es, once it has arrived.

        Raises
        ------
        AssertionError
            If none arrives in ``timeout`` seconds (listing what did).
        """
        try:
            async with asyncio.timeout(timeout):
                while not (found := [m for m in self.messages(path) if match(m)]):
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(
                f"no matching POST to {path} in {timeout} s; received {self.received}"
            ) from None
        return found[0]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

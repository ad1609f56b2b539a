"""The local Backpack WebSocket API (``wss://ws.backpack.exchange`` on localhost).

Mirrors the "Streams" section of the Backpack API docs and what
``ccxt.pro.backpack`` sends and parses:

* the client sends ``{"method": "SUBSCRIBE", "params": ["bookTicker.SOL_USDC",
  "trade.SOL_USDC"]}`` (``UNSUBSCRIBE`` likewise); a successful subscription
  is not acknowledged, data simply starts to flow;
* private streams (``account.orderUpdate``, ``account.positionUpdate``, each also
  ``.<symbol>``)
  need ``"signature": [<verifying key>, <signature>, <timestamp ms>, <window ms>]``
  over ``instruction=subscribe&timestamp=<ts>&window=<window>``;
* every message is one text frame ``{"stream": <name>, "data": {...}}`` with
  microsecond ``E``/``T``; a private payload goes only to the connections
  that subscribed with that account's key;
* a refused request is answered ``{"id": <id>, "error": {"code": .., "message": ..}}``
  (ccxt.pro turns any ``error`` into ExchangeError). ``4006 Invalid stream`` is
  Backpack's (quoted by ccxt); the other codes (``4000`` bad request, ``4005``
  refused signature) are this server's own;
* the server pings every ``ping_interval`` seconds (Backpack: 60) and drops a
  client that does not pong; client pings are answered.

Streams served: ``bookTicker.<s>``, ``trade.<s>``, ``ticker.<s>`` and the two
order-update streams. Faults: :meth:`WsHub.drop` closes connections without a
close handshake (the client sees 1006), :meth:`WsHub.resend` sends frames
again, ``resend_on_subscribe`` resends the last frames of a stream to each
new subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.support.backpack.auth import AuthError, verify
from tests.support.backpack.market import Published

INVALID_REQUEST = 4000
REFUSED_SIGNATURE = 4005
INVALID_STREAM = 4006


@dataclass(eq=False)
class WsConnection:
    """One client connection: its subscriptions, its account and what it was sent."""

    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    streams: set[str] = field(default_factory=set)
    account: str | None = None
    sent: list[str] = field(default_factory=list)
    closed: bool = False


class WsHub:
    """Every WebSocket connection of the server, and what was published to them."""

    def __init__(
        self,
        symbols: Iterable[str],
        is_account: Callable[[str], bool],
        now_ms: Callable[[], int],
        ping_interval: float | None,
    ) -> None:
        symbols = list(symbols)
        self.public = {f"{k}.{s}" for s in symbols for k in ("bookTicker", "trade", "ticker")}
        self.private = {
            f"account.{kind}{suffix}"
            for kind in ("orderUpdate", "positionUpdate")
            for suffix in ("", *(f".{s}" for s in symbols))
        }
        self._is_account = is_account
        self._now_ms = now_ms
        self._ping_interval = ping_interval
        self.connections: list[WsConnection] = []
        self.accepted = 0
        """Connections accepted so far."""
        self.drops = 0
        """Connections dropped by a fault."""
        self.sent_frames: list[str] = []
        """Every frame sent, in order, resends included."""
        self.received: list[Any] = []
        """Every client message (parsed JSON, or the raw text if not JSON)."""
        self.history: dict[tuple[str, str | None], list[str]] = defaultdict(list)
        """Frames sent per (stream, account of a private stream), first sends only."""
        self.resend_on_subscribe = 0
        """Fault: on each SUBSCRIBE, first send the last N frames of the stream again."""

    # -- connection ----------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The ``GET /`` upgrade: serve one connection until it closes."""
        ws = web.WebSocketResponse(heartbeat=self._ping_interval, autoping=True, timeout=1.0)
        transport = request.transport
        await ws.prepare(request)
        conn = WsConnection(ws=ws, transport=transport)
        self.connections.append(conn)
        self.accepted += 1
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
        finally:
            conn.closed = True
            with contextlib.suppress(ValueError):
                self.connections.remove(conn)
        return ws

    async def _on_text(self, conn: WsConnection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self.received.append(text)
            await self._error(conn, None, INVALID_REQUEST, "Invalid JSON")
            return
        self.received.append(msg)
        request_id = msg.get("id") if isinstance(msg, dict) else None
        method = msg.get("method") if isinstance(msg, dict) else None
        streams = msg.get("params") if isinstance(msg, dict) else None
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(streams, list):
            await self._error(conn, request_id, INVALID_REQUEST, "Invalid method")
            return
        if any(s not in self.public and s not in self.private for s in streams):
            await self._error(conn, request_id, INVALID_STREAM, "Invalid stream")
            return
        if method == "UNSUBSCRIBE":
            conn.streams.difference_update(streams)
            return
        if any(s in self.private for s in streams):
            try:
                conn.account = self._authenticate(msg.get("signature"))
            except AuthError as e:
                await self._error(conn, request_id, REFUSED_SIGNATURE, str(e))
                return
        for stream in streams:
            conn.streams.add(stream)
            if self.resend_on_subscribe:
                account = conn.account if stream in self.private else None
                for frame in self.history[(stream, account)][-self.resend_on_subscribe :]:
                    await self._write(conn, frame)

    def _authenticate(self, signature: Any) -> str:
        if not isinstance(signature, list) or len(signature) != 4:
            raise AuthError("Missing signature")
        key, sig, ts, window = (str(x) for x in signature)
        verify(
            key,
            sig,
            ts,
            window,
            lambda t, w: f"instruction=subscribe&timestamp={t}&window={w}",
            self._now_ms(),
        )
        if not self._is_account(key):
            raise AuthError("Invalid API key")
        return key

    async def _error(self, conn: WsConnection, request_id: Any, code: int, message: str) -> None:
        text = json.dumps({"id": request_id, "error": {"code": code, "message": message}})
        await self._write(conn, text)

    # -- publishing ----------------------------------------------------------

    def receivers(self, item: Published) -> list[tuple[WsConnection, str]]:
        """The (connection, stream) pairs ``item`` goes to."""
        out: list[tuple[WsConnection, str]] = []
        for conn in self.connections:
            if conn.closed or (item.account is not None and conn.account != item.account):
                continue
            out.extend((conn, s) for s in item.streams if s in conn.streams)
        return out

    async def deliver(self, item: Published) -> int:
        """Send ``item`` to its receivers; the number of frames sent."""
        sent = 0
        for conn, stream in self.receivers(item):
            text = json.dumps({"stream": stream, "data": item.data}, separators=(",", ":"))
            if await self._write(conn, text):
                self.history[(stream, item.account)].append(text)
                sent += 1
        return sent

    def deliver_together(self, items: Iterable[Published]) -> int:
        """Send ``items`` to their receivers as one TCP write per connection (plain text
        frames, RFC 6455 §5.2, unmasked as a server's are): a client then reads them all
        at once, as it may when a venue's updates leave back to back. The number of frames."""
        frames: dict[int, tuple[WsConnection, list[str]]] = {}
        for item in items:
            for conn, stream in self.receivers(item):
                text = json.dumps({"stream": stream, "data": item.data}, separators=(",", ":"))
                frames.setdefault(id(conn), (conn, []))[1].append(text)
                self.history[(stream, item.account)].append(text)
        sent = 0
        for conn, texts in frames.values():
            if conn.closed or not isinstance(conn.transport, asyncio.WriteTransport):
                continue
            conn.transport.write(b"".join(_text_frame(t) for t in texts))
            conn.sent.extend(texts)
            self.sent_frames.extend(texts)
            sent += len(texts)
        return sent

    async def _write(self, conn: WsConnection, text: str) -> bool:
        if conn.closed:
            return False
        try:
            await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            conn.closed = True
            return False
        conn.sent.append(text)
        self.sent_frames.append(text)
        return True

    # -- faults --------------------------------------------------------------

    def drop(self, connections: Iterable[WsConnection] | None = None) -> int:
        """Close ``connections`` (default: all) at the TCP level, with no close frame."""
        dropped = self._close_transports(connections)
        self.drops += dropped
        return dropped

    def _close_transports(self, connections: Iterable[WsConnection] | None = None) -> int:
        closed = 0
        for conn in list(self.connections if connections is None else connections):
            if conn.closed:
                continue
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
            closed += 1
        return closed

    async def resend(self, count: int, stream: str | None = None) -> int:
        """Send each open connection its last ``count`` data frames (of ``stream``) again."""
        resent = 0
        for conn in list(self.connections):
            frames = [f for f in conn.sent if '"stream":' in f[:12]]
            if stream is not None:
                prefix = json.dumps({"stream": stream}, separators=(",", ":"))[:-1] + ","
                frames = [f for f in frames if f.startswith(prefix)]
            for frame in frames[-count:] if count else []:
                resent += await self._write(conn, frame)
        return resent

    async def close_all(self) -> None:
        """Server shutdown: a close frame to each client (briefly awaited), then TCP close."""
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"shutdown"), 0.2)
        self._close_transports()

    def subscribed(self, stream: str, account: str | None = None) -> bool:
        """True if an open connection is subscribed to ``stream`` (as ``account``)."""
        return any(
            not c.closed and stream in c.streams and (account is None or c.account == account)
            for c in self.connections
        )


def _text_frame(text: str) -> bytes:
    """One final, unmasked WebSocket text frame holding ``text`` (RFC 6455 §5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes([0x81, size])
    elif size < 1 << 16:
        header = bytes([0x81, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x81, 127]) + size.to_bytes(8, "big")
    return header + payload

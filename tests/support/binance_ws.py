"""A local WebSocket server that speaks Binance's combined-stream protocol from recorded files.

This is a test double at the network edge: the marketdata service under test
connects to it exactly as it would connect to ``wss://stream.binance.com:9443``,
with a real WebSocket client over real TCP; only the other end is ours.

Protocol facts used (Binance "WebSocket Streams" documentation, combined streams):

* the endpoint is ``/stream?streams=<name>/<name>/...``; a stream name is
  ``<lowercase symbol>@<kind>`` (``btcusdt@bookTicker``, ``btcusdt@trade``,
  ``btcusdt@depth@100ms``);
* every message is one text frame with the envelope
  ``{"stream":"<name>","data":{...}}``; the server sends only the requested
  streams, and a name that matches no stream simply yields nothing;
* the server pings the client (every 20 s on Binance) and expects pongs; the
  client may ping too (websockets answers both ways by itself);
* a live feed never ends: after the last frame the connection stays open.

Recorded files (shared/data/README.md, sections 3–6) have one line per frame,
``<local receive time ns> <raw frame JSON>``. The server sends the bytes after
the first space unchanged (never re-serialized), in recorded order; frames of
several files merge by receive time. Lines without a ``"stream"`` key (the REST
depth snapshot) are never sent.

Faults, per server (counts are of *new* frames, resends excluded):

* ``drop_after=N``: after sending N frames on a connection, drop it without a
  WebSocket close handshake (TCP half-close, the client sees code 1006). Frames
  already written are delivered first, and the next connection resumes at the
  next unsent frame, so a reconnecting client receives every frame exactly once.
* ``stall_after=N, stall_seconds=S``: after N frames on a connection, send
  nothing for S seconds (once per connection), keeping the connection open.
* ``resend_last=K``: on every connection after the first, first resend the
  last K frames already sent (as a real feed may after a reconnect).

What was sent is recorded in :attr:`BinanceWsServer.sent_frames` (send order,
resends included) and :attr:`BinanceWsServer.connections`.

REST on the same port (the stale-feed fallback of the marketdata service):
``GET /api/v3/ticker/bookTicker?symbol=<SYM>`` answers, as Binance does,
``{"symbol","bidPrice","bidQty","askPrice","askQty"}``. The book is that of the
market *now*: the next ``<sym>@bookTicker`` frame the stream has not sent yet
(a stalled stream lags the market), else the last one sent. An unknown symbol
gets HTTP 400 ``{"code":-1121,"msg":"Invalid symbol."}``; setting
:attr:`BinanceWsServer.rest_status` to another status (503) makes every REST
request fail with it. Requests are recorded in :attr:`BinanceWsServer.rest_requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from tradebus.feeds.readers import merge_files

_STREAM_KEY = b'"stream":"'
_YIELD_EVERY = 64  # frames sent between two yields to the event loop at full speed
_LOOKAHEAD = 20_000  # frames scanned ahead of the cursor for the current book (REST)

Frames = Iterator[tuple[int, bytes]]


def stream_of(frame: bytes) -> str | None:
    """The ``"stream"`` name of a raw frame, found without parsing the JSON; None if absent.

    The key is searched near the start only (Binance puts it first); a snapshot
    line, which has none, is 64 KB long and must not be scanned whole.
    """
    start = frame.find(_STREAM_KEY, 0, 64)
    if start < 0:
        return None
    start += len(_STREAM_KEY)
    end = frame.find(b'"', start)
    return frame[start:end].decode() if end > start else None


class _Selection:
    """The recorded frames of one set of requested streams, read lazily and kept.

    Connections that ask for the same streams share it, which is what lets a
    new connection resume where a dropped one stopped (``cursor``).
    """

    def __init__(self, source: Frames, streams: frozenset[str], limit: int | None) -> None:
        self._source: Frames | None = source
        self._streams = streams
        self._limit = limit
        self.frames: list[tuple[int, bytes]] = []
        self.cursor = 0  # index of the next frame never sent

    def get(self, index: int) -> tuple[int, bytes] | None:
        """Frame ``index`` of the selection, or None past its end (or its ``limit``)."""
        while len(self.frames) <= index:
            if self._source is None or (
                self._limit is not None and len(self.frames) >= self._limit
            ):
                return None
            for ts, frame in self._source:
                if stream_of(frame) in self._streams:
                    self.frames.append((ts, frame))
                    break
            else:
                self._source = None
        return self.frames[index]

    def current(self, stream: str) -> bytes | None:
        """The next unsent frame of ``stream`` (the market now), else the last one sent."""
        for index in range(self.cursor, self.cursor + _LOOKAHEAD):
            item = self.get(index)
            if item is None:
                break
            if stream_of(item[1]) == stream:
                return item[1]
        for _, frame in reversed(self.frames[: self.cursor]):
            if stream_of(frame) == stream:
                return frame
        return None


class BinanceWsServer:
    """Serve recorded Binance frames on ``ws://127.0.0.1:<port>/stream``.

    Use as ``async with BinanceWsServer(paths, ...) as server:`` (or
    :meth:`start` / :meth:`stop`), then point the client at :attr:`url`.

    Parameters
    ----------
    paths
        Recorded raw-feed files; merged by receive time.
    speed
        ``None`` sends as fast as possible; ``1.0`` paces at recorded real
        time, ``10.0`` ten times faster (pacing restarts on each connection
        and after a stall).
    limit
        Serve only the first ``limit`` frames matching the requested streams.
    drop_after, stall_after, stall_seconds, resend_last
        Faults; see the module docstring.
    ping_interval
        Seconds between the server's pings (Binance: 20); None disables them.
    ping_timeout
        Seconds the server waits for the pong before closing the connection
        (Binance: 60, the default; None waits forever).
    """

    def __init__(
        self,
        paths: list[Path],
        *,
        speed: float | None = None,
        limit: int | None = None,
        drop_after: int | None = None,
        stall_after: int | None = None,
        stall_seconds: float = 0.0,
        resend_last: int = 0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 60.0,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        if drop_after is not None and drop_after < 1:
            raise ValueError(f"drop_after must be >= 1, got {drop_after}")
        self._paths = list(paths)
        self._speed = speed
        self._limit = limit
        self._drop_after = drop_after
        self._stall_after = stall_after
        self._stall_seconds = stall_seconds
        self._resend_last = resend_last
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._selections: dict[frozenset[str], _Selection] = {}
        self._server: Server | None = None
        self.url = ""
        self.sent_frames: list[str] = []
        """Every frame sent, as the text on the wire, in send order (resends included)."""
        self.connections = 0
        """Connections accepted (including rejected requests)."""
        self.drops = 0
        """Connections dropped by the ``drop_after`` fault."""
        self.requests: list[str] = []
        """Request path (with query) of every connection."""
        self.rest_requests: list[str] = []
        """Path (with query) of every REST request."""
        self.rest_status = 200
        """HTTP status of every REST answer; anything but 200 answers an error body."""

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> str:
        """Bind 127.0.0.1 on a free port; return :attr:`url`."""
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            compression=None,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout if self._ping_interval else None,
            max_queue=None,
            process_request=self._process_request,
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.rest_url = f"http://127.0.0.1:{port}"
        self.url = self._ws_base(port)
        return self.url

    def _ws_base(self, port: int) -> str:
        return f"ws://127.0.0.1:{port}/stream"

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> BinanceWsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what was served -----------------------------------------------------

    def served(self, streams: list[str] | None = None) -> int:
        """Distinct frames sent so far for ``streams`` (default: every selection)."""
        if streams is not None:
            selection = self._selections.get(frozenset(streams))
            return 0 if selection is None else selection.cursor
        return sum(s.cursor for s in self._selections.values())

    def exhausted(self, streams: list[str]) -> bool:
        """True once every frame of ``streams`` (up to ``limit``) has been sent."""
        selection = self._selections.get(frozenset(streams))
        return selection is not None and selection.get(selection.cursor) is None

    def current_frame(self, stream: str) -> bytes | None:
        """The market's current frame of ``stream`` (see :meth:`_Selection.current`)."""
        for key, selection in self._selections.items():
            if stream in key:
                return selection.current(stream)
        return None

    # -- venue specifics (overridden by other venues' servers) ----------------

    def _recorded(self) -> Frames:
        """Every frame the server can send, in order."""
        return merge_files(self._paths)

    async def _requested_streams(self, ws: ServerConnection) -> list[str] | None:
        """The streams the client asks for (Binance: in the URL); None after refusing it."""
        path = ws.request.path if ws.request is not None else ""
        parts = urlsplit(path)
        names = [n for v in parse_qs(parts.query).get("streams", []) for n in v.split("/") if n]
        if parts.path != "/stream" or not names:
            await ws.close(CloseCode.POLICY_VIOLATION, "expected /stream?streams=<a>/<b>/...")
            return None
        return names

    def _rest(self, path: str, query: dict[str, str]) -> tuple[int, object] | None:
        """``(status, JSON body)`` of a REST request, None if the path is not served."""
        if path != "/api/v3/ticker/bookTicker":
            return None
        symbol = query.get("symbol", "")
        frame = self.current_frame(f"{symbol.lower()}@bookTicker")
        if not symbol or frame is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        d = json.loads(frame)["data"]
        return 200, {
            "symbol": d["s"],
            "bidPrice": d["b"],
            "bidQty": d["B"],
            "askPrice": d["a"],
            "askQty": d["A"],
        }

    # -- protocol ------------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP requests (REST); let WebSocket upgrades through."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        self.rest_requests.append(request.path)
        parts = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        answer = self._rest(parts.path, query)
        if answer is None:
            answer = (404, {"code": 404, "msg": "Not found"})
        elif self.rest_status != 200:
            answer = (self.rest_status, {"code": -1003, "msg": "Service unavailable."})
        status, body = answer
        response = ws.respond(status, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        path = ws.request.path if ws.request is not None else ""
        self.requests.append(path)
        names = await self._requested_streams(ws)
        if names is None:
            return
        key = frozenset(names)
        selection = self._selections.get(key)
        reconnect = selection is not None
        if selection is None:
            selection = self._selections[key] = _Selection(self._recorded(), key, self._limit)

        if reconnect and self._resend_last > 0:
            start = max(0, selection.cursor - self._resend_last)
            for _, frame in selection.frames[start : selection.cursor]:
                try:
                    await self._send(ws, frame)
                except ConnectionClosed:
                    return

        sent_here = 0
        stalled = False
        anchor: tuple[float, int] | None = None  # (wall, recorded ts) for pacing
        while True:
            item = selection.get(selection.cursor)
            if item is None:
                break
            ts, frame = item
            if self._speed is not None:
                if anchor is None:
                    anchor = (time.monotonic(), ts)
                wait = (ts - anchor[1]) / 1e9 / self._speed - (time.monotonic() - anchor[0])
                if wait > 0:
                    await asyncio.sleep(wait)
            selection.cursor += 1
            try:
                await self._send(ws, frame)
            except ConnectionClosed:
                selection.cursor -= 1  # not delivered: the next connection sends it
                return
            sent_here += 1
            if self._speed is None and sent_here % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if self._drop_after is not None and sent_here >= self._drop_after:
                await self._drop(ws)
                return
            if not stalled and self._stall_after is not None and sent_here >= self._stall_after:
                stalled = True
                await asyncio.sleep(self._stall_seconds)
                anchor = None
        await ws.wait_closed()  # a live feed does not end; wait for the client to leave

    async def _send(self, ws: ServerConnection, frame: bytes) -> None:
        """Send the recorded bytes unchanged as one text frame; record it once sent."""
        await ws.send(frame, text=True)
        self.sent_frames.append(frame.decode())

    async def _drop(self, ws: ServerConnection) -> None:
        """End the connection without a close frame, after what was written is delivered."""
        self.drops += 1
        transport = ws.transport
        if transport.can_write_eof():
            transport.write_eof()  # flushes the buffer first, then FIN
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), 5.0)
        transport.abort()
        await ws.wait_closed()

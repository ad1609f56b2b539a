"""Where raw frames come from: recorded files (replay) or the live WebSocket.

A source is an async iterator of ``(ts_recv_ns, raw_frame_bytes)``; the
:class:`~tradebus.marketdata.feed.Feed` parses and publishes whatever it yields.

Recorded files are read by :func:`tradebus.feeds.readers.merge_files` (the
capture format: one frame per line, ``<local receive time, ns> <raw JSON
frame>``, gzip or plain text); this module paces them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import websockets
from tenacity import RetryCallState, wait_exponential, wait_random_exponential
from websockets.asyncio.client import connect

from tradebus.feeds.parsing import Frame
from tradebus.feeds.readers import merge_files

log = logging.getLogger(__name__)


class ReplaySource:
    """Replay recorded frames at ``speed`` times real time, or as fast as possible.

    Parameters
    ----------
    paths
        Recorded files; merged by receive time.
    speed
        ``None`` for as fast as possible; ``1.0`` for real time; ``10.0`` for
        ten times faster. The pacing follows the recorded receive times.
    """

    def __init__(self, paths: list[Path], speed: float | None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"replay speed must be > 0, got {speed}")
        self._paths = paths
        self._speed = speed

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield every frame once, in receive-time order, then stop."""
        start_wall = time.monotonic()
        first_ts: int | None = None
        for count, (ts, frame) in enumerate(merge_files(self._paths)):
            if self._speed is not None:
                first_ts = ts if first_ts is None else first_ts
                due = (ts - first_ts) / 1e9 / self._speed
                wait = due - (time.monotonic() - start_wall)
                if wait > 0:
                    await asyncio.sleep(wait)
            elif count % 512 == 0:
                await asyncio.sleep(0)  # let the publisher's flusher run
            yield ts, frame


class FeedRefusedError(RuntimeError):
    """The feed's URL is invalid or the server refuses us for good (HTTP 4xx other than 429)."""


STABLE_SECONDS = 10.0
"""A connection that lasted this long resets the reconnect backoff."""


def backoff_delay(attempt: int, base: float = 0.25, cap: float = 30.0) -> float:
    """Seconds to wait before reconnect ``attempt`` (0, 1, 2, ...): exponential, jittered.

    ``min(cap, base * 2**attempt)`` scaled by a uniform factor in [0.5, 1)
    ("equal jitter"), so many clients dropped together do not return in step
    and the delay never collapses to zero. Computed by tenacity's wait strategies:
    half of it fixed (``wait_exponential``), half random (``wait_random_exponential``),
    tenacity's attempt ``attempt + 1``. The reconnect loop itself is ours
    (:class:`Reconnects`: the attempts start again after a stable connection;
    docs/design.md, "Own code kept, and why").
    """
    half_cap = cap / 2
    wait = wait_exponential(multiplier=base / 2, max=half_cap) + wait_random_exponential(
        multiplier=base / 2, max=half_cap
    )
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = min(attempt, 32) + 1
    return float(wait(state))


class Reconnects:
    """Connection bookkeeping shared by the live sources: callbacks, backoff, jitter.

    A source calls :meth:`attempting` before each connection attempt,
    :meth:`opened` once the connection delivers (or is subscribed),
    :meth:`closed` when an opened connection is lost, and awaits
    :meth:`pause` before trying again. The delay doubles after every failed
    or short-lived connection (one that lasted less than :data:`STABLE_SECONDS`),
    so a server that accepts and drops at once is not hammered
    (:func:`backoff_delay`); a stable connection resets it.

    Parameters
    ----------
    on_connect, on_disconnect, on_reconnect
        Called when a connection opens, when an opened one is lost, and
        (before ``on_connect``) when a lost connection is re-established.
    max_backoff
        Cap of the reconnect delay, seconds.
    monotonic
        Clock of the stability check, seconds.
    """

    def __init__(
        self,
        on_connect: Callable[[], None] = lambda: None,
        on_disconnect: Callable[[], None] = lambda: None,
        on_reconnect: Callable[[], None] = lambda: None,
        max_backoff: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._on_reconnect = on_reconnect
        self._max_backoff = max_backoff
        self._monotonic = monotonic
        self._attempt = 0
        self._connected_before = False
        self._since = monotonic()

    def attempting(self) -> None:
        """A connection attempt starts now."""
        self._since = self._monotonic()

    def opened(self) -> None:
        """The connection works: ``on_reconnect`` (if it is not the first), then ``on_connect``."""
        self._since = self._monotonic()
        if self._connected_before:
            self._on_reconnect()
        self._connected_before = True
        self._on_connect()

    def closed(self) -> None:
        """An opened connection was lost: ``on_disconnect``."""
        self._on_disconnect()

    async def pause(self) -> None:
        """Sleep the backoff delay before the next attempt."""
        if self._monotonic() - self._since >= STABLE_SECONDS:
            self._attempt = 0
        delay = backoff_delay(self._attempt, cap=self._max_backoff)
        self._attempt += 1
        await asyncio.sleep(delay)


class LiveSource:
    """Frames from a WebSocket URL, reconnecting with exponential backoff and jitter.

    The one connection mechanism of every venue: Binance puts its streams in
    the URL, Backpack subscribes with a message; both are re-established on
    every reconnect. Protocol-level pings from the server are answered by
    the WebSocket library; the client also pings every ``ping_interval``
    seconds and drops a connection whose pong does not come within
    ``ping_timeout`` (a dead TCP path), which then reconnects.

    Parameters
    ----------
    url
        Full stream URL (for Binance, the combined-stream URL).
    subscribe
        Text messages sent, in order, right after each connection opens
        (Backpack's ``SUBSCRIBE`` request); empty for Binance.
    clock_ns
        Receive-time clock (``time.time_ns``).
    on_connect, on_disconnect, on_reconnect
        Called when a connection opens (after subscribing), when it is lost,
        and when a lost connection is re-established.
    max_backoff
        Cap of the reconnect delay, seconds. The delay doubles after every
        failed or short-lived connection (one that lasted less than
        :data:`STABLE_SECONDS`), so a server that accepts and drops at once is
        not hammered (:func:`backoff_delay`).
    ping_interval, ping_timeout
        Client keepalive, seconds (None disables).
    """

    def __init__(
        self,
        url: str,
        subscribe: Sequence[str] = (),
        clock_ns: Callable[[], int] = time.time_ns,
        on_connect: Callable[[], None] = lambda: None,
        on_disconnect: Callable[[], None] = lambda: None,
        on_reconnect: Callable[[], None] = lambda: None,
        max_backoff: float = 30.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
    ) -> None:
        self._url = url
        self._subscribe = list(subscribe)
        self._clock_ns = clock_ns
        self._reconnects = Reconnects(on_connect, on_disconnect, on_reconnect, max_backoff)
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield frames forever; a dropped connection is re-opened and re-subscribed.

        Raises
        ------
        FeedRefusedError
            If the URL is invalid or the server answers the handshake with a
            client error other than 429 (retrying would not help).
        """
        reconnects = self._reconnects
        while True:
            reconnects.attempting()
            try:
                async with connect(
                    self._url,
                    max_size=2**22,
                    compression=None,
                    ping_interval=self._ping_interval,
                    ping_timeout=self._ping_timeout,
                ) as ws:
                    for message in self._subscribe:
                        await ws.send(message)
                    reconnects.opened()
                    log.info("feed connected", extra={"url": self._url})
                    try:
                        async for received in ws:
                            data = received.encode() if isinstance(received, str) else received
                            yield self._clock_ns(), data
                    finally:
                        reconnects.closed()
                log.warning("feed closed by server; reconnecting")
            except websockets.InvalidURI as exc:
                raise FeedRefusedError(f"invalid feed URL {self._url}: {exc}") from None
            except websockets.InvalidStatus as exc:
                status = exc.response.status_code
                if 400 <= status < 500 and status != 429:
                    raise FeedRefusedError(
                        f"{self._url} refused the connection: HTTP {status}"
                    ) from None
                log.warning("feed handshake failed", extra={"status": status})
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                log.warning("feed connection failed", extra={"error": repr(exc)})
            await reconnects.pause()

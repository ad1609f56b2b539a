"""A minimal local Backpack Exchange server: the public WebSocket streams and REST depth.

Only what the marketdata feed uses; the full exchange (orders, signatures,
account streams) is :mod:`tests.support.backpack`. Same faults and
records as :class:`~tests.support.binance_ws.BinanceWsServer`, which it extends.

Protocol facts used (Backpack "Streams" docs; ccxt 4.5 ``ccxt/pro/backpack.py``):

* one endpoint (``wss://ws.backpack.exchange``, any path here); the client
  sends ``{"method":"SUBSCRIBE","params":["bookTicker.BTC_USDC",...]}`` after
  connecting (and again after every reconnect); data messages are
  ``{"stream":"<kind>.<SYMBOL>","data":{...}}``; a request that is not a
  valid subscription gets ``{"id":null,"error":{"code":4006,"message":"Invalid stream"}}``;
* times are microseconds; ``E``/``T`` are sent as JSON strings, as in
  ccxt's captured samples, ``u``/``t`` as numbers;
* the server pings (protocol level) every ``ping_interval`` seconds
  (Backpack: 60) and closes a connection whose pong is late.

The frames are the real recorded Binance captures (shared/data) rewritten in
Backpack's format by :func:`to_backpack`, symbol ``BTCUSDT`` -> ``BTC_USDC``
and ``ETHUSDT`` -> ``ETH_USDC``; depth frames and snapshots are left out.

REST: ``GET /api/v1/depth?symbol=<SYM>`` answers
``{"asks":[[p,q]],"bids":[[p,q]],"lastUpdateId":"<u>","timestamp":<µs>}``
from the market's current ``bookTicker`` (as the Binance server does);
an unknown symbol gets HTTP 400 ``{"code":"INVALID_CLIENT_REQUEST",..}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tests.support.binance_ws import BinanceWsServer, Frames

SYMBOLS = {"BTCUSDT": "BTC_USDC", "ETHUSDT": "ETH_USDC"}
"""Binance capture symbol -> the Backpack market its frames are served as."""

INVALID_STREAM = json.dumps({"id": None, "error": {"code": 4006, "message": "Invalid stream"}})


def _frame(stream: str, data: dict[str, Any]) -> bytes:
    # "stream" first, so stream_of() finds it without parsing
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


def to_backpack(frames: Iterable[tuple[int, bytes]]) -> Frames:
    """Rewrite recorded Binance ``bookTicker``/``trade`` frames as Backpack frames.

    ``bookTicker``: ``E`` = ``T`` = receive time (µs), ``u`` kept. ``trade``:
    ``T`` = Binance trade time (ms -> µs), ``E`` = receive time (µs), ``t``
    and ``m`` kept, order ids ``b``/``a`` made up from ``t``.
    """
    for ts, raw in frames:
        if b'"stream"' not in raw[:20]:
            continue
        envelope = json.loads(raw)
        kind = envelope["stream"].partition("@")[2]
        d = envelope["data"]
        symbol = SYMBOLS.get(d.get("s", ""))
        if symbol is None:
            continue
        micros = str(ts // 1_000)
        if kind == "bookTicker":
            data = {
                "e": "bookTicker",
                "E": micros,
                "s": symbol,
                "a": d["a"],
                "A": d["A"],
                "b": d["b"],
                "B": d["B"],
                "u": d["u"],
                "T": micros,
            }
            yield ts, _frame(f"bookTicker.{symbol}", data)
        elif kind == "trade":
            data = {
                "e": "trade",
                "E": micros,
                "s": symbol,
                "p": d["p"],
                "q": d["q"],
                "b": str(2 * d["t"]),
                "a": str(2 * d["t"] + 1),
                "t": d["t"],
                "T": str(d["T"] * 1_000),
                "m": d["m"],
            }
            yield ts, _frame(f"trade.{symbol}", data)


class BackpackWsServer(BinanceWsServer):
    """Serve recorded frames as Backpack on ``ws://127.0.0.1:<port>``, REST on the same port.

    Parameters are those of :class:`~tests.support.binance_ws.BinanceWsServer`
    (pings default to Backpack's: every 60 s, pong within 120 s). :attr:`subscriptions`
    records the ``params`` of every ``SUBSCRIBE`` received.
    """

    def __init__(
        self,
        *args: Any,
        ping_interval: float | None = 60.0,
        ping_timeout: float | None = 120.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, ping_interval=ping_interval, ping_timeout=ping_timeout, **kwargs)
        self.subscriptions: list[list[str]] = []

    def _ws_base(self, port: int) -> str:
        return f"ws://127.0.0.1:{port}"

    def _recorded(self) -> Iterator[tuple[int, bytes]]:
        return to_backpack(super()._recorded())

    async def _requested_streams(self, ws: ServerConnection) -> list[str] | None:
        """Wait for a ``SUBSCRIBE`` request; answer anything else with error 4006."""
        while True:
            try:
                message = await asyncio.wait_for(ws.recv(), 30.0)
            except (TimeoutError, ConnectionClosed):
                await ws.close()
                return None
            try:
                request = json.loads(message)
                params = request["params"]
                valid = request["method"] == "SUBSCRIBE" and all(
                    isinstance(p, str) and p.partition(".")[0] in ("bookTicker", "trade")
                    for p in params
                )
            except (ValueError, KeyError, TypeError):
                valid = False
            if valid and params:
                self.subscriptions.append(list(params))
                return list(params)
            await ws.send(INVALID_STREAM)

    def _rest(self, path: str, query: dict[str, str]) -> tuple[int, object] | None:
        if path != "/api/v1/depth":
            return None
        symbol = query.get("symbol", "")
        frame = self.current_frame(f"bookTicker.{symbol}")
        if not symbol or frame is None:
            return 400, {"code": "INVALID_CLIENT_REQUEST", "message": "Invalid symbol"}
        d = json.loads(frame)["data"]
        return 200, {
            "asks": [[d["a"], d["A"]]],
            "bids": [[d["b"], d["B"]]],
            "lastUpdateId": str(d["u"]),
            "timestamp": int(d["E"]),
        }

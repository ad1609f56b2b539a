"""Parser of Backpack Exchange public WebSocket frames and of its REST depth answer.

Protocol (Backpack "Streams" docs, and ccxt 4.5's ``ccxt/pro/backpack.py``
``handle_bid_ask`` / ``parse_ws_bid_ask`` / ``parse_ws_trade``, whose sample
frames give the field letters):

* one connection to ``wss://ws.backpack.exchange``; the client sends
  ``{"method":"SUBSCRIBE","params":["bookTicker.SOL_USDC","trade.SOL_USDC"]}``
  and every data message is ``{"stream":"<kind>.<SYMBOL>","data":{...}}``;
* every time is in **microseconds** since the epoch (converted to ns here);
* ``bookTicker``: ``{"e":"bookTicker","E":<event µs>,"T":<engine µs>,"s":sym,
  "a":ask,"A":ask qty,"b":bid,"B":bid qty,"u":<book update id>}`` ->
  :class:`QuoteTick` with ``ts_event = T`` (``E`` when ``T`` is absent) and
  ``update_id = u``;
* ``trade``: ``{"e":"trade","E":..,"T":<trade µs>,"s":sym,"p":price,"q":qty,
  "b":buy order id,"a":sell order id,"t":<trade id, sequential per symbol>,
  "m":<buyer is maker>}`` -> :class:`TradeTick`; ``m == true`` means the
  aggressor sold (as on Binance);
* errors come as ``{"id":null,"error":{"code":4006,"message":"Invalid stream"}}``
  (ccxt ``handle_error_message``) and are reported as :attr:`FrameKind.CONTROL`;
* keep-alive: the server sends protocol-level WebSocket Pings (every 60 s,
  Pong expected within 120 s); there is no application-level ping, the
  WebSocket library answers them.

ccxt's samples show ``E``/``T`` as JSON strings and ``u``/``t`` as numbers;
both spellings are accepted.

REST fallback: ``GET /api/v1/ticker?symbol=`` is a 24 h statistics ticker
without bid or ask (ccxt ``parse_ticker``), so the best bid/ask come from
``GET /api/v1/depth?symbol=<SYM>`` (ccxt ``fetch_order_book``):
``{"asks":[[p,q],..],"bids":[[p,q],..],"lastUpdateId":"..","timestamp":<µs>}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal

import msgspec

from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.parsing import FrameKind, ParserBase, Tick

VENUE = "backpack"
BACKPACK_WS_URL = "wss://ws.backpack.exchange"
BACKPACK_REST_URL = "https://api.backpack.exchange"
_US = 1_000

CCXT_INFO_KEYS: Mapping[str, tuple[str, ...]] = {
    "bid": ("b",),
    "bidVolume": ("B",),
    "ask": ("a",),
    "askVolume": ("A",),
    "price": ("p",),
    "amount": ("q",),
}
"""Where ccxt's unified ticker and trade numbers are in this venue's raw messages (the
``data`` of ``bookTicker`` and ``trade`` frames, below), which ccxt keeps as ``info``:
the ccxt feed (:mod:`tradebus.feeds.ccxt_parser`) takes the exchange's text from there."""

CCXT_UPDATE_ID_KEY = "u"
"""The book update id of a ``bookTicker`` message (ccxt's ``info``), strictly increasing."""


class _Envelope(msgspec.Struct):
    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class _BookTicker(msgspec.Struct):
    s: str
    a: Decimal
    A: Decimal
    b: Decimal
    B: Decimal
    u: int
    E: int
    T: int | None = None


class _Trade(msgspec.Struct):
    s: str
    p: Decimal
    q: Decimal
    t: int
    T: int
    m: bool


class _Depth(msgspec.Struct):
    asks: list[tuple[Decimal, Decimal]]
    bids: list[tuple[Decimal, Decimal]]
    lastUpdateId: int | None = None  # Backpack's field names
    timestamp: int | None = None


# strict=False: numbers sent as strings ("E":"1754517402450016") still decode as int
_envelope = msgspec.json.Decoder(_Envelope)
_book_ticker = msgspec.json.Decoder(_BookTicker, strict=False)
_trade = msgspec.json.Decoder(_Trade, strict=False)
_depth = msgspec.json.Decoder(_Depth, strict=False)


class BackpackParser(ParserBase):
    """Turn raw Backpack frames into ticks for the configured markets."""

    default_venue = VENUE
    frame_name = "Backpack"

    def parse(self, raw: bytes, ts_recv: int, ts_init: int) -> tuple[FrameKind, Tick | None]:
        """Parse one frame received at ``ts_recv`` (ns); ``ts_init`` stamps the tick.

        Raises
        ------
        msgspec.DecodeError, msgspec.ValidationError
            If the frame is not JSON or a quote/trade frame lacks a field.
        """
        env = _envelope.decode(raw)
        if not env.stream:
            return (FrameKind.CONTROL, None)
        kind, _, _ = env.stream.partition(".")
        if kind == "bookTicker":
            return self._quote(_book_ticker.decode(env.data), ts_recv, ts_init)
        if kind == "trade":
            return self._trade(_trade.decode(env.data), ts_recv, ts_init)
        if kind == "depth":
            return (FrameKind.DEPTH, None)
        return (FrameKind.OTHER, None)

    def _quote(self, q: _BookTicker, ts_recv: int, ts_init: int) -> tuple[FrameKind, Tick | None]:
        unified = self._unified.get(q.s)
        if unified is None:
            return (FrameKind.OTHER_SYMBOL, None)
        tick = QuoteTick(
            venue=self._venue,
            symbol=q.s,
            unified_symbol=unified,
            bid=q.b,
            bid_size=q.B,
            ask=q.a,
            ask_size=q.A,
            ts_event=(q.T if q.T is not None else q.E) * _US,
            ts_recv=ts_recv,
            ts_init=ts_init,
            update_id=q.u,
        )
        return (FrameKind.QUOTE, tick)

    def _trade(self, t: _Trade, ts_recv: int, ts_init: int) -> tuple[FrameKind, Tick | None]:
        unified = self._unified.get(t.s)
        if unified is None:
            return (FrameKind.OTHER_SYMBOL, None)
        tick = TradeTick(
            venue=self._venue,
            symbol=t.s,
            unified_symbol=unified,
            price=t.p,
            size=t.q,
            aggressor="sell" if t.m else "buy",
            trade_id=str(t.t),
            ts_event=t.T * _US,
            ts_recv=ts_recv,
            ts_init=ts_init,
        )
        return (FrameKind.TRADE, tick)

    def parse_rest_quote(
        self, raw: bytes, symbol: str, ts_recv: int, ts_init: int
    ) -> QuoteTick | None:
        """The answer of ``GET /api/v1/depth?symbol=<symbol>`` as a best bid/ask quote.

        Best bid is the highest bid, best ask the lowest ask (the order of the
        levels is not relied on). ``update_id`` is ``lastUpdateId``;
        ``ts_event`` is ``timestamp`` (µs -> ns), else ``ts_recv``. Returns
        None for an unconfigured symbol or an empty side.

        Raises
        ------
        msgspec.DecodeError, msgspec.ValidationError
            If the answer is not that endpoint's JSON.
        """
        d = _depth.decode(raw)
        unified = self._unified.get(symbol)
        if unified is None or not d.bids or not d.asks:
            return None
        bid, bid_size = max(d.bids, key=lambda level: level[0])
        ask, ask_size = min(d.asks, key=lambda level: level[0])
        return QuoteTick(
            venue=self._venue,
            symbol=symbol,
            unified_symbol=unified,
            bid=bid,
            bid_size=bid_size,
            ask=ask,
            ask_size=ask_size,
            ts_event=d.timestamp * _US if d.timestamp is not None else ts_recv,
            ts_recv=ts_recv,
            ts_init=ts_init,
            update_id=d.lastUpdateId,
        )


def stream_names(symbols: list[str]) -> list[str]:
    """``bookTicker.<SYM>`` and ``trade.<SYM>`` for every native symbol."""
    return [f"{kind}.{symbol}" for symbol in symbols for kind in ("bookTicker", "trade")]


def subscribe_message(symbols: list[str]) -> str:
    """The one ``SUBSCRIBE`` request for every stream of ``symbols`` (sent on each connect)."""
    return json.dumps({"method": "SUBSCRIBE", "params": stream_names(symbols)})


def rest_quote_url(base_url: str, symbol: str) -> str:
    """``<base_url>/api/v1/depth?symbol=<symbol>``."""
    return f"{base_url.rstrip('/')}/api/v1/depth?symbol={symbol}"

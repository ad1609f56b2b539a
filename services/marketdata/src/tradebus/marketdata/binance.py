"""Parser of Binance spot WebSocket frames: the one parser of the live feed and replays.

Input is one combined-stream frame, ``{"stream": "<sym>@<kind>", "data": {...}}``
(Binance "Websocket Market Streams", combined streams), plus the REST depth
snapshot lines that hftbacktest's recorder interleaves (``{"lastUpdateId":..}``).

* ``<sym>@bookTicker`` -> :class:`QuoteTick`. The frame has no exchange time,
  so ``ts_event = ts_recv`` (shared/data/README.md). ``u`` is the book update id.
* ``<sym>@trade`` -> :class:`TradeTick`. ``T`` (trade time, ms) gives
  ``ts_event``; ``m == true`` means the buyer was the maker, so the aggressor sold.
* ``<sym>@depth*`` and depth snapshots are counted and skipped (no book yet).

REST fallback (stale stream): ``GET /api/v3/ticker/bookTicker?symbol=<SYM>``
(Binance "Market Data endpoints", symbol order book ticker) answers
``{"symbol","bidPrice","bidQty","askPrice","askQty"}``: no update id and no
time, so the quote gets ``update_id=None`` and ``ts_event = ts_recv``.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.marketdata.parsing import FrameKind, ParserBase

__all__ = ["BINANCE_REST_URL", "VENUE", "BinanceParser", "FrameKind", "combined_stream_url"]

VENUE = "binance"
BINANCE_REST_URL = "https://api.binance.com"
_MS = 1_000_000


class _Envelope(msgspec.Struct):
    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class _BookTicker(msgspec.Struct):
    u: int
    s: str
    b: Decimal
    B: Decimal
    a: Decimal
    A: Decimal


class _Trade(msgspec.Struct):
    s: str
    t: int
    p: Decimal
    q: Decimal
    T: int
    m: bool


class _RestBookTicker(msgspec.Struct):
    symbol: str
    bidPrice: Decimal  # Binance's field names
    bidQty: Decimal
    askPrice: Decimal
    askQty: Decimal


_envelope = msgspec.json.Decoder(_Envelope)
_book_ticker = msgspec.json.Decoder(_BookTicker)
_trade = msgspec.json.Decoder(_Trade)
_rest_book_ticker = msgspec.json.Decoder(_RestBookTicker)


class BinanceParser(ParserBase):
    """Turn raw frames into ticks; knows the unified symbol of each configured market."""

    default_venue = VENUE

    def parse(
        self, raw: bytes, ts_recv: int, ts_init: int
    ) -> tuple[FrameKind, QuoteTick | TradeTick | None]:
        """Parse one frame received at ``ts_recv`` (ns); ``ts_init`` stamps the tick.

        Returns ``(kind, tick)``; ``tick`` is None for frames that are not published.

        Raises
        ------
        msgspec.DecodeError, msgspec.ValidationError
            If the frame is not JSON or a quote/trade frame lacks a field.
        """
        env = _envelope.decode(raw)
        stream = env.stream
        if not stream:
            return (FrameKind.SNAPSHOT, None)
        kind = stream[stream.find("@") + 1 :]
        if kind == "bookTicker":
            q = _book_ticker.decode(env.data)
            unified = self._unified.get(q.s)
            if unified is None:
                return (FrameKind.OTHER_SYMBOL, None)
            return (
                FrameKind.QUOTE,
                QuoteTick(
                    venue=self._venue,
                    symbol=q.s,
                    unified_symbol=unified,
                    bid=q.b,
                    bid_size=q.B,
                    ask=q.a,
                    ask_size=q.A,
                    ts_event=ts_recv,
                    ts_recv=ts_recv,
                    ts_init=ts_init,
                    update_id=q.u,
                ),
            )
        if kind == "trade":
            t = _trade.decode(env.data)
            unified = self._unified.get(t.s)
            if unified is None:
                return (FrameKind.OTHER_SYMBOL, None)
            return (
                FrameKind.TRADE,
                TradeTick(
                    venue=self._venue,
                    symbol=t.s,
                    unified_symbol=unified,
                    price=t.p,
                    size=t.q,
                    aggressor="sell" if t.m else "buy",
                    trade_id=str(t.t),
                    ts_event=t.T * _MS,
                    ts_recv=ts_recv,
                    ts_init=ts_init,
                ),
            )
        if kind.startswith("depth"):
            return (FrameKind.DEPTH, None)
        return (FrameKind.OTHER, None)

    def parse_rest_quote(
        self, raw: bytes, symbol: str, ts_recv: int, ts_init: int
    ) -> QuoteTick | None:
        """The answer of ``GET /api/v3/ticker/bookTicker?symbol=<symbol>`` as a quote.

        ``update_id`` is None and ``ts_event = ts_recv`` (the answer has neither).
        Returns None if the answer is for another symbol or a side is empty
        (Binance answers price ``0`` for an empty side).

        Raises
        ------
        msgspec.DecodeError, msgspec.ValidationError
            If the answer is not that endpoint's JSON.
        """
        q = _rest_book_ticker.decode(raw)
        unified = self._unified.get(q.symbol)
        if q.symbol != symbol or unified is None or not (q.bidPrice > 0 and q.askPrice > 0):
            return None
        return QuoteTick(
            venue=self._venue,
            symbol=q.symbol,
            unified_symbol=unified,
            bid=q.bidPrice,
            bid_size=q.bidQty,
            ask=q.askPrice,
            ask_size=q.askQty,
            ts_event=ts_recv,
            ts_recv=ts_recv,
            ts_init=ts_init,
        )


def stream_names(symbols: list[str]) -> list[str]:
    """Combined-stream names for ``symbols``: ``btcusdt@bookTicker``, ``btcusdt@trade``, ..."""
    names = []
    for symbol in symbols:
        lower = symbol.lower()
        names += [f"{lower}@bookTicker", f"{lower}@trade"]
    return names


def combined_stream_url(base_url: str, symbols: list[str]) -> str:
    """``<base_url>?streams=a/b/c`` (Binance combined streams endpoint ``/stream``)."""
    return f"{base_url}?streams={'/'.join(stream_names(symbols))}"


def rest_quote_url(base_url: str, symbol: str) -> str:
    """``<base_url>/api/v3/ticker/bookTicker?symbol=<symbol>`` (weight 2 per call)."""
    return f"{base_url.rstrip('/')}/api/v3/ticker/bookTicker?symbol={symbol}"

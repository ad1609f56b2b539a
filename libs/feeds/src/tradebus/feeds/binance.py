"""Parser of Binance spot WebSocket frames: the one of the live feed, replays and backtests.

Input is one combined-stream frame, ``{"stream": "<sym>@<kind>", "data": {...}}``
(Binance "Websocket Market Streams", combined streams), plus the REST depth
snapshot lines that hftbacktest's recorder interleaves (``{"lastUpdateId":..}``).

* ``<sym>@bookTicker`` -> :class:`QuoteTick`. The frame has no exchange time,
  so ``ts_event = ts_recv`` (shared/data/README.md). ``u`` is the book update id.
* ``<sym>@trade`` -> :class:`TradeTick`. ``T`` (trade time, ms) gives
  ``ts_event``; ``m == true`` means the buyer was the maker, so the aggressor sold.
* ``<sym>@depth*`` and depth snapshots are counted and skipped (no book yet).

Recorded frames (:meth:`BinanceParser.recorded`, the backtest's and the
tests' captures) take a fast path: the usual frames of a configured symbol,
``{"stream":"<sym>@bookTicker","data":{...}}`` and
``{"stream":"<sym>@trade","data":{...}}`` (``<sym>`` lower case, the
recorder's byte layout), are recognised by their first bytes, their ``data``
decoded straight into a typed struct with the decimals as text, and each
decimal made once per distinct text (prices repeat from tick to tick). Every
other frame, and any the fast path cannot read, goes through
:meth:`BinanceParser.parse`: the ticks and the errors are the parser's.

REST fallback (stale stream): ``GET /api/v3/ticker/bookTicker?symbol=<SYM>``
(Binance "Market Data endpoints", symbol order book ticker) answers
``{"symbol","bidPrice","bidQty","askPrice","askQty"}``: no update id and no
time, so the quote gets ``update_id=None`` and ``ts_event = ts_recv``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal

import msgspec

from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.parsing import FrameKind, ParserBase, RecordedFrame, Tick

__all__ = [
    "BINANCE_REST_URL",
    "CCXT_INFO_KEYS",
    "CCXT_UPDATE_ID_KEY",
    "VENUE",
    "BinanceParser",
    "FrameKind",
    "combined_stream_url",
    "rest_quote_url",
    "stream_names",
]

VENUE = "binance"
BINANCE_REST_URL = "https://api.binance.com"
_MS = 1_000_000

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


class BookTickerText(msgspec.Struct):
    """``data`` of a ``bookTicker`` frame (the fields :class:`_BookTicker` reads), the
    decimals as their text (the recorded fast path makes them through :class:`_Decimals`;
    the backtest's columnar reader, :mod:`tradebus.backtest.columns`, decodes with it too)."""

    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


class TradeText(msgspec.Struct):
    """``data`` of a ``trade`` frame (the fields :class:`_Trade` reads), decimals as text
    (also the backtest's columnar reader's, :mod:`tradebus.backtest.columns`)."""

    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


_envelope = msgspec.json.Decoder(_Envelope)
_book_ticker = msgspec.json.Decoder(_BookTicker)
_trade = msgspec.json.Decoder(_Trade)
_rest_book_ticker = msgspec.json.Decoder(_RestBookTicker)
_book_ticker_text = msgspec.json.Decoder(BookTickerText)
_trade_text = msgspec.json.Decoder(TradeText)

DECIMAL_CACHE_SIZE = 1 << 16
"""Decimals the recorded fast path remembers by their text; emptied when full."""


class _Decimals(dict[str, Decimal]):
    """``Decimal(text)`` by text: the very value :mod:`msgspec` decodes a JSON string to
    (it calls the constructor too), shared (decimals are immutable)."""

    def __missing__(self, text: str) -> Decimal:
        value = Decimal(text)  # raises on bad text: the frame then goes to the parser
        if len(self) >= DECIMAL_CACHE_SIZE:
            self.clear()
        self[text] = value
        return value


class _NotFast(Exception):
    """The frame is not one the fast path reads."""


class BinanceParser(ParserBase):
    """Turn raw frames into ticks; knows the unified symbol of each configured market."""

    default_venue = VENUE
    frame_name = "Binance"

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

    def recorded(self, frames: Iterable[RecordedFrame]) -> Iterator[Tick]:
        """The quotes and trades of recorded frames, ``ts_init = ts_recv``: a fast path.

        The ticks of :meth:`ParserBase.recorded <tradebus.feeds.parsing.ParserBase.recorded>`
        (each the one :meth:`parse` gives), made faster for the usual quote
        and trade frames of the configured symbols (module docstring).

        Raises
        ------
        DataFileError
            While iterating, on a frame :meth:`parse` refuses:
            ``<file>:<line>: bad Binance frame: <why>``.
        """
        venue, unified_of = self._venue, self._unified
        books = tuple(b'{"stream":"%s@bookTicker","data":' % s.lower().encode() for s in unified_of)
        trades = tuple(b'{"stream":"%s@trade","data":' % s.lower().encode() for s in unified_of)
        # one symbol (the backtest's case): the data starts at a known offset
        book_start = len(books[0]) if len(books) == 1 else -1
        trade_start = len(trades[0]) if len(trades) == 1 else -1
        decode_book, decode_trade = _book_ticker_text.decode, _trade_text.decode
        slow = self._parse_recorded
        dec = _Decimals()
        for ts, raw, path, line in frames:
            if raw.endswith(b"}"):
                tick: Tick | None = None
                try:  # a frame the fast path cannot read goes to parse() (its ticks, its errors)
                    if raw.startswith(books):
                        start = book_start if book_start > 0 else raw.index(b'"data":') + 7
                        q = decode_book(raw[start:-1])
                        unified = unified_of.get(q.s)
                        if unified is not None:
                            tick = QuoteTick(
                                venue=venue,
                                symbol=q.s,
                                unified_symbol=unified,
                                bid=dec[q.b],
                                bid_size=dec[q.B],
                                ask=dec[q.a],
                                ask_size=dec[q.A],
                                ts_event=ts,
                                ts_recv=ts,
                                ts_init=ts,
                                update_id=q.u,
                            )
                    elif raw.startswith(trades):
                        start = trade_start if trade_start > 0 else raw.index(b'"data":') + 7
                        t = decode_trade(raw[start:-1])
                        unified = unified_of.get(t.s)
                        if unified is not None:
                            tick = TradeTick(
                                venue=venue,
                                symbol=t.s,
                                unified_symbol=unified,
                                price=dec[t.p],
                                size=dec[t.q],
                                aggressor="sell" if t.m else "buy",
                                trade_id=str(t.t),
                                ts_event=t.T * _MS,
                                ts_recv=ts,
                                ts_init=ts,
                            )
                    else:
                        raise _NotFast
                except (_NotFast, msgspec.DecodeError, msgspec.ValidationError, ArithmeticError):
                    pass
                else:
                    if tick is not None:  # None: another symbol's frame, as parse() has it
                        yield tick
                    continue
            tick = slow(raw, ts, path, line)
            if tick is not None:
                yield tick


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

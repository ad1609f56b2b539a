"""The ``binance-raw`` format: raw Binance spot WebSocket captures, merged by receive time.

One frame per line, ``<receive time, ns> <combined-stream JSON>``, read as
:func:`tradebus.marketdata.sources.read_frames` reads them and parsed as
:class:`tradebus.marketdata.binance.BinanceParser` parses them (details in
:mod:`tradebus.cli.backtest.readers`).

The usual frames of the market, ``{"stream":"<sym>@bookTicker","data":{...}}``
and ``{"stream":"<sym>@trade","data":{...}}`` (``<sym>`` the lower-case
symbol), take a fast path: their ``data`` object is decoded straight into a
typed struct (:mod:`msgspec`, decimals from the text, never a float) and the
tick built at once. Every other frame (depth diffs, snapshots, other
symbols, a frame the fast path cannot decode) goes through
:class:`~tradebus.marketdata.binance.BinanceParser`, so the ticks and the
errors are the parser's.
"""

from __future__ import annotations

import gzip
import heapq
from collections.abc import Iterator
from decimal import Decimal
from operator import itemgetter
from pathlib import Path

import msgspec

from tradebus.cli.backtest.formats.common import DataFileError, Event, open_binary
from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.marketdata.binance import BinanceParser

__all__ = ["count_binance_events", "read_binance_raw"]

_MS = 1_000_000
_CHUNK = 1 << 20
"""Bytes read from a file at a time (lines are split out of the chunks)."""


class _BookTicker(msgspec.Struct):
    """``data`` of a ``bookTicker`` frame (the fields :class:`BinanceParser` reads), the
    decimals as their text (made :class:`~decimal.Decimal` through a cache)."""

    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


class _Trade(msgspec.Struct):
    """``data`` of a ``trade`` frame (the fields :class:`BinanceParser` reads)."""

    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


_book_ticker = msgspec.json.Decoder(_BookTicker)
_trade = msgspec.json.Decoder(_Trade)
CACHE_SIZE = 1 << 16
"""Decimals remembered by their text (prices repeat from tick to tick); emptied when full."""


class _Decimals(dict[str, Decimal]):
    """``Decimal(text)`` by text: the very value :mod:`msgspec` decodes a JSON string to
    (it calls the constructor too), shared (decimals are immutable)."""

    def __missing__(self, text: str) -> Decimal:
        value = Decimal(text)  # raises on bad text: the frame then goes to the parser
        if len(self) >= CACHE_SIZE:
            self.clear()
        self[text] = value
        return value


class _NotFast(Exception):
    """The frame is not one the fast path reads."""


Frame = tuple[int, bytes, Path, int]
"""``(ts_recv, frame, path, line number)`` of one line of a file."""


def read_binance_raw(paths: list[Path], symbol: str, venue: str) -> Iterator[Event]:
    """Quotes and trades of ``symbol`` in the frames of ``paths``, merged by receive time.

    Ties keep file order. Every tick gets ``venue`` and ``unified_symbol = symbol``.

    Raises
    ------
    DataFileError
        While iterating, on a malformed frame or an unreadable file.
    """
    market = Market(
        symbol=symbol, base=symbol, quote="", tick_size=Decimal(1), step_size=Decimal(1)
    )
    parser = BinanceParser(MarketCatalog({venue: [market]}), venue=venue)
    lower = symbol.lower().encode()
    book_prefix = b'{"stream":"' + lower + b'@bookTicker","data":'
    trade_prefix = b'{"stream":"' + lower + b'@trade","data":'
    book_start, trade_start = len(book_prefix), len(trade_prefix)
    decode_book, decode_trade = _book_ticker.decode, _trade.decode
    dec = _Decimals()
    if len(paths) == 1:
        frames = _frames(paths[0])
    else:
        frames = heapq.merge(*(_frames(p) for p in paths), key=itemgetter(0))
    for ts, raw, path, line in frames:
        if raw.endswith(b"}"):
            tick: Event | None = None
            try:  # a frame the fast path cannot read goes to the parser (its ticks, its errors)
                if raw.startswith(book_prefix):
                    q = decode_book(raw[book_start:-1])
                    if q.s == symbol:
                        tick = QuoteTick(
                            venue=venue,
                            symbol=symbol,
                            unified_symbol=symbol,
                            bid=dec[q.b],
                            bid_size=dec[q.B],
                            ask=dec[q.a],
                            ask_size=dec[q.A],
                            ts_event=ts,
                            ts_recv=ts,
                            ts_init=ts,
                            update_id=q.u,
                        )
                elif raw.startswith(trade_prefix):
                    t = decode_trade(raw[trade_start:-1])
                    if t.s == symbol:
                        tick = TradeTick(
                            venue=venue,
                            symbol=symbol,
                            unified_symbol=symbol,
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
                if tick is not None:  # None: another symbol's frame, as the parser has it
                    yield tick
                continue
        try:
            _, tick = parser.parse(raw, ts, ts)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DataFileError(f"{path}:{line}: bad Binance frame: {exc}") from None
        if tick is not None:
            yield msgspec.structs.replace(tick, unified_symbol=symbol)


def count_binance_events(path: Path, symbol: str | None) -> int:
    """Lines of ``<symbol>@trade`` and ``<symbol>@bookTicker`` frames (any symbol if None)."""
    prefix = b'"' + symbol.lower().encode() if symbol else b""
    needles = (prefix + b'@trade"', prefix + b'@bookTicker"')
    with open_binary(path) as f:
        return sum(1 for line in f if needles[0] in line or needles[1] in line)


def _frames(path: Path) -> Iterator[Frame]:
    """``(ts_recv, frame, path, line number)`` of every non-blank line of one recorded file.

    The lines of :func:`tradebus.marketdata.sources.read_frames` (``.gz`` or
    text, ``\\r\\n`` stripped, blank lines skipped), split out of large chunks.

    Raises
    ------
    DataFileError
        On a line without a space-separated integer timestamp, or bad gzip.
    """
    number = 0
    rest = b""
    try:
        with open_binary(path) as f:
            while True:
                chunk = f.read(_CHUNK)
                block = rest + chunk
                lines = block.split(b"\n")
                rest = lines.pop() if chunk else b""  # the last line may go on in the next chunk
                strip = b"\r" in block
                for line in lines:
                    number += 1
                    if strip:
                        line = line.rstrip(b"\r\n")
                    if not line:
                        continue
                    head, sep, frame = line.partition(b" ")
                    if not sep or not head.isdigit():
                        raise DataFileError(f"{path}:{number}: expected '<ns> <json frame>'")
                    yield int(head), frame, path, number
                if not chunk:
                    return
    except (EOFError, gzip.BadGzipFile) as exc:
        raise DataFileError(f"{path}: unreadable gzip: {exc}") from None

"""The ``binance-raw`` format: raw Binance spot WebSocket captures, merged by receive time.

One frame per line, ``<receive time, ns> <combined-stream JSON>``, read with
:func:`tradebus.marketdata.sources.read_frames` and parsed by
:class:`tradebus.marketdata.binance.BinanceParser` (details in
:mod:`tradebus.cli.backtest.readers`).
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
from tradebus.marketdata.binance import BinanceParser
from tradebus.marketdata.sources import ReplayFileError, read_frames

__all__ = ["count_binance_events", "read_binance_raw"]


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
    streams = [_numbered_frames(path) for path in paths]
    for ts, raw, path, index in heapq.merge(*streams, key=itemgetter(0)):
        try:
            _, tick = parser.parse(raw, ts, ts)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            line = _line_of_frame(path, index)
            raise DataFileError(f"{path}:{line}: bad Binance frame: {exc}") from None
        if tick is not None:
            yield msgspec.structs.replace(tick, unified_symbol=symbol)


def count_binance_events(path: Path, symbol: str | None) -> int:
    """Lines of ``<symbol>@trade`` and ``<symbol>@bookTicker`` frames (any symbol if None)."""
    prefix = b'"' + symbol.lower().encode() if symbol else b""
    needles = (prefix + b'@trade"', prefix + b'@bookTicker"')
    with open_binary(path) as f:
        return sum(1 for line in f if needles[0] in line or needles[1] in line)


def _numbered_frames(path: Path) -> Iterator[tuple[int, bytes, Path, int]]:
    """``(ts_recv, frame, path, frame index from 1)`` of one recorded file."""
    try:
        for index, (ts, raw) in enumerate(read_frames(path), start=1):
            yield ts, raw, path, index
    except ReplayFileError as exc:
        raise DataFileError(str(exc)) from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise DataFileError(f"{path}: unreadable gzip: {exc}") from None


def _line_of_frame(path: Path, index: int) -> int:
    """Line number of the ``index``-th frame (non-blank line) of ``path`` (error path only)."""
    seen = 0
    with open_binary(path) as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip(b"\r\n"):
                seen += 1
                if seen == index:
                    return number
    return index

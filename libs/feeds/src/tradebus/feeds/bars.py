"""The bar formats ``ohlcv-csv`` and ``coinbase-candles``, each bar read as four trades.

The timestamp rules of ``ohlcv-csv``, the Coinbase candles JSON and the
four-ticks-per-bar rule (order, spacing, size, trade ids) are described in
:mod:`tradebus.feeds.readers`; :func:`bar_ticks` implements the rule.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from tradebus.common.messages import TradeTick
from tradebus.feeds.files import (
    NS_PER_S,
    NS_PER_US,
    DataFileError,
    ErrorFormatter,
    at,
    csv_rows,
    open_binary,
    open_text,
    parse_decimal,
    parse_non_negative,
    parse_positive,
)

__all__ = [
    "CANDLE_FIELDS",
    "OHLCV_COLUMNS",
    "Bar",
    "bar_ticks",
    "count_candle_events",
    "read_coinbase_candles",
    "read_ohlcv_csv",
]

OHLCV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
"""Columns an ``ohlcv-csv`` header must name (any order, others ignored)."""

CANDLE_FIELDS = ("start", "low", "high", "open", "close", "volume")
"""Fields every Coinbase candle must have."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Bar(NamedTuple):
    """One OHLCV bar: open time in ns and its prices and volume."""

    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


# --------------------------------------------------------------------------
# ohlcv-csv
# --------------------------------------------------------------------------


def read_ohlcv_csv(path: Path, symbol: str, venue: str) -> Iterator[TradeTick]:
    """Four trades per bar of one ``timestamp,open,high,low,close,volume`` CSV file.

    Raises
    ------
    DataFileError
        While iterating, on a malformed row or a timestamp not after the previous one.
    """
    return bar_ticks(_ohlcv_bars(path), symbol, venue)


def _ohlcv_bars(path: Path) -> Iterator[Bar]:
    previous: int | None = None
    for line, (ts, o, h, lo, c, v) in csv_rows(path, OHLCV_COLUMNS):
        start = _bar_time_ns(ts, path, line)
        if previous is not None and start <= previous:
            raise DataFileError(f"{path}:{line}: timestamp {ts!r} is not after the previous bar's")
        previous = start
        yield _bar(start, o, h, lo, c, v, at(path, line))


def _bar_time_ns(text: str, path: Path, line: int) -> int:
    """Bar time in ns from epoch seconds/ms/µs/ns (by magnitude) or ISO-8601 text."""
    if text and text.isascii() and text.replace(".", "", 1).isdigit():
        value = Decimal(text)
        if value < 10**11:
            unit = NS_PER_S  # seconds
        elif value < 10**14:
            unit = 1_000_000  # milliseconds
        elif value < 10**17:
            unit = NS_PER_US  # microseconds
        else:
            unit = 1  # nanoseconds
        return int(value * unit)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DataFileError(
            f"{path}:{line}: timestamp {text!r} is neither epoch seconds/milliseconds nor ISO-8601"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * NS_PER_US


# --------------------------------------------------------------------------
# coinbase-candles
# --------------------------------------------------------------------------


def read_coinbase_candles(path: Path, symbol: str, venue: str) -> Iterator[TradeTick]:
    """Four trades per candle of one Coinbase Advanced Trade candles JSON file.

    Raises
    ------
    DataFileError
        When iteration starts, on invalid JSON, a malformed candle or two
        candles with the same ``start``.
    """
    return bar_ticks(_coinbase_bars(path), symbol, venue)


def count_candle_events(path: Path) -> int:
    """Four events per ``"start"`` key of a Coinbase candles file (no parsing)."""
    with open_binary(path) as f:
        return 4 * len(re.findall(rb'"start"\s*:', f.read()))


def _coinbase_bars(path: Path) -> Iterator[Bar]:
    try:
        with open_text(path) as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text: {exc}") from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise DataFileError(f"{path}: unreadable gzip: {exc}") from None
    try:
        doc = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    candles = doc.get("candles") if isinstance(doc, dict) else None
    if not isinstance(candles, list):
        raise DataFileError(f'{path}:1: expected an object with a "candles" list')

    def where(i: int) -> ErrorFormatter:
        def message(what: str) -> str:
            line = _candle_line(text, i)
            place = f"{path}:{line}" if line else str(path)
            return f"{place}: candles[{i}]: {what}"

        return message

    bars = []
    for i, candle in enumerate(candles):
        error = where(i)
        if not isinstance(candle, dict):
            raise DataFileError(error("expected an object"))
        values = []
        for name in CANDLE_FIELDS:
            if name not in candle:
                raise DataFileError(error(f"missing field {name!r}"))
            value = candle[name]
            if not isinstance(value, str | Decimal):
                raise DataFileError(error(f"{name} {value!r} is not a number"))
            values.append(str(value).strip())
        start, low, high, open_, close, volume = values
        seconds = parse_decimal(start, error, "start")
        if seconds < 0 or seconds != seconds.to_integral_value():
            raise DataFileError(error(f"start {start!r} is not whole Unix seconds"))
        bars.append(_bar(int(seconds) * NS_PER_S, open_, high, low, close, volume, error))
    bars.sort(key=lambda bar: bar.start)
    for before, after in itertools.pairwise(bars):
        if before.start == after.start:
            raise DataFileError(
                f"{path}: two candles start at {after.start // NS_PER_S} (Unix seconds)"
            )
    return iter(bars)


def _candle_line(text: str, index: int) -> int | None:
    """Line number where candle ``index`` of the ``"candles"`` array starts (error path)."""
    match = re.search(r'"candles"\s*:\s*\[', text)
    if match is None:
        return None
    decoder = json.JSONDecoder()
    pos = match.end()
    for i in range(index + 1):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if i == index:
            return text.count("\n", 0, pos) + 1
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
    return None


# --------------------------------------------------------------------------
# Bars to ticks
# --------------------------------------------------------------------------


def _bar(
    start: int,
    open_: str,
    high: str,
    low: str,
    close: str,
    volume: str,
    error: ErrorFormatter,
) -> Bar:
    """A bar from its text values; ``error(what)`` formats the ``path:line: what`` message."""
    return Bar(
        start=start,
        open=parse_positive(open_, error, "open"),
        high=parse_positive(high, error, "high"),
        low=parse_positive(low, error, "low"),
        close=parse_positive(close, error, "close"),
        volume=parse_non_negative(volume, error, "volume"),
    )


def bar_ticks(bars: Iterable[Bar], symbol: str, venue: str) -> Iterator[TradeTick]:
    """Four trades per bar, bars in increasing ``start``.

    The order, spacing, size and ids of the ticks follow the
    four-ticks-per-bar rule of :mod:`tradebus.feeds.readers`.
    """
    it = iter(bars)
    current = next(it, None)
    previous_start: int | None = None
    previous_duration = 0
    while current is not None:
        following = next(it, None)
        if following is None:
            duration = previous_duration
        elif previous_start is None:
            duration = following.start - current.start
        else:
            duration = min(following.start - current.start, current.start - previous_start)
        if current.close >= current.open:
            prices = (current.open, current.low, current.high, current.close)
        else:
            prices = (current.open, current.high, current.low, current.close)
        size = current.volume / 4
        for k, price in enumerate(prices):
            ts = current.start + k * duration // 4
            yield TradeTick(
                venue=venue,
                symbol=symbol,
                unified_symbol=symbol,
                price=price,
                size=size,
                aggressor=None,
                trade_id=f"bar-{current.start}-{k}",
                ts_event=ts,
                ts_recv=ts,
                ts_init=ts,
            )
        previous_start, previous_duration = current.start, duration
        current = following

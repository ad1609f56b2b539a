"""Market-data files of ``tradebus backtest``: each format read as a stream of ticks.

:func:`read_events` turns the files of one market into :class:`QuoteTick` and
:class:`TradeTick` objects in time order. Every money value is a
:class:`~decimal.Decimal` parsed from the file's text (never through a float);
every time is integer nanoseconds since the Unix epoch (UTC). Each tick gets
``venue`` and ``symbol`` from the caller, ``unified_symbol = symbol``, and
``ts_init = ts_recv`` (replays are deterministic: no wall clock).

Formats (:data:`FORMATS`), each file plain text or gzip (by the ``.gz`` suffix):

``binance-raw``
    The raw Binance spot WebSocket capture of shared/data (hftbacktest's
    collector): one frame per line, ``<receive time, ns> <combined-stream JSON>``.
    Read with :func:`tradebus.marketdata.sources.read_frames` and parsed by
    :class:`tradebus.marketdata.binance.BinanceParser`: ``<sym>@bookTicker``
    gives quotes (``ts_event = ts_recv``, the frame has no exchange time),
    ``<sym>@trade`` trades (``ts_event`` = trade time ``T``); depth frames,
    snapshots and other symbols are skipped. Several files are merged by
    receive time like :func:`~tradebus.marketdata.sources.merge_files` (ties
    keep file order), so a capture and its continuation may be given in any order.
    ``symbol`` is the native symbol of the frames (``BTCUSDT``).

``tardis-trades``
    Tardis.dev ``trades`` CSV (https://docs.tardis.dev/downloadable-csv-files,
    "trades"): header ``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``.
    ``timestamp`` (exchange time) and ``local_timestamp`` (Tardis receive time)
    are integer **microseconds**: ``ts_event = timestamp * 1000``,
    ``ts_recv = local_timestamp * 1000``. ``side`` is the aggressor
    (``buy``/``sell``; ``unknown`` gives ``aggressor=None``), ``id`` the trade
    id (an empty id becomes ``<file name>:<line>``), ``amount`` the size in the
    base asset.

``tardis-quotes``
    Tardis.dev ``quotes`` CSV (same page, "quotes", best bid and ask): header
    ``exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount``,
    times as for trades. Tardis leaves a side's price and amount empty while
    that side of the book is empty; such a row is skipped (a
    :class:`QuoteTick` needs both sides).

    The ``exchange`` and ``symbol`` columns of Tardis files are not checked:
    a Tardis file holds one market, and its rows become ticks of ``symbol``.
    Rows are kept in file order (Tardis files are ordered by ``local_timestamp``).

``ohlcv-csv``
    CSV with header ``timestamp,open,high,low,close,volume`` (other columns
    are ignored), one bar per row, ``timestamp`` the bar's **open** time and
    rows in strictly increasing time. The timestamp may be

    * a number of seconds, milliseconds, microseconds or nanoseconds since the
      epoch, told apart by magnitude: below ``1e11`` seconds, below ``1e14``
      milliseconds, below ``1e17`` microseconds, else nanoseconds (so
      millisecond times before 1973-03-03 are not supported); a fraction is
      allowed (``1700000000.5``);
    * ISO-8601 text (``2021-12-31 23:01:00.000000``, ``2024-01-01T00:00:00Z``);
      without a zone it is UTC.

``coinbase-candles``
    The JSON of Coinbase Advanced Trade's candles endpoint
    (``GET /api/v3/brokerage/market/products/{product_id}/candles``,
    https://docs.cdp.coinbase.com/advanced-trade/reference/):
    ``{"candles": [{"start", "low", "high", "open", "close", "volume"}, ...]}``,
    ``start`` the bar's open time in Unix **seconds**, every value a JSON
    string or number (numbers are read as exact decimals). Coinbase returns
    the newest candle first; candles are sorted by ``start``. Coinbase omits
    buckets without trades, so the grid may have gaps.

Bars become trades: each bar gives four :class:`TradeTick` at the bar's
open, its extremes and its close, in the order a bar most plausibly traded:
``open, low, high, close`` when ``close >= open``, ``open, high, low, close``
when ``close < open``. With ``D`` the bar's duration the four ticks are at
``start + 0, D/4, 2D/4, 3D/4`` (integer ns, floored), all inside the bar.
``D`` is the interval to the next bar of the same file, but no more than the
interval from the previous bar (so a gap in the grid does not stretch the bar
before it); the last bar of a file takes the ``D`` of the bar before it, and
a file of a single bar has ``D = 0`` (its four ticks share its time).
Each tick has ``size = volume / 4``, ``aggressor=None``,
``ts_event = ts_recv = ts_init``, and ``trade_id = "bar-<start ns>-<k>"``
with ``k`` = 0..3.

Errors: a malformed line raises :class:`DataFileError` whose message is
``<path>:<line>: <what is wrong>`` (a missing column or field is named);
an unknown format raises :class:`ValueError` listing :data:`FORMATS`; a
missing file raises :class:`FileNotFoundError` when :func:`read_events` is called.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from pathlib import Path
from typing import IO, NamedTuple

import msgspec

from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.marketdata.binance import BinanceParser
from tradebus.marketdata.sources import ReplayFileError, read_frames

__all__ = [
    "FORMATS",
    "DataFileError",
    "count_lines",
    "estimate_events",
    "read_events",
]

FORMATS: tuple[str, ...] = (
    "binance-raw",
    "tardis-trades",
    "tardis-quotes",
    "ohlcv-csv",
    "coinbase-candles",
)
"""Names of the formats :func:`read_events` reads."""

Event = QuoteTick | TradeTick

TARDIS_TRADE_COLUMNS = (
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "id",
    "side",
    "price",
    "amount",
)
TARDIS_QUOTE_COLUMNS = (
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "ask_amount",
    "ask_price",
    "bid_price",
    "bid_amount",
)
OHLCV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
CANDLE_FIELDS = ("start", "low", "high", "open", "close", "volume")

_US = 1_000
_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_AGGRESSOR = {"buy": "buy", "sell": "sell", "unknown": None}


class DataFileError(ValueError):
    """A data file is malformed; the message is ``<path>:<line>: <what is wrong>``."""


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def read_events(
    paths: list[Path], fmt: str, symbol: str, venue: str = "backtest"
) -> Iterator[QuoteTick | TradeTick]:
    """The market events of every file of ``paths``, in time order.

    Parameters
    ----------
    paths
        Files of one market, plain or ``.gz``. ``binance-raw`` files are
        merged by receive time; files of the other formats are concatenated
        in the given order.
    fmt
        One of :data:`FORMATS` (see the module docstring for each).
    symbol
        The market's symbol: ``symbol`` and ``unified_symbol`` of every tick;
        for ``binance-raw`` also the native symbol whose frames are kept.
    venue
        ``venue`` of every tick.

    Returns
    -------
    Iterator[QuoteTick | TradeTick]
        A lazy iterator; files are opened as it advances. Quotes and trades
        for ``binance-raw`` and ``tardis-*``; trades only for bar formats.

    Raises
    ------
    ValueError
        At once, if ``fmt`` is not one of :data:`FORMATS`.
    FileNotFoundError
        At once, if a path is not a file.
    DataFileError
        While iterating, on a malformed line (``path:line: what is wrong``).
    OSError
        While iterating, if a file cannot be read.
    """
    _check_format(fmt)
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such data file")
    if fmt == "binance-raw":
        return _binance_raw(paths, symbol, venue)
    reader = _FILE_READERS[fmt]
    return itertools.chain.from_iterable(reader(path, symbol, venue) for path in paths)


def count_lines(path: Path) -> int:
    """Number of non-blank lines of ``path`` (``.gz`` decompressed), header included.

    Raises
    ------
    OSError
        If the file cannot be read (:class:`gzip.BadGzipFile` if it is not gzip).
    """
    with _open_binary(Path(path)) as f:
        return sum(1 for line in f if line.strip())


def estimate_events(paths: list[Path], fmt: str, symbol: str | None = None) -> int:
    """How many events :func:`read_events` will yield (a progress-bar total).

    Cheap text scans, no parsing: ``binance-raw`` counts lines of
    ``<symbol>@trade`` and ``<symbol>@bookTicker`` frames (every symbol when
    ``symbol`` is None); Tardis formats count data rows; bar formats count
    four ticks per bar (``ohlcv-csv`` rows, ``coinbase-candles`` ``"start"``
    keys). Exact for well-formed files, except that Tardis quote rows with an
    empty side are counted.

    Raises
    ------
    ValueError
        If ``fmt`` is not one of :data:`FORMATS`.
    OSError
        If a file cannot be read.
    """
    _check_format(fmt)
    total = 0
    for path in map(Path, paths):
        if fmt == "binance-raw":
            prefix = b'"' + symbol.lower().encode() if symbol else b""
            needles = (prefix + b'@trade"', prefix + b'@bookTicker"')
            with _open_binary(path) as f:
                total += sum(1 for line in f if needles[0] in line or needles[1] in line)
        elif fmt == "coinbase-candles":
            with _open_binary(path) as f:
                total += 4 * len(re.findall(rb'"start"\s*:', f.read()))
        else:
            rows = max(count_lines(path) - 1, 0)
            total += 4 * rows if fmt == "ohlcv-csv" else rows
    return total


# --------------------------------------------------------------------------
# binance-raw
# --------------------------------------------------------------------------


def _binance_raw(paths: list[Path], symbol: str, venue: str) -> Iterator[Event]:
    """Quotes and trades of ``symbol`` in the frames of ``paths``, merged by receive time."""
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
    with _open_binary(path) as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip(b"\r\n"):
                seen += 1
                if seen == index:
                    return number
    return index


# --------------------------------------------------------------------------
# CSV formats
# --------------------------------------------------------------------------


def _tardis_trades(path: Path, symbol: str, venue: str) -> Iterator[TradeTick]:
    """Trades of one Tardis.dev ``trades`` CSV file."""
    for line, (ts, local_ts, trade_id, side, price, amount) in _csv_rows(
        path, ("timestamp", "local_timestamp", "id", "side", "price", "amount")
    ):
        if side not in _AGGRESSOR:
            raise DataFileError(f"{path}:{line}: side {side!r} is not buy, sell or unknown")
        ts_recv = _int(local_ts, path, line, "local_timestamp") * _US
        yield TradeTick(
            venue=venue,
            symbol=symbol,
            unified_symbol=symbol,
            price=_price(price, path, line, "price"),
            size=_size(amount, path, line, "amount"),
            aggressor=_AGGRESSOR[side],  # type: ignore[arg-type]
            trade_id=trade_id or f"{path.name}:{line}",
            ts_event=_int(ts, path, line, "timestamp") * _US,
            ts_recv=ts_recv,
            ts_init=ts_recv,
        )


def _tardis_quotes(path: Path, symbol: str, venue: str) -> Iterator[QuoteTick]:
    """Quotes of one Tardis.dev ``quotes`` CSV file (rows with an empty side skipped)."""
    for line, (ts, local_ts, ask_amount, ask_price, bid_price, bid_amount) in _csv_rows(
        path,
        ("timestamp", "local_timestamp", "ask_amount", "ask_price", "bid_price", "bid_amount"),
    ):
        if not (ask_amount and ask_price and bid_price and bid_amount):
            continue
        ts_recv = _int(local_ts, path, line, "local_timestamp") * _US
        yield QuoteTick(
            venue=venue,
            symbol=symbol,
            unified_symbol=symbol,
            bid=_price(bid_price, path, line, "bid_price"),
            bid_size=_size(bid_amount, path, line, "bid_amount"),
            ask=_price(ask_price, path, line, "ask_price"),
            ask_size=_size(ask_amount, path, line, "ask_amount"),
            ts_event=_int(ts, path, line, "timestamp") * _US,
            ts_recv=ts_recv,
            ts_init=ts_recv,
        )


def _ohlcv_csv(path: Path, symbol: str, venue: str) -> Iterator[TradeTick]:
    """Four trades per bar of one ``timestamp,open,high,low,close,volume`` CSV file."""
    return _bar_ticks(_ohlcv_bars(path), symbol, venue)


def _ohlcv_bars(path: Path) -> Iterator[_Bar]:
    previous: int | None = None
    for line, (ts, o, h, lo, c, v) in _csv_rows(path, OHLCV_COLUMNS):
        start = _bar_time_ns(ts, path, line)
        if previous is not None and start <= previous:
            raise DataFileError(f"{path}:{line}: timestamp {ts!r} is not after the previous bar's")
        previous = start
        yield _bar(start, o, h, lo, c, v, _at(path, line))


def _csv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """``(line number, [value of each of columns])`` of every non-blank data row.

    Values are stripped of surrounding blanks. The header names the columns
    (any order, extra columns ignored).
    """
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise DataFileError(f"{path}:1: empty file, expected a header {','.join(columns)}")
            names = [name.strip().lstrip("\ufeff") for name in header]
            for column in columns:
                if column not in names:
                    raise DataFileError(
                        f"{path}:{reader.line_num}: missing column {column!r}"
                        f" (header: {','.join(names)})"
                    )
            wanted = [names.index(column) for column in columns]
            width = len(names)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != width:
                    raise DataFileError(
                        f"{path}:{reader.line_num}: expected {width} fields, got {len(row)}"
                    )
                yield reader.line_num, [row[i].strip() for i in wanted]
        except csv.Error as exc:
            raise DataFileError(f"{path}:{reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise DataFileError(f"{path}:{reader.line_num + 1}: not UTF-8 text: {exc}") from None
        except (EOFError, gzip.BadGzipFile) as exc:
            raise DataFileError(f"{path}: unreadable gzip: {exc}") from None


# --------------------------------------------------------------------------
# coinbase-candles
# --------------------------------------------------------------------------


def _coinbase_candles(path: Path, symbol: str, venue: str) -> Iterator[TradeTick]:
    """Four trades per candle of one Coinbase Advanced Trade candles JSON file."""
    return _bar_ticks(_coinbase_bars(path), symbol, venue)


def _coinbase_bars(path: Path) -> Iterator[_Bar]:
    try:
        with _open_text(path) as f:
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

    def where(i: int) -> Callable[[str], str]:
        def message(what: str) -> str:
            line = _candle_line(text, i)
            at = f"{path}:{line}" if line else str(path)
            return f"{at}: candles[{i}]: {what}"

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
        seconds = _decimal(start, error, "start")
        if seconds < 0 or seconds != seconds.to_integral_value():
            raise DataFileError(error(f"start {start!r} is not whole Unix seconds"))
        bars.append(_bar(int(seconds) * _S, open_, high, low, close, volume, error))
    bars.sort(key=lambda bar: bar.start)
    for before, after in itertools.pairwise(bars):
        if before.start == after.start:
            raise DataFileError(f"{path}: two candles start at {after.start // _S} (Unix seconds)")
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


class _Bar(NamedTuple):
    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def _bar(
    start: int,
    open_: str,
    high: str,
    low: str,
    close: str,
    volume: str,
    error: Callable[[str], str],
) -> _Bar:
    """A bar from its text values; ``error(what)`` formats the ``path:line: what`` message."""
    return _Bar(
        start=start,
        open=_positive(open_, error, "open"),
        high=_positive(high, error, "high"),
        low=_positive(low, error, "low"),
        close=_positive(close, error, "close"),
        volume=_non_negative(volume, error, "volume"),
    )


def _bar_ticks(bars: Iterable[_Bar], symbol: str, venue: str) -> Iterator[TradeTick]:
    """Four trades per bar (module docstring: order, spacing, size, ids)."""
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


def _bar_time_ns(text: str, path: Path, line: int) -> int:
    """Bar time in ns from epoch seconds/ms/µs/ns (by magnitude) or ISO-8601 text."""
    if text and text.isascii() and text.replace(".", "", 1).isdigit():
        value = Decimal(text)
        if value < 10**11:
            unit = _S  # seconds
        elif value < 10**14:
            unit = 1_000_000  # milliseconds
        elif value < 10**17:
            unit = _US  # microseconds
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
    return (moment - _EPOCH) // timedelta(microseconds=1) * _US


# --------------------------------------------------------------------------
# Field parsing
# --------------------------------------------------------------------------


def _int(text: str, path: Path, line: int, column: str) -> int:
    """A non-negative integer column."""
    if not (text.isascii() and text.isdigit()):
        raise DataFileError(f"{path}:{line}: {column} {text!r} is not a non-negative integer")
    return int(text)


def _at(path: Path, line: int) -> Callable[[str], str]:
    return lambda what: f"{path}:{line}: {what}"


def _price(text: str, path: Path, line: int, column: str) -> Decimal:
    return _positive(text, _at(path, line), column)


def _size(text: str, path: Path, line: int, column: str) -> Decimal:
    return _non_negative(text, _at(path, line), column)


def _decimal(text: str, error: Callable[[str], str], name: str) -> Decimal:
    """A finite decimal number from its text."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise DataFileError(error(f"{name} {text!r} is not a decimal number")) from None
    if not value.is_finite():
        raise DataFileError(error(f"{name} {text!r} is not a finite number"))
    return value


def _positive(text: str, error: Callable[[str], str], name: str) -> Decimal:
    value = _decimal(text, error, name)
    if value <= 0:
        raise DataFileError(error(f"{name} {text!r} must be > 0"))
    return value


def _non_negative(text: str, error: Callable[[str], str], name: str) -> Decimal:
    value = _decimal(text, error, name)
    if value < 0:
        raise DataFileError(error(f"{name} {text!r} must be >= 0"))
    return value


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _open_text(path: Path) -> IO[str]:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8", newline="")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; formats: {', '.join(FORMATS)}")


_FILE_READERS: dict[str, Callable[[Path, str, str], Iterator[Event]]] = {
    "tardis-trades": _tardis_trades,
    "tardis-quotes": _tardis_quotes,
    "ohlcv-csv": _ohlcv_csv,
    "coinbase-candles": _coinbase_candles,
}

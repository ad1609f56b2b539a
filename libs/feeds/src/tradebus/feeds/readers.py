"""Recorded market data, every format read as a stream of ticks: the one reader of files.

Entry points:

* :func:`read_frames` / :func:`merge_files`: the raw frames of WebSocket
  captures, ``(ts_recv, frame)``, for a parser to turn into ticks (the
  marketdata service's replay, whose feed parses and publishes them);
* :func:`read_recorded` / :func:`merge_recorded`: the same frames with their
  file and line, for a parser's
  :meth:`~tradebus.feeds.parsing.ParserBase.recorded` (its errors name them);
* :func:`read_events`: the files of one market as :class:`QuoteTick` and
  :class:`TradeTick` objects in time order (the backtest).

Every money value is a :class:`~decimal.Decimal` parsed from the file's text
(never through a float); every time is integer nanoseconds since the Unix
epoch (UTC). Each tick of :func:`read_events` gets ``venue`` and ``symbol``
from the caller, ``unified_symbol = symbol``, and ``ts_init = ts_recv``
(replays are deterministic: no wall clock).

Formats of :func:`read_events` (:data:`FORMATS`), each file plain text or gzip
(by the ``.gz`` suffix):

``binance-raw``
    The raw Binance spot WebSocket capture of shared/data (hftbacktest's
    collector): one frame per line, ``<receive time, ns> <combined-stream JSON>``
    (:func:`read_frames`), parsed by
    :meth:`tradebus.feeds.binance.BinanceParser.recorded` (the parser's ticks,
    by its fast path for recorded frames): ``<sym>@bookTicker`` gives quotes
    (``ts_event = ts_recv``, the frame has no exchange time), ``<sym>@trade``
    trades (``ts_event`` = trade time ``T``); depth frames, snapshots and
    other symbols are skipped. Several files are merged by receive time like
    :func:`merge_files` (ties keep file order), so a capture and its
    continuation may be given in any order. ``symbol`` is the native symbol
    of the frames (``BTCUSDT``).

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
``<path>:<line>: <what is wrong>`` (a missing column or field is named; a
capture line without its ``<ns>`` receive time, a frame the parser refuses);
an unknown format raises :class:`ValueError` listing :data:`FORMATS`; a
missing file raises :class:`FileNotFoundError` when :func:`read_events` is called.
"""

from __future__ import annotations

import gzip
import heapq
import itertools
import re
from collections import Counter
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path

from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.bars import count_candle_events, read_coinbase_candles, read_ohlcv_csv
from tradebus.feeds.binance import BinanceParser
from tradebus.feeds.files import DataFileError, FileReader, open_binary
from tradebus.feeds.parsing import Frame, RecordedFrame
from tradebus.feeds.tardis import read_tardis_quotes, read_tardis_trades

__all__ = [
    "FORMATS",
    "DataFileError",
    "count_lines",
    "estimate_events",
    "events_by_symbol",
    "merge_files",
    "merge_recorded",
    "read_events",
    "read_frames",
    "read_recorded",
]

_CHUNK = 1 << 20
"""Bytes read from a capture at a time (lines are split out of the chunks)."""

FORMATS: tuple[str, ...] = (
    "binance-raw",
    "tardis-trades",
    "tardis-quotes",
    "ohlcv-csv",
    "coinbase-candles",
)
"""Names of the formats :func:`read_events` reads."""

_FILE_READERS: dict[str, FileReader] = {
    "tardis-trades": read_tardis_trades,
    "tardis-quotes": read_tardis_quotes,
    "ohlcv-csv": read_ohlcv_csv,
    "coinbase-candles": read_coinbase_candles,
}
"""Per-file readers of the formats whose files are concatenated (all but ``binance-raw``)."""


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
        return BinanceParser.of_symbols({symbol: symbol}, venue).recorded(merge_recorded(paths))
    reader = _FILE_READERS[fmt]
    return itertools.chain.from_iterable(reader(path, symbol, venue) for path in paths)


def count_lines(path: Path) -> int:
    """Number of non-blank lines of ``path`` (``.gz`` decompressed), header included.

    Raises
    ------
    OSError
        If the file cannot be read (:class:`gzip.BadGzipFile` if it is not gzip).
    """
    with open_binary(Path(path)) as f:
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
            total += _count_binance_events(path, symbol)
        elif fmt == "coinbase-candles":
            total += count_candle_events(path)
        else:
            rows = max(count_lines(path) - 1, 0)
            total += 4 * rows if fmt == "ohlcv-csv" else rows
    return total


_BINANCE_EVENT = re.compile(rb'"stream":"([a-z0-9]+)@(?:trade|bookTicker)"')


def events_by_symbol(paths: list[Path], fmt: str) -> dict[str, int] | None:
    """The events of each symbol the files hold, for the formats whose files name it.

    ``binance-raw``: the ``<sym>@trade`` and ``<sym>@bookTicker`` frames per
    native symbol (upper case, ``BTCUSDT``), a text scan like
    :func:`estimate_events`. The other formats hold one market whose rows
    become ticks of the caller's symbol (the Tardis ``symbol`` column is not
    checked): None.

    Raises
    ------
    ValueError
        If ``fmt`` is not one of :data:`FORMATS`.
    OSError
        If a file cannot be read.
    """
    _check_format(fmt)
    if fmt != "binance-raw":
        return None
    counts: Counter[str] = Counter()
    for path in map(Path, paths):
        counts.update(_binance_events_by_symbol(path))
    return dict(counts)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; formats: {', '.join(FORMATS)}")


def _count_binance_events(path: Path, symbol: str | None) -> int:
    """Lines of ``<symbol>@trade`` and ``<symbol>@bookTicker`` frames (any symbol if None)."""
    counts = _binance_events_by_symbol(path)
    return sum(counts.values()) if symbol is None else counts[symbol.upper()]


def _binance_events_by_symbol(path: Path) -> Counter[str]:
    """Lines of ``<sym>@trade`` and ``<sym>@bookTicker`` frames per native symbol (upper
    case) of one ``binance-raw`` file: a text scan of each line's start, no parsing."""
    counts: Counter[str] = Counter()
    search = _BINANCE_EVENT.search
    with open_binary(path) as f:
        for line in f:
            found = search(line, 0, 80)
            if found is not None:
                counts[found.group(1).decode().upper()] += 1
    return counts


# --------------------------------------------------------------------------
# Captures: one frame per line, ``<receive time, ns> <frame>``
# --------------------------------------------------------------------------


def read_recorded(path: Path) -> Iterator[RecordedFrame]:
    """``(ts_recv, frame, path, line number)`` of every non-blank line of one capture.

    The format of shared/data's raw feeds (hftbacktest's collector): one
    frame per line, ``<local receive time, ns> <raw JSON frame>``, split at
    the first space; gzip (by the ``.gz`` suffix) or plain text; ``\r\n``
    line ends allowed; blank lines skipped; receive times non-decreasing
    within a file (not checked).

    Raises
    ------
    DataFileError
        While iterating, on a line without a space-separated integer
        timestamp (``path:line: expected '<ns> <json frame>'``) or bad gzip.
    OSError
        If the file cannot be read.
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


def merge_recorded(paths: list[Path]) -> Iterator[RecordedFrame]:
    """:func:`read_recorded` of several captures merged by receive time (ties keep file order).

    BTCUSDT and ETHUSDT captures interleave; a file and its continuation
    (``..._2354-2400Z`` then ``..._0000-0005Z``) concatenate.
    """
    if len(paths) == 1:
        return read_recorded(paths[0])
    return heapq.merge(*(read_recorded(p) for p in paths), key=itemgetter(0))


def read_frames(path: Path) -> Iterator[Frame]:
    """``(ts_recv, frame)`` of every line of one capture (:func:`read_recorded`).

    Raises
    ------
    DataFileError
        While iterating, on a line without a space-separated integer timestamp
        or bad gzip; the message names ``path:line``.
    OSError
        If the file cannot be read.
    """
    for ts, frame, _, _ in read_recorded(path):
        yield ts, frame


def merge_files(paths: list[Path]) -> Iterator[Frame]:
    """``(ts_recv, frame)`` of several captures merged by receive time (:func:`merge_recorded`)."""
    for ts, frame, _, _ in merge_recorded(paths):
        yield ts, frame

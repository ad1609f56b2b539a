"""Market events as columns: parsed once, cached by the files' content hash, screened in bulk.

:class:`EventColumns` holds the events :func:`tradebus.feeds.readers.read_events`
yields for one market, as numpy columns instead of one
:class:`~tradebus.common.messages.QuoteTick`/:class:`~tradebus.common.messages.TradeTick`
object per event:

* ``ts_recv``, ``ts_event``, ``ts_init`` (int64 ns) and ``is_trade`` (bool);
* ``px`` (float64): a trade's price (NaN for a quote), only for the engine's
  *screens* (:meth:`tradebus.backtest.engine.Backtest.feed_columns`), which compare it
  conservatively (an event the float says may act goes through the exact path);
* the exact text of every decimal (``a``/``b``/``c``/``d``, bytes columns: a trade's
  price, size, trade id and aggressor; a quote's bid, bid size, ask and ask size) and a
  quote's ``update_id`` (``uid``, with ``has_uid``).

:meth:`EventColumns.tick` rebuilds event ``i`` as the very tick the reader gives:
``Decimal(text)`` of the text the reader made its decimal from, so values *and*
exponents are the reader's (``str()`` of a figure computed from them is the same).

Reading (:func:`load_columns`): a fast reader for ``binance-raw`` captures, kept only
if every line has its ``<ns> `` head and is a quote, trade or depth frame of the symbol
or a depth snapshot, the quote and trade frames have the recorder's byte layout and
each file's receive times never decrease (the quotes' and trades' ``data`` objects are
gathered with numpy and decoded by msgspec as one JSON array each; depth frames and
snapshots, which give no tick, only checked as JSON envelopes as the parser checks
them), and one for plain Tardis ``quotes``
CSV files; otherwise, and for the other formats, the columns are made from
:func:`~tradebus.feeds.readers.read_events`' ticks, the one parser. The columns are
saved as a directory of numpy ``.npy`` files (loaded memory-mapped) under
``cache_dir``, named by the SHA-256 of the files' bytes, the format, the symbol, the
venue and :data:`LAYOUT` (:func:`cache_key`; each file's hash remembered by its stat
signature, so an unchanged file is not read at all): a second run skips parsing, and a
file that changes gets a new name (its old entry is never read again).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.binance import BookTickerText, TradeText

LAYOUT = "columns-v1"
"""Version of the cached layout: part of every cache key (bump it when the columns change)."""

_AGGRESSOR = {b"": None, b"buy": "buy", b"sell": "sell"}

_COLUMNS = (
    "ts_recv",
    "ts_event",
    "ts_init",
    "is_trade",
    "px",
    "rank",
    "a",
    "b",
    "c",
    "d",
    "uid",
    "has_uid",
)

EXACT_DIGITS = 15
"""Significant digits a decimal may have for its float to be exact enough: two decimals of
at most 15 significant digits have distinct doubles, in the same order (``DBL_DIG``)."""


@dataclass(frozen=True)
class EventColumns:
    """One market's events as columns (module doc); ``len()`` is the number of events."""

    venue: str
    symbol: str
    ts_recv: npt.NDArray[np.int64]
    ts_event: npt.NDArray[np.int64]
    ts_init: npt.NDArray[np.int64]
    is_trade: npt.NDArray[np.bool_]
    px: npt.NDArray[np.float64]
    rank: npt.NDArray[np.int64]
    """Each trade's price rank among the data set's trade prices (equal prices, equal
    ranks; -1 for quotes), or all -1 when a price has more than :data:`EXACT_DIGITS`
    significant digits (the ranks of floats would then not be exact)."""
    a: npt.NDArray[np.bytes_]
    b: npt.NDArray[np.bytes_]
    c: npt.NDArray[np.bytes_]
    d: npt.NDArray[np.bytes_]
    uid: npt.NDArray[np.int64]
    has_uid: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.ts_recv.shape[0])

    @cached_property
    def trade_index(self) -> npt.NDArray[np.int64]:
        """Positions of the trades, in order."""
        return np.flatnonzero(self.is_trade)

    @cached_property
    def quote_index(self) -> npt.NDArray[np.int64]:
        """Positions of the quotes, in order."""
        return np.flatnonzero(~self.is_trade)

    @cached_property
    def last_trade_at(self) -> npt.NDArray[np.int64]:
        """Per event, the position of the last trade at or before it (-1: none yet)."""
        n = len(self)
        at = np.where(self.is_trade, np.arange(n, dtype=np.int64), -1)
        return np.maximum.accumulate(at) if n else at

    def tick(self, i: int) -> QuoteTick | TradeTick:
        """Event ``i`` as the reader's tick (``unified_symbol = symbol``)."""
        ts = int(self.ts_recv[i])
        if self.is_trade[i]:
            return TradeTick(
                venue=self.venue,
                symbol=self.symbol,
                unified_symbol=self.symbol,
                price=Decimal(self.a[i].decode()),
                size=Decimal(self.b[i].decode()),
                aggressor=_AGGRESSOR[self.d[i]],  # type: ignore[arg-type]
                trade_id=self.c[i].decode(),
                ts_event=int(self.ts_event[i]),
                ts_recv=ts,
                ts_init=int(self.ts_init[i]),
            )
        return QuoteTick(
            venue=self.venue,
            symbol=self.symbol,
            unified_symbol=self.symbol,
            bid=Decimal(self.a[i].decode()),
            bid_size=Decimal(self.b[i].decode()),
            ask=Decimal(self.c[i].decode()),
            ask_size=Decimal(self.d[i].decode()),
            ts_event=int(self.ts_event[i]),
            ts_recv=ts,
            ts_init=int(self.ts_init[i]),
            update_id=int(self.uid[i]) if self.has_uid[i] else None,
        )

    def price(self, i: int) -> Decimal:
        """The exact price of trade ``i`` (its reader's decimal)."""
        return Decimal(self.a[i].decode())

    def prices(self, trades: list[int]) -> list[Decimal]:
        """The exact prices of ``trades`` (event positions), in order; one object per
        distinct text."""
        made: dict[bytes, Decimal] = {}
        out = []
        for text in self.a[np.array(trades, dtype=np.int64)].tolist():
            price = made.get(text)
            if price is None:
                price = made[text] = Decimal(text.decode())
            out.append(price)
        return out

    def ticks(self, start: int = 0, stop: int | None = None) -> Iterator[QuoteTick | TradeTick]:
        """The events ``start`` to ``stop`` (excluded; None: to the end) as ticks, in order
        (the per-event path)."""
        venue, symbol = self.venue, self.symbol
        s = slice(start, stop)
        for trade, ts, ts_event, ts_init, a, b, c, d, uid, has in zip(
            self.is_trade[s].tolist(),
            self.ts_recv[s].tolist(),
            self.ts_event[s].tolist(),
            self.ts_init[s].tolist(),
            self.a[s].tolist(),
            self.b[s].tolist(),
            self.c[s].tolist(),
            self.d[s].tolist(),
            self.uid[s].tolist(),
            self.has_uid[s].tolist(),
            strict=True,
        ):
            if trade:
                yield TradeTick(
                    venue=venue,
                    symbol=symbol,
                    unified_symbol=symbol,
                    price=Decimal(a.decode()),
                    size=Decimal(b.decode()),
                    aggressor=_AGGRESSOR[d],  # type: ignore[arg-type]
                    trade_id=c.decode(),
                    ts_event=ts_event,
                    ts_recv=ts,
                    ts_init=ts_init,
                )
            else:
                yield QuoteTick(
                    venue=venue,
                    symbol=symbol,
                    unified_symbol=symbol,
                    bid=Decimal(a.decode()),
                    bid_size=Decimal(b.decode()),
                    ask=Decimal(c.decode()),
                    ask_size=Decimal(d.decode()),
                    ts_event=ts_event,
                    ts_recv=ts,
                    ts_init=ts_init,
                    update_id=uid if has else None,
                )

    # ------------------------------------------------------------------ making
    @classmethod
    def from_ticks(
        cls, ticks: Iterable[QuoteTick | TradeTick], venue: str, symbol: str
    ) -> EventColumns:
        """Columns of ``ticks`` (all of ``venue``/``symbol``, ``unified_symbol = symbol``).

        Raises
        ------
        ValueError
            If a tick is of another market (columns hold one).
        """
        ts_recv: list[int] = []
        ts_event: list[int] = []
        ts_init: list[int] = []
        trade: list[bool] = []
        px: list[float] = []
        a: list[str] = []
        b: list[str] = []
        c: list[str] = []
        d: list[str] = []
        uid: list[int] = []
        has: list[bool] = []
        nan = float("nan")
        for t in ticks:
            if t.venue != venue or t.symbol != symbol or t.unified_symbol != symbol:
                raise ValueError(f"tick of {t.venue}/{t.symbol}, expected {venue}/{symbol}")
            ts_recv.append(t.ts_recv)
            ts_event.append(t.ts_event)
            ts_init.append(t.ts_init)
            if type(t) is TradeTick:
                trade.append(True)
                px.append(float(t.price))
                a.append(str(t.price))
                b.append(str(t.size))
                c.append(t.trade_id)
                d.append(t.aggressor or "")
                uid.append(-1)
                has.append(False)
            else:
                q: QuoteTick = t  # type: ignore[assignment]
                trade.append(False)
                px.append(nan)
                a.append(str(q.bid))
                b.append(str(q.bid_size))
                c.append(str(q.ask))
                d.append(str(q.ask_size))
                uid.append(-1 if q.update_id is None else q.update_id)
                has.append(q.update_id is not None)
        return _finish(
            venue=venue,
            symbol=symbol,
            ts_recv=np.array(ts_recv, dtype=np.int64),
            ts_event=np.array(ts_event, dtype=np.int64),
            ts_init=np.array(ts_init, dtype=np.int64),
            is_trade=np.array(trade, dtype=np.bool_),
            px=np.array(px, dtype=np.float64),
            a=_bytes(a),
            b=_bytes(b),
            c=_bytes(c),
            d=_bytes(d),
            uid=np.array(uid, dtype=np.int64),
            has_uid=np.array(has, dtype=np.bool_),
        )

    @classmethod
    def build(cls, **columns: Any) -> EventColumns:
        """Columns from their arrays (every field but :attr:`rank`, which is computed)."""
        return _finish(**columns)

    def save(self, path: Path) -> None:
        """Write the columns to the directory ``path`` (one ``.npy`` file per column),
        atomically: a temporary directory renamed into place (a reader never sees half an
        entry; if another process saved it first, its entry stays)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
        try:
            np.save(tmp / "venue.npy", np.array(self.venue))
            np.save(tmp / "symbol.npy", np.array(self.symbol))
            for name in _COLUMNS:
                np.save(tmp / f"{name}.npy", getattr(self, name))
            try:
                tmp.rename(path)
            except OSError:
                if not path.is_dir():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, path: Path) -> EventColumns:
        """Columns saved by :meth:`save`, memory-mapped read-only (a column is read from
        disk as it is used: the texts only at the events that need their tick).

        Raises
        ------
        OSError, ValueError
            If the entry is missing or damaged.
        """

        def column(name: str) -> Any:
            return np.asarray(np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False))

        return cls(
            venue=str(np.load(path / "venue.npy", allow_pickle=False)),
            symbol=str(np.load(path / "symbol.npy", allow_pickle=False)),
            **{name: column(name) for name in _COLUMNS},
        )


def _finish(**columns: Any) -> EventColumns:
    """The columns with their price ranks (:attr:`EventColumns.rank`)."""
    is_trade, px, texts = columns["is_trade"], columns["px"], columns["a"]
    rank = np.full(is_trade.shape[0], -1, dtype=np.int64)
    if bool(is_trade.any()):
        distinct = np.unique(texts[is_trade]).tolist()
        if all(_digits(t) <= EXACT_DIGITS for t in distinct):
            rank[is_trade] = np.unique(px[is_trade], return_inverse=True)[1].reshape(-1)
    return EventColumns(rank=rank, **columns)


def _digits(text: bytes) -> int:
    """Significant digits of a plain decimal text (trailing zeros counted; 99 for any other
    notation)."""
    body = text.lstrip(b"+-").replace(b".", b"", 1).lstrip(b"0")
    return len(body) if body.isdigit() or not body else 99


def _bytes(texts: list[str]) -> npt.NDArray[np.bytes_]:
    if not texts:
        return np.zeros(0, dtype="S1")
    return np.array([t.encode() for t in texts], dtype=np.bytes_)


# ---------------------------------------------------------------------- cache
RACY_NS = 2_000_000_000
"""A file changed less than this long ago (ns) has its hash computed every time (not
remembered): a write within the file system's time granularity could leave the times
as they were."""


def cache_key(
    paths: list[Path], fmt: str, symbol: str, venue: str, memo: Path | None = None
) -> str:
    """The cache name of these files read as ``fmt`` for ``symbol``: SHA-256 of their
    contents' SHA-256 (in order), the format, symbol, venue and :data:`LAYOUT`.

    ``memo``: a directory where each file's content hash is remembered under its stat
    signature (path, device, inode, size, modification and change times: any write
    changes the change time), so an unchanged file is not read again; a file changed
    in the last :data:`RACY_NS` is hashed every time.
    """
    h = hashlib.sha256()
    for p in paths:
        h.update(bytes.fromhex(_file_digest(Path(p), memo)))
    h.update(f"\0{fmt}\0{symbol}\0{venue}\0{LAYOUT}".encode())
    return h.hexdigest()


def _file_digest(path: Path, memo: Path | None) -> str:
    """SHA-256 (hex) of the file's bytes, remembered in ``memo`` by its stat signature."""
    entry = None
    if memo is not None:
        st = path.stat()
        signature = (
            f"{path.resolve()}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}"
            f"\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
        )
        entry = memo / hashlib.sha256(signature.encode()).hexdigest()
        if time.time_ns() - st.st_ctime_ns < RACY_NS:
            entry = None  # just written: its times may not show the next write
        else:
            try:
                digest = entry.read_text(encoding="ascii")
                if len(digest) == 64:
                    return digest
            except (OSError, UnicodeDecodeError):
                pass
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
        tmp.write_text(digest, encoding="ascii")
        tmp.replace(entry)
    return digest


def load_columns(
    paths: list[Path],
    fmt: str,
    symbol: str,
    venue: str,
    cache_dir: Path | None = None,
) -> EventColumns:
    """The events of ``paths`` (one market, :func:`~tradebus.feeds.readers.read_events`'
    arguments) as columns, from ``cache_dir`` when these very bytes were read before.

    Raises
    ------
    ValueError, FileNotFoundError, DataFileError
        As :func:`~tradebus.feeds.readers.read_events` (the cache is only written after a
        complete read).
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such data file")
    entry = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        entry = cache_dir / cache_key(paths, fmt, symbol, venue, cache_dir / "hashes")
        if entry.is_dir():
            try:
                return EventColumns.load(entry)
            except (OSError, ValueError, KeyError):
                shutil.rmtree(entry, ignore_errors=True)  # damaged: read the files again
    cols = parse_columns(paths, fmt, symbol, venue)
    if entry is not None:
        cols.save(entry)
    return cols


def parse_columns(paths: list[Path], fmt: str, symbol: str, venue: str) -> EventColumns:
    """Read ``paths`` into columns (no cache): the fast reader where it applies (module
    doc), else the columns of :func:`~tradebus.feeds.readers.read_events`' ticks."""
    from tradebus.feeds.readers import read_events

    fast = None
    if fmt == "binance-raw":
        fast = _binance_raw(paths, symbol, venue)
    elif fmt == "tardis-quotes":
        fast = _tardis_quotes(paths, symbol, venue)
    if fast is not None:
        return fast
    return EventColumns.from_ticks(read_events(paths, fmt, symbol, venue=venue), venue, symbol)


# ---------------------------------------------------------- binance-raw, fast
_TS_DIGITS = 19
"""Digits of a capture line's receive time (ns since the epoch, 2001 to 2286)."""

_MS = 1_000_000


def _binance_raw(paths: list[Path], symbol: str, venue: str) -> EventColumns | None:
    """The fast reader of ``binance-raw`` captures, or None where it does not apply."""
    parts = []
    for path in paths:
        part = _binance_file(path, symbol)
        if part is None:
            return None
        parts.append(part)
    ts = np.concatenate([p[0] for p in parts])
    order = np.argsort(ts, kind="stable")  # = heapq.merge of sorted files, ties in file order
    cols = [np.concatenate([p[k] for p in parts])[order] for k in range(1, 10)]
    is_trade, ts_event, a, b, c, d, uid, px, has_uid = cols
    ts = ts[order]
    return _finish(
        venue=venue,
        symbol=symbol,
        ts_recv=ts,
        ts_event=ts_event,
        ts_init=ts.copy(),
        is_trade=is_trade,
        px=px,
        a=a,
        b=b,
        c=c,
        d=d,
        uid=uid,
        has_uid=has_uid,
    )


def _plain_bytes(path: Path) -> bytes | None:
    """The bytes of ``path`` (gunzipped for ``.gz``), or None for what the fast readers
    leave to the one parser: a corrupt gzip, several gzip members, or a cut file."""
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    inflate = zlib.decompressobj(31)
    try:
        text = inflate.decompress(raw) + inflate.flush()
    except zlib.error:
        return None
    if inflate.unused_data or not inflate.eof:
        return None
    return text


def _binance_file(path: Path, symbol: str) -> tuple[npt.NDArray, ...] | None:
    """One capture's events of ``symbol`` as columns (in file order), or None if a line is
    not in the layout the fast reader knows (the parser then reads the files).

    Lines are found with numpy on the bytes; the quote and trade lines of ``symbol`` are
    gathered and read by one regular expression each, which must match every one of them.
    """
    text = _plain_bytes(path)
    if text is None:
        return None
    if text and not text.endswith(b"\n"):
        text += b"\n"
    buf = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    length = ends - starts
    blank = (length == 0) | ((length == 1) & (buf[np.maximum(ends - 1, 0)] == 13))
    if bool(np.any(~blank & (length <= _TS_DIGITS + 12))):
        return None  # too short for '<ns> <frame>': the reader names the line
    keep_lines = ~blank
    s = starts[keep_lines]
    head = buf[s[:, None] + np.arange(_TS_DIGITS + 1)]
    if bool(np.any(head[:, :_TS_DIGITS] - 48 > 9)) or bool(np.any(head[:, _TS_DIGITS] != 32)):
        return None  # a receive time of another width, or none
    ts_all = (head[:, :_TS_DIGITS].astype(np.int64) - 48) @ (
        10 ** np.arange(_TS_DIGITS - 1, -1, -1, dtype=np.int64)
    )
    if ts_all.size > 1 and bool(np.any(np.diff(ts_all) < 0)):
        return None  # receive times go back: the reader's merge order is its own
    low = symbol.lower().encode()
    tp = b'{"stream":"%s@trade","data":' % low
    bp = b'{"stream":"%s@bookTicker","data":' % low
    dp = b'{"stream":"%s@depth' % low
    sp = b'{"lastUpdateId":'
    width = max(len(tp), len(bp))
    body = buf[np.minimum(s[:, None] + (_TS_DIGITS + 1) + np.arange(width), len(buf) - 1)]

    def starts_with(prefix: bytes) -> npt.NDArray[np.bool_]:
        return np.all(body[:, : len(prefix)] == np.frombuffer(prefix, dtype=np.uint8), axis=1)

    is_t, is_q = starts_with(tp), starts_with(bp)
    if not bool(np.all(is_t | is_q | starts_with(dp) | starts_with(sp))):
        return None  # another market's frames, or another kind: the parser reads them
    n_t, n_q = int(is_t.sum()), int(is_q.sum())
    line_kind = np.zeros(len(ends), dtype=np.int8)
    idx = np.flatnonzero(keep_lines)
    line_kind[idx[is_t]] = 1
    line_kind[idx[is_q]] = 2
    del line_kind
    lines_t, lines_q = idx[is_t], idx[is_q]
    if bool(np.any(buf[ends[lines_t] - 1] != _CLOSE)) or bool(
        np.any(buf[ends[lines_q] - 1] != _CLOSE)
    ):
        return None  # something after the frame: the reader's rules
    trade_data = _data_objects(text, starts[lines_t] + _TS_DIGITS + 1 + len(tp), ends[lines_t])
    book_data = _data_objects(text, starts[lines_q] + _TS_DIGITS + 1 + len(bp), ends[lines_q])
    others = idx[~(is_t | is_q)]  # depth frames and snapshots: checked as the parser does
    other_frames = _data_objects(text, starts[others] + _TS_DIGITS + 1, ends[others] + 1)
    try:
        trades = _decode_trades(trade_data)
        books = _decode_books(book_data)
        _decode_frames(other_frames)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # the parser names what is wrong
    sym = symbol
    if any(t.s != sym for t in trades) or any(q.s != sym for q in books):
        return None  # a frame whose symbol is not its stream's: the parser decides
    t_cols = [
        (),
        tuple(str(t.t) for t in trades),
        tuple(t.p for t in trades),
        tuple(t.q for t in trades),
        tuple(t.T for t in trades),
        tuple(t.m for t in trades),
    ]
    q_cols = [
        (),
        tuple(q.u for q in books),
        tuple(q.b for q in books),
        tuple(q.B for q in books),
        tuple(q.a for q in books),
        tuple(q.A for q in books),
    ]
    n = n_t + n_q
    ts = np.concatenate([ts_all[is_t], ts_all[is_q]])
    is_trade = np.zeros(n, dtype=np.bool_)
    is_trade[:n_t] = True
    ts_event = ts.copy()
    if n_t:
        ts_event[:n_t] = np.array(t_cols[4], dtype=np.int64) * _MS
    a = _concat_bytes(t_cols[2], q_cols[2])
    b = _concat_bytes(t_cols[3], q_cols[3])
    c = _concat_bytes(t_cols[1], q_cols[4])
    d = _concat_bytes(tuple("sell" if m else "buy" for m in t_cols[5]), q_cols[5])
    for texts in (a, b, c[n_t:], d[n_t:]):
        plain = np.strings.replace(texts, b".", b"", count=1)
        if not bool(np.all(np.strings.isdigit(plain))) or bool(
            np.any(np.strings.startswith(texts, b".") | np.strings.endswith(texts, b"."))
        ):
            return None  # not plain decimals: the parser's rules
    uid = np.full(n, -1, dtype=np.int64)
    if n_q:
        uid[n_t:] = np.array(q_cols[1], dtype=np.int64)
    has_uid = ~is_trade
    px = np.full(n, np.nan, dtype=np.float64)
    if n_t:
        px[:n_t] = a[:n_t].astype(np.float64)
    # back to file order
    pos = np.concatenate([np.flatnonzero(is_t), np.flatnonzero(is_q)])
    order = np.argsort(pos, kind="stable")
    return (
        ts[order],
        is_trade[order],
        ts_event[order],
        a[order],
        b[order],
        c[order],
        d[order],
        uid[order],
        px[order],
        has_uid[order],
    )


# -------------------------------------------------------- tardis-quotes, fast
_TARDIS_QUOTES_HEADER = (
    b"exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
)


def _tardis_quotes(paths: list[Path], symbol: str, venue: str) -> EventColumns | None:
    """The fast reader of Tardis ``quotes`` CSV files (concatenated in order), or None where
    a file is not in the plain layout it knows (the reader then reads the files)."""
    parts = [_tardis_quotes_file(p) for p in paths]
    if any(p is None for p in parts):
        return None
    rows = np.concatenate([p for p in parts if p is not None]) if parts else np.zeros((0, 8), "S1")
    full = np.all(np.strings.str_len(rows[:, 4:8]) > 0, axis=1)  # an empty side: skipped
    rows = rows[full]
    ts_event, ts_recv, ask_amount, ask, bid, bid_amount = (rows[:, k] for k in range(2, 8))
    for times in (ts_event, ts_recv):
        if not bool(np.all(np.strings.isdigit(times))) or bool(
            np.any(np.strings.str_len(times) > 17)
        ):
            return None
    for texts, positive in ((ask, True), (bid, True), (ask_amount, False), (bid_amount, False)):
        plain = np.strings.replace(texts, b".", b"", count=1)
        if not bool(np.all(np.strings.isdigit(plain))) or bool(
            np.any(np.strings.startswith(texts, b"."))
        ):
            return None  # not plain digits: the reader's decimal rules decide
        if bool(np.any(np.strings.endswith(texts, b"."))):
            return None
        if positive and bool(np.any(texts.astype(np.float64) <= 0)):
            return None
    n = rows.shape[0]
    recv = ts_recv.astype(np.int64) * 1000
    return _finish(
        venue=venue,
        symbol=symbol,
        ts_recv=recv,
        ts_event=ts_event.astype(np.int64) * 1000,
        ts_init=recv.copy(),
        is_trade=np.zeros(n, dtype=np.bool_),
        px=np.full(n, np.nan, dtype=np.float64),
        a=bid.astype(np.bytes_),
        b=bid_amount.astype(np.bytes_),
        c=ask.astype(np.bytes_),
        d=ask_amount.astype(np.bytes_),
        uid=np.full(n, -1, dtype=np.int64),
        has_uid=np.zeros(n, dtype=np.bool_),
    )


def _tardis_quotes_file(path: Path) -> npt.NDArray[np.bytes_] | None:
    """The data rows of one file as an (n, 8) bytes array, or None if not plain."""
    text = _plain_bytes(path)
    if text is None:
        return None
    head, sep, body = text.partition(b"\n")
    if not sep or head != _TARDIS_QUOTES_HEADER or not body.endswith(b"\n"):
        return None
    if any(ch in body for ch in (b'"', b"\r", b" ", b"\t", b"\n\n")):
        return None  # quoting, blanks, blank lines: the csv reader's rules
    n = body.count(b"\n")
    fields = body.replace(b"\n", b",").split(b",")[:-1]
    if len(fields) != 8 * n:
        return None  # a row of another width: the reader names it
    return np.array(fields, dtype=np.bytes_).reshape(n, 8)


def _concat_bytes(first: tuple[Any, ...], second: tuple[Any, ...]) -> npt.NDArray[np.bytes_]:
    values = list(first) + list(second)
    if not values:
        return np.zeros(0, dtype="S1")
    return np.array(values, dtype=np.bytes_)


_CLOSE = ord("}")


class _Frame(msgspec.Struct):
    """A frame's envelope as the parser decodes it first (its JSON and types checked)."""

    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


_decode_frames = msgspec.json.Decoder(list[_Frame]).decode
_decode_trades = msgspec.json.Decoder(list[TradeText]).decode
_decode_books = msgspec.json.Decoder(list[BookTickerText]).decode


def _data_objects(text: bytes, begin: npt.NDArray[np.int64], end: npt.NDArray[np.int64]) -> bytes:
    """``[obj,obj,...]``: ``text[begin[i]:end[i] - 1]`` of every line ``i`` (each frame's
    ``data`` object, the envelope's closing brace dropped), as one JSON array."""
    parts = [text[x : y - 1] for x, y in zip(begin.tolist(), end.tolist(), strict=True)]
    return b"[" + b",".join(parts) + b"]"

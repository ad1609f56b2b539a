"""The peers' input: the BTCUSDT trades of the raw captures, tiled, in each engine's format.

Source: the ``binance-spot_BTCUSDT_rawfeed_*`` captures in shared/data, read by
:func:`tradebus.feeds.readers.read_events` (``binance-raw``, the reader the
backtest uses); only the :class:`~tradebus.common.messages.TradeTick` are
kept (19,904 trades in the two 2024-08-08/09 files, 11 minutes). That is too
short for a throughput figure, so the trades are **tiled** ``copies`` times
(20 by default: 398,080 trades, the count of the issue's earlier run): copy
``k`` is the same trades with every time shifted by ``k * (span + 1 ms)``,
``span`` the last minus the first receive time, so times stay increasing.
Prices and sizes are unchanged (each copy starts again at the first price).

Market time is the receive time ``ts_recv`` (docs/strategies.md, "Paper fill
model"), so every engine gets ``ts_recv`` as its event time.

Formats written (:func:`write_inputs`):

* ``trades.npz`` (:func:`to_columns`): numpy columns ``ts_recv`` and
  ``ts_event`` (int64 ns), ``price`` and ``size`` (float64, exact to the
  0.01 tick and 0.00001 step at these magnitudes), ``price_text`` and
  ``size_text`` (the exact decimal text, for engines that parse decimals),
  ``buyer_aggressor`` (bool; Binance ``m == false``);
* ``hftbacktest.npy`` (:func:`to_hftbacktest`): hftbacktest's event rows,
  ``HFT_EVENT_DTYPE``, 64 bytes each (hftbacktest.types.event_dtype:
  ``ev u8, exch_ts i8, local_ts i8, px f8, qty f8, order_id u8, ival i8, fval f8``,
  aligned; https://hftbacktest.readthedocs.io, "Data"). ``ev`` =
  ``EXCH_EVENT | LOCAL_EVENT | TRADE_EVENT`` and ``BUY_EVENT`` or
  ``SELL_EVENT`` by the aggressor; ``exch_ts = local_ts = ts_recv`` (zero feed
  latency: the engines see a trade when tradebus does).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from tradebus.backtest.setup import VENUE
from tradebus.common.messages import TradeTick

SYMBOL = "BTCUSDT"
COPIES = 20
GAP_NS = 1_000_000
"""Between the last trade of a copy and the first of the next (1 ms)."""

# hftbacktest.types (2.4.x): event flags and the 64-byte row.
EXCH_EVENT = 1 << 31
LOCAL_EVENT = 1 << 30
BUY_EVENT = 1 << 29
SELL_EVENT = 1 << 28
TRADE_EVENT = 2
HFT_EVENT_DTYPE = np.dtype(
    {
        "names": ["ev", "exch_ts", "local_ts", "px", "qty", "order_id", "ival", "fval"],
        "formats": ["<u8", "<i8", "<i8", "<f8", "<f8", "<u8", "<i8", "<f8"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
        "itemsize": 64,
    },
    align=True,
)


@dataclass(frozen=True)
class Trades:
    """The tiled trades, in the order the engines see them.

    ``ticks`` are the tradebus messages (Decimal price and size, times in ns),
    the others numpy columns of the same length (see the module docstring).
    """

    ticks: list[TradeTick]
    files: list[Path]
    source_count: int
    copies: int

    def __len__(self) -> int:
        return len(self.ticks)


def source_files(data: Path, symbol: str = SYMBOL) -> list[Path]:
    """The raw captures of ``symbol`` in ``data``.

    Raises
    ------
    FileNotFoundError
        If ``data`` holds no ``binance-spot_<symbol>_rawfeed_*`` file.
    """
    files = sorted(data.glob(f"binance-spot_{symbol}_rawfeed_*.txt*"))
    if not files:
        raise FileNotFoundError(f"no binance-spot_{symbol}_rawfeed_* files in {data}")
    return files


def load_trades(data: Path, copies: int = COPIES, symbol: str = SYMBOL) -> Trades:
    """The trades of ``symbol``'s raw captures in ``data``, tiled ``copies`` times.

    Raises
    ------
    FileNotFoundError
        As :func:`source_files`.
    ValueError
        If ``copies`` < 1 or the captures hold no trade.
    """
    from tradebus.feeds.readers import read_events

    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    files = source_files(data, symbol)
    base = [
        e for e in read_events(files, "binance-raw", symbol, venue=VENUE) if type(e) is TradeTick
    ]
    if not base:
        raise ValueError(f"no trades of {symbol} in {', '.join(f.name for f in files)}")
    shift = base[-1].ts_recv - base[0].ts_recv + GAP_NS
    ticks = list(base)
    for k in range(1, copies):
        d = k * shift
        ticks += [
            msgspec.structs.replace(
                t, ts_event=t.ts_event + d, ts_recv=t.ts_recv + d, ts_init=t.ts_init + d
            )
            for t in base
        ]
    return Trades(ticks=ticks, files=files, source_count=len(base), copies=copies)


def to_columns(trades: Trades) -> dict[str, np.ndarray]:
    """The trades as numpy columns (module docstring, ``trades.npz``)."""
    ticks = trades.ticks
    return {
        "ts_recv": np.fromiter((t.ts_recv for t in ticks), np.int64, len(ticks)),
        "ts_event": np.fromiter((t.ts_event for t in ticks), np.int64, len(ticks)),
        "price": np.fromiter((float(t.price) for t in ticks), np.float64, len(ticks)),
        "size": np.fromiter((float(t.size) for t in ticks), np.float64, len(ticks)),
        "price_text": np.array([str(t.price) for t in ticks]),
        "size_text": np.array([str(t.size) for t in ticks]),
        "buyer_aggressor": np.fromiter((t.aggressor == "buy" for t in ticks), bool, len(ticks)),
    }


def to_hftbacktest(columns: dict[str, np.ndarray]) -> np.ndarray:
    """hftbacktest's event rows (``HFT_EVENT_DTYPE``) for :func:`to_columns`' trades."""
    n = len(columns["ts_recv"])
    rows = np.zeros(n, HFT_EVENT_DTYPE)
    side = np.where(columns["buyer_aggressor"], BUY_EVENT, SELL_EVENT).astype(np.uint64)
    rows["ev"] = np.uint64(EXCH_EVENT | LOCAL_EVENT | TRADE_EVENT) | side
    rows["exch_ts"] = columns["ts_recv"]
    rows["local_ts"] = columns["ts_recv"]
    rows["px"] = columns["price"]
    rows["qty"] = columns["size"]
    return rows


def write_inputs(trades: Trades, out: Path) -> dict[str, Path]:
    """Write ``trades.npz`` and ``hftbacktest.npy`` into ``out``; their paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    columns = to_columns(trades)
    paths = {"columns": out / "trades.npz", "hftbacktest": out / "hftbacktest.npy"}
    named: dict[str, Any] = columns  # np.savez's stub would take a key for allow_pickle
    np.savez(paths["columns"], **named)
    np.save(paths["hftbacktest"], to_hftbacktest(columns))
    return paths


def ticks_of_columns(columns: dict[str, np.ndarray], symbol: str = SYMBOL) -> list[TradeTick]:
    """:class:`TradeTick` messages back from :func:`to_columns` (exact: from the decimal text)."""
    out = []
    for i, (price, size) in enumerate(
        zip(columns["price_text"], columns["size_text"], strict=True)
    ):
        ts = int(columns["ts_recv"][i])
        out.append(
            TradeTick(
                venue=VENUE,
                symbol=symbol,
                unified_symbol=symbol,
                price=Decimal(str(price)),
                size=Decimal(str(size)),
                aggressor="buy" if columns["buyer_aggressor"][i] else "sell",
                trade_id=str(i),
                ts_event=int(columns["ts_event"][i]),
                ts_recv=ts,
                ts_init=ts,
            )
        )
    return out

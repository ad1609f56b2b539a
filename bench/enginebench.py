"""Replay/backtest engine: market events/s through one ladder bot and the paper venue.

Method
------
The in-process backtest engine of ``tradebus backtest``
(:mod:`tradebus.backtest.engine`: the strategy core the hosts run, the
paper fill model execution uses, no NATS, no database), one ladder bot on
BTCUSDT with the parameters of ``docs/backtest-ladder.yaml`` but BTCUSDT's
market sizes (tick 0.01, step 0.00001), 10,000 USDT, fees 10/20 bps.
Events: the BTCUSDT raw captures in ``/work/shared/data`` (2 files, quotes
and trades, merged by receive time).

* **(a) parse + engine**: ``run_backtest(setup, open_events(setup, files,
  "binance-raw"))``: gunzip, JSON parse into ``QuoteTick``/``TradeTick`` and
  the engine, timed together.
* **(b) engine only**: the events parsed first into a list in memory, then
  ``run_backtest`` over the list, timed alone (best of 3 runs).
* (a) and (b) are run twice: with the docs ladder (5 buys placed, none fill:
  mostly the "nothing to do" path) and with an **active** ladder (max drop
  0.1 %, take profit 0.02 %, no-fill restart 1 min: buys fill, cycles close).
* **columns** (issue 21): the same runs fed
  :class:`~tradebus.backtest.columns.EventColumns` (``Backtest.feed_columns``:
  numpy screens find the next event that can fill an order or wake the bot,
  the others are taken in bulk):

  - **first read (parse -> columns)**: :func:`~tradebus.backtest.columns.parse_columns`
    of the BTCUSDT raw captures and of the Tardis/Binance-futures quotes CSV
    (gunzip included), best of 3;
  - **cached + active ladder**: :func:`~tradebus.backtest.columns.load_columns`
    from a warm cache (a temporary directory) and the run, timed together, best
    of 3; and the run alone on columns in memory ("engine only, active ladder
    (columns)");
  - **parse + active ladder**: first read (no cache) and the run;
  - **sweep**: ``run_sweep`` of 100 active-ladder combinations (10
    ``take_profit_pct`` x 10 ``max_drop_pct``) on the BTCUSDT captures, no
    charts, one process per CPU, columns cached once; wall time, and the cores
    used (CPU seconds of the workers / wall seconds).

* **profile of (b)**: ``cProfile`` over a second engine-only run; the top 15
  functions by cumulative and by own time are printed (cProfile slows the
  run; read the shares, not the absolute times).

:func:`time_tradebus_on_trades` times the engine (columns path) on any list of
trades, for the side-by-side runs with other engines (``bench-peers``).

Events/s = events / wall seconds (``time.perf_counter``). Prints figures;
never asserts on them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tradebus.backtest.columns import EventColumns, load_columns, parse_columns
from tradebus.backtest.engine import Backtest, open_events, run_backtest
from tradebus.backtest.setup import VENUE, Setup, make_setup
from tradebus.backtest.sweep import parse_sweeps, run_sweep

DEFAULT_DATA = Path("/work/shared/data")
SYMBOL = "BTCUSDT"
PARAMS = {
    "symbol": SYMBOL,
    "tick_size": "0.01",
    "step_size": "0.00001",
    "maker_fee_bps": "10",
    "taker_fee_bps": "20",
    "balances": {"USDT": "10000"},
    "total_quote": "5000",
    "order_count": 5,
    "max_drop_pct": "15",
    "increment_pct": "20",
    "take_profit_pct": "8",
}
ACTIVE = PARAMS | {"max_drop_pct": "0.1", "take_profit_pct": "0.02", "no_fill_restart_minutes": "1"}
"""A tight ladder that fills and cycles within the 11 minutes (the docs ladder places 5
buys 0-15 % below the price and none fills)."""


def files_of(data: Path) -> list[Path]:
    """The BTCUSDT raw captures in ``data``."""
    files = sorted(data.glob(f"binance-spot_{SYMBOL}_rawfeed_*.txt*"))
    if not files:
        raise SystemExit(f"no binance-spot_{SYMBOL}_rawfeed_* files in {data}")
    return files


QUOTES_CSV = "binance-futures_BTCUSDT_quotes_2020-02-22_0000-0004Z.csv.gz"
"""The Tardis quotes CSV of shared/data (Binance USDT-M futures BTCUSDT)."""

SWEEP_AXES = [
    "take_profit_pct=" + ",".join(f"0.{k:02d}" for k in range(1, 11)),
    "max_drop_pct=" + ",".join(f"0.{k:02d}" for k in range(5, 15)),
]
"""100 combinations of the active ladder."""


def best_of(runs: int, action: Any) -> tuple[float, Any]:
    """The shortest wall time (s) of ``runs`` calls of ``action()`` and the last result."""
    best, out = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        out = action()
        best = min(best, time.perf_counter() - started)
    return best, out


def trades_columns(
    ts_ns: Sequence[int] | np.ndarray,
    prices: Sequence[Any] | np.ndarray,
    sizes: Sequence[Any] | np.ndarray,
    symbol: str = SYMBOL,
    sells: Sequence[bool] | np.ndarray | None = None,
) -> EventColumns:
    """Columns of trades only (``ts_recv = ts_event = ts_ns``; prices and sizes as decimal
    text, str or Decimal or float: a float is taken by its ``repr``; aggressor ``sell``
    where ``sells``, else ``buy``; trade ids ``0, 1, ...``)."""
    n = len(ts_ns)
    ts = np.asarray(ts_ns, dtype=np.int64)
    price_text = [
        str(p) if not isinstance(p, float) else repr(p)
        for p in np.asarray(prices, dtype=object).tolist()
    ]
    size_text = [
        str(q) if not isinstance(q, float) else repr(q)
        for q in np.asarray(sizes, dtype=object).tolist()
    ]
    side = (
        np.where(np.asarray(sells, dtype=np.bool_), b"sell", b"buy")
        if sells is not None
        else np.full(n, b"buy")
    )
    a = np.array([t.encode() for t in price_text], dtype=np.bytes_)
    return EventColumns.build(
        venue=VENUE,
        symbol=symbol,
        ts_recv=ts,
        ts_event=ts.copy(),
        ts_init=ts.copy(),
        is_trade=np.ones(n, dtype=np.bool_),
        px=a.astype(np.float64),
        a=a,
        b=np.array([t.encode() for t in size_text], dtype=np.bytes_),
        c=np.array([str(i).encode() for i in range(n)], dtype=np.bytes_),
        d=side.astype(np.bytes_),
        uid=np.full(n, -1, dtype=np.int64),
        has_uid=np.zeros(n, dtype=np.bool_),
    )


def time_tradebus_on_trades(
    ts_ns: Sequence[int] | np.ndarray,
    prices: Sequence[Any] | np.ndarray,
    sizes: Sequence[Any] | np.ndarray,
    params: dict[str, Any] | None = None,
    repeat: int = 3,
    sells: Sequence[bool] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Time the tradebus backtest engine on a list of trades (the peers benchmark's entry).

    Parameters
    ----------
    ts_ns, prices, sizes
        One trade each: time (int ns since the epoch, non-decreasing), price and size
        (decimal text, Decimal, or float taken by its ``repr``); numpy arrays or lists.
    params
        Ladder parameters (default :data:`ACTIVE`: 5 buys 0-0.1 % below, take profit
        0.02 %, restart after 1 min without a fill; BTCUSDT, tick 0.01, step 0.00001,
        10,000 USDT, fees 10/20 bps). ``symbol`` names the market of the trades.
    repeat
        Runs; the best is reported.
    sells
        Aggressor ``sell`` per trade (default all ``buy``; the fill model does not use it).

    Returns
    -------
    dict
        ``events``, ``seconds`` (best engine run on columns in memory, the columns made
        before and not timed), ``events_per_second``, ``columns_seconds`` (making the
        columns from the lists), ``orders_placed``, ``fills``, ``cycles``,
        ``realized_pnl`` (str) and ``summary`` (the run's summary dict).
    """
    params = dict(ACTIVE if params is None else params)
    symbol = params.get("symbol", SYMBOL)
    started = time.perf_counter()
    cols = trades_columns(ts_ns, prices, sizes, symbol, sells)
    columns_seconds = time.perf_counter() - started
    setup = make_setup("ladder", params)
    seconds, result = best_of(max(1, repeat), lambda: Backtest(setup).run(cols))
    s = result.summary
    return {
        "events": len(cols),
        "seconds": seconds,
        "events_per_second": len(cols) / seconds if seconds > 0 else None,
        "columns_seconds": columns_seconds,
        "orders_placed": s["orders_placed"],
        "fills": s["fills"],
        "cycles": s["cycles_completed"],
        "realized_pnl": s["realized_pnl"],
        "summary": s,
    }


def columnar_rows(data: Path, files: list[Path]) -> list[dict]:
    """The rows of the columnar path (module doc, "columns")."""
    rows = []
    raw_s, cols = best_of(3, lambda: parse_columns(files, "binance-raw", SYMBOL, VENUE))
    n = len(cols)
    rows.append(
        {
            "row": "engine first read (parse -> columns), Binance raw capture",
            "value": round(n / raw_s),
            "unit": "events/s",
            "detail": f"{n:,} events of {len(files)} files in {raw_s:.3f} s (best of 3; "
            "gunzip, numpy line split, msgspec on the quotes' and trades' data)",
        }
    )
    quotes = data / QUOTES_CSV
    if quotes.is_file():
        q_s, q_cols = best_of(3, lambda: parse_columns([quotes], "tardis-quotes", SYMBOL, VENUE))
        rows.append(
            {
                "row": "engine first read (parse -> columns), Tardis quotes CSV",
                "value": round(len(q_cols) / q_s),
                "unit": "events/s",
                "detail": f"{len(q_cols):,} quotes in {q_s:.3f} s (best of 3)",
            }
        )
    setup = make_setup("ladder", ACTIVE)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        load_columns(files, "binance-raw", SYMBOL, VENUE, cache)  # warm

        def cached() -> Any:
            return run_backtest(setup, load_columns(files, "binance-raw", SYMBOL, VENUE, cache))

        c_s, result = best_of(3, cached)
        s = result.summary
        acts = f"placed {s['orders_placed']}, fills {s['fills']}, cycles {s['cycles_completed']}"
        rows.append(
            {
                "row": "engine cached + active ladder",
                "value": round(n / c_s),
                "unit": "events/s",
                "detail": f"{n:,} events in {c_s:.4f} s (load from cache + run, best of 3); {acts}",
            }
        )
        e_s, _ = best_of(5, lambda: run_backtest(setup, cols))
        rows.append(
            {
                "row": "engine only, active ladder (columns)",
                "value": round(n / e_s),
                "unit": "events/s",
                "detail": f"{n:,} events in {e_s:.4f} s (columns in memory, best of 5); {acts}",
            }
        )
        p_s, _ = best_of(
            3, lambda: run_backtest(setup, parse_columns(files, "binance-raw", SYMBOL, VENUE))
        )
        rows.append(
            {
                "row": "engine parse + active ladder",
                "value": round(n / p_s),
                "unit": "events/s",
                "detail": f"{n:,} events in {p_s:.3f} s (first read to columns + run, best of 3)",
            }
        )
        rows.append(sweep_row(files, cache))
    return rows


def sweep_row(files: list[Path], cache: Path, workers: int | None = None) -> dict:
    """``run_sweep`` of the 100 :data:`SWEEP_AXES` combinations (module doc)."""
    cores = workers or os.cpu_count() or 1
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        rows = run_sweep(
            "ladder",
            ACTIVE,
            parse_sweeps(SWEEP_AXES),
            files,
            "binance-raw",
            Path(out),
            workers=cores,
            chart=False,
            cache_dir=cache,
        )
        wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    fills = sum(int(r[1]["fills"]) for r in rows)
    return {
        "row": "sweep, 100 combinations, active ladder",
        "value": round(wall, 2),
        "unit": "s",
        "detail": f"{len(rows)} runs on {cores} worker processes ({os.cpu_count()} CPUs); "
        f"cores used {cpu / wall:.2f} (worker CPU s / wall s); {fills:,} fills in all; "
        "columns cached once",
    }


def profile(setup: Setup, events: list | EventColumns, top: int = 15) -> str:
    """cProfile of one engine-only run: top ``top`` by cumulative and by own time."""
    prof = cProfile.Profile()
    prof.enable()
    run_backtest(setup, events)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    out.write(f"--- top {top} by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write(f"--- top {top} by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def one(name: str, params: dict, files: list[Path]) -> tuple[list[dict], Setup, list]:
    """(a) and (b) with ``params``; the rows, the setup and the parsed events."""
    setup = make_setup("ladder", params)
    started = time.perf_counter()
    result = run_backtest(setup, open_events(setup, files, "binance-raw"))
    seconds_a = time.perf_counter() - started
    t0 = time.perf_counter()
    events = list(open_events(setup, files, "binance-raw"))
    parse_s = time.perf_counter() - t0
    seconds_b = float("inf")
    for _ in range(3):  # best of 3: the engine-only run is short (~0.1 s)
        started = time.perf_counter()
        result_b = run_backtest(setup, events)
        seconds_b = min(seconds_b, time.perf_counter() - started)
    s = result_b.summary
    acts = f"placed {s['orders_placed']}, fills {s['fills']}, cycles {s['cycles_completed']}"
    n = len(events)
    rows = [
        {
            "row": f"engine parse + {name} ladder + paper fills",
            "value": round(result.summary["events"] / seconds_a),
            "unit": "events/s",
            "detail": f"{result.summary['events']:,} events in {seconds_a:.2f} s; {acts}",
        },
        {
            "row": f"engine only, {name} ladder (pre-parsed)",
            "value": round(n / seconds_b),
            "unit": "events/s",
            "detail": f"{n:,} events in {seconds_b:.3f} s (best of 3); {acts}",
        },
    ]
    if name == "docs":
        rows.append(
            {
                "row": "engine parse only (raw -> ticks, list)",
                "value": round(n / parse_s),
                "unit": "events/s",
                "detail": f"{n:,} events in {parse_s:.2f} s",
            }
        )
    return rows, setup, events


def run(data: Path = DEFAULT_DATA, with_profile: bool = True) -> tuple[list[dict], str]:
    """Runs (a) and (b) for both ladders, the columnar rows (and the profiles); return the
    rows and the profiles."""
    files = files_of(data)
    columnar = columnar_rows(data, files)  # first: no per-event lists alive for the GC to scan
    rows, _, _ = one("docs", PARAMS, files)
    active_rows, setup, events = one("active", ACTIVE, files)
    rows += active_rows
    rows += columnar
    text = ""
    if with_profile:
        text = profile(setup, events)
        cols = parse_columns(files, "binance-raw", SYMBOL, VENUE)
        text += "=== columns path ===\n" + profile(setup, cols)
    return rows, text


def main() -> None:
    from bench.floor import print_rows

    p = argparse.ArgumentParser(
        prog="python -m bench.enginebench", description=__doc__.splitlines()[0]
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of the raw feeds")
    p.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    args = p.parse_args()
    started = time.perf_counter()
    rows, text = run(args.data, not args.no_profile)
    print_rows(rows)
    if text:
        print(text)
    print(f"wall {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

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
* **profile of (b)**: ``cProfile`` over a second engine-only run; the top 15
  functions by cumulative and by own time are printed (cProfile slows the
  run; read the shares, not the absolute times).

Events/s = events / wall seconds (``time.perf_counter``). Prints figures;
never asserts on them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path

from tradebus.backtest.engine import open_events, run_backtest
from tradebus.backtest.setup import Setup, make_setup

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


def profile(setup: Setup, events: list, top: int = 15) -> str:
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
    """Runs (a) and (b) for both ladders (and the profile); return the rows and the profile."""
    files = files_of(data)
    rows, _, _ = one("docs", PARAMS, files)
    active_rows, setup, events = one("active", ACTIVE, files)
    rows += active_rows
    text = profile(setup, events) if with_profile else ""
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

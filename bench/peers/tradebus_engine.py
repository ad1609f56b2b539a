"""tradebus's side of the peers comparison: the one place that times our engine on the trades.

:func:`time_tradebus` runs ``run_backtest`` (:mod:`tradebus.backtest.engine`)
with the active ladder of :mod:`bench.enginebench` (``ACTIVE``) over the
trades of ``trades.npz`` (:mod:`bench.peers.trades`), turned back into
:class:`~tradebus.common.messages.TradeTick` first (not timed: the
"pre-parsed" figure of :mod:`bench.enginebench`). Best of ``repeat`` runs.

It times both paths of the one engine: the columns (what a cached
``tradebus backtest`` runs) and the per-event feed of pre-parsed ticks.

``python -m bench.peers.tradebus_engine trades.npz`` prints the result as
one JSON line, as the peers' scripts do: run that way (a fresh process,
as the peers), its ``rss`` is comparable to theirs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.enginebench import ACTIVE
from bench.peers.trades import ticks_of_columns


def peak_rss_mib() -> float:
    """This process's peak resident set since it was exec'd (``VmHWM`` of
    ``/proc/self/status``), in MiB. Not ``ru_maxrss``: that survives ``execve`` and so
    starts at the RSS of the process that forked this one (the whole bench's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def time_tradebus(columns_path: Path, repeat: int = 3) -> dict:
    """Time the engine on the trades of ``columns_path``; the peers' JSON fields.

    Returns ``{"engine", "version", "events", "seconds", "placed", "filled",
    "cycles", "rss_mib", "per_event_seconds", "per_event_placed",
    "per_event_filled"}``: ``seconds`` the best of ``repeat`` wall times of the
    engine on the trades as columns in memory
    (:func:`bench.enginebench.time_tradebus_on_trades`, the path ``tradebus
    backtest`` takes on cached data), ``placed`` and ``filled`` its summary's
    ``orders_placed`` and ``fills``; ``per_event_*`` the same trades fed one
    :class:`~tradebus.common.messages.TradeTick` at a time (``run_backtest``
    on pre-parsed ticks, the engine before issue 21). Both must agree.
    """
    from importlib.metadata import version

    from bench.enginebench import time_tradebus_on_trades
    from tradebus.backtest.engine import run_backtest
    from tradebus.backtest.setup import make_setup

    with np.load(columns_path) as z:
        columns = {k: z[k] for k in z.files}
    fast = time_tradebus_on_trades(
        columns["ts_recv"],
        columns["price_text"],
        columns["size_text"],
        repeat=repeat,
        sells=~columns["buyer_aggressor"].astype(bool),
    )
    ticks = ticks_of_columns(columns)
    setup = make_setup("ladder", ACTIVE)
    best = float("inf")
    summary: dict = {}
    for _ in range(repeat):
        started = time.perf_counter()
        result = run_backtest(setup, ticks)
        best = min(best, time.perf_counter() - started)
        summary = result.summary
    return {
        "engine": "tradebus",
        "version": version("tradebus-backtest"),
        "events": fast["events"],
        "seconds": fast["seconds"],
        "placed": fast["orders_placed"],
        "filled": fast["fills"],
        "cycles": fast["cycles"],
        "per_event_seconds": best,
        "per_event_placed": summary["orders_placed"],
        "per_event_filled": summary["fills"],
        "rss_mib": peak_rss_mib(),
    }


if __name__ == "__main__":
    print(json.dumps(time_tradebus(Path(sys.argv[1]))))

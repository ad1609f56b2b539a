"""tradebus's side of the peers comparison: the one place that times our engine on the trades.

:func:`time_tradebus` runs ``run_backtest`` (:mod:`tradebus.backtest.engine`)
with the active ladder of :mod:`bench.enginebench` (``ACTIVE``) over the
trades of ``trades.npz`` (:mod:`bench.peers.trades`), turned back into
:class:`~tradebus.common.messages.TradeTick` first (not timed: the
"pre-parsed" figure of :mod:`bench.enginebench`). Best of ``repeat`` runs.

When the faster engine of issue 21 exposes its own timing function in
:mod:`bench.enginebench`, switch :func:`time_tradebus` to it (here only).

``python -m bench.peers.tradebus_engine trades.npz`` prints the result as
one JSON line, as the peers' scripts do: run that way (a fresh process,
as the peers), its ``rss`` is comparable to theirs.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from bench.enginebench import ACTIVE
from bench.peers.trades import ticks_of_columns


def peak_rss_mib() -> float:
    """This process's peak resident set (``ru_maxrss``, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_tradebus(columns_path: Path, repeat: int = 3) -> dict:
    """Time the engine on the trades of ``columns_path``; the peers' JSON fields.

    Returns ``{"engine", "version", "events", "seconds", "placed", "filled",
    "rss_mib"}``: ``seconds`` the best of ``repeat`` wall times of
    ``run_backtest`` alone (``time.perf_counter``), ``placed`` and ``filled``
    the summary's ``orders_placed`` and ``fills``.
    """
    from importlib.metadata import version

    from tradebus.backtest.engine import run_backtest
    from tradebus.backtest.setup import make_setup

    with np.load(columns_path) as z:
        ticks = ticks_of_columns({k: z[k] for k in z.files})
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
        "events": len(ticks),
        "seconds": best,
        "placed": summary["orders_placed"],
        "filled": summary["fills"],
        "cycles": summary["cycles_completed"],
        "rss_mib": peak_rss_mib(),
    }


if __name__ == "__main__":
    print(json.dumps(time_tradebus(Path(sys.argv[1]))))

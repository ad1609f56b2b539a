"""Parameter sweeps: ``--sweep 'name=v1,v2,v3'`` (repeatable), every combination in parallel.

Each combination is one backtest in its own process
(:class:`concurrent.futures.ProcessPoolExecutor`, at most one per CPU); the
worker reads the data files itself (events are not shipped between
processes) and writes its outputs to ``DIR/<NNN>-<name>_<value>-...``
(:func:`combo_dir`: the combination's number in the listed order, then each
parameter and value; no ``=``, ``,`` or path separator in it). The parent
writes, in ``DIR``:

* ``sweep.csv``: one row per combination, in the order the combinations are
  listed (the first ``--sweep`` varies slowest), with the parameters as
  given, ``dir``, and then the summary's fields;
* ``index.json``: ``{dir name: {parameter: value as given}}``;
* ``ranking.csv``: the combinations best first by an objective
  (:data:`OBJECTIVES`, :func:`rank`): ``rank``, ``dir``, the parameters,
  ``objective`` (the value ranked by) and the main figures.

A swept name may be any key of the params file (a strategy parameter, a fee,
a size); values are read as YAML scalars (``5`` an int, ``true`` a bool,
``0.5`` a decimal).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from tradebus.backtest.engine import market_events, run_backtest
from tradebus.backtest.report import write_outputs
from tradebus.backtest.setup import SetupError, make_setup

SWEEP_CSV = "sweep.csv"
INDEX_JSON = "index.json"
RANKING_CSV = "ranking.csv"
OBJECTIVES: dict[str, str] = {
    "pnl": "total P&L (realized + unrealized at the last price, quote); higher first",
    "sharpe": "Sharpe ratio of daily returns; higher first (n/a last)",
    "sortino": "Sortino ratio of daily returns; higher first (n/a last)",
    "profit_factor": "gross profit / gross loss of closed cycles; higher first "
    "(no losing cycle but a winning one: first; no closed cycle: last)",
    "drawdown": "max drawdown in % of its peak; lower first",
    "win_rate": "share of closed cycles won; higher first (no closed cycle: last)",
}
"""``--objective`` names and what each ranks by (docs/backtest.md)."""
RANKING_FIGURES = (
    "realized_pnl",
    "unrealized_pnl",
    "final_equity",
    "return_pct",
    "fills",
    "cycles_closed",
    "win_rate_pct",
    "profit_factor",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_pct",
    "exposure_pct",
    "buy_and_hold_return_pct",
)
"""The summary fields ``ranking.csv`` (and the CLI's ranked table) show after the objective."""
Axis = tuple[str, list[str]]
"""A swept parameter and its values as written."""


def parse_sweeps(texts: list[str]) -> list[Axis]:
    """``['take_profit_pct=0.5,1,2']`` -> ``[('take_profit_pct', ['0.5', '1', '2'])]``.

    Raises
    ------
    ValueError
        For a malformed argument or a name given twice.
    """
    axes: list[Axis] = []
    for text in texts:
        name, eq, values = text.partition("=")
        name = name.strip()
        items = [v.strip() for v in values.split(",")]
        if not eq or not name or not all(items):
            raise ValueError(f"--sweep {text!r}: expected name=v1,v2,...")
        if any(name == n for n, _ in axes):
            raise ValueError(f"--sweep {name}: given twice")
        axes.append((name, items))
    return axes


def combinations(axes: list[Axis]) -> list[dict[str, str]]:
    """Every combination of the axes' values, the first axis varying slowest."""
    names = [n for n, _ in axes]
    return [
        dict(zip(names, values, strict=True)) for values in itertools.product(*(v for _, v in axes))
    ]


def scalar(text: str) -> Any:
    """A swept value as the params file would have it (a YAML scalar)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (bool, int, float, str)) else text


def apply_combo(raw: Mapping[str, Any], combo: Mapping[str, str]) -> dict[str, Any]:
    """The params mapping with the combination's values put in."""
    return {**raw, **{k: scalar(v) for k, v in combo.items()}}


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def combo_dir(combo: Mapping[str, str], number: int = 1, count: int = 1) -> str:
    """The output directory of combination ``number`` (1-based) of ``count``:
    ``001-levels_5-step_0.5`` (the number zero-padded to 3 digits or more; any character
    but letters, digits, ``.``, ``+`` and ``-`` in a name or value becomes ``_``)."""
    width = max(3, len(str(count)))
    parts = [f"{_UNSAFE.sub('_', k)}_{_UNSAFE.sub('_', v)}" for k, v in combo.items()]
    return "-".join([f"{number:0{width}d}", *parts])


def objective_value(summary: Mapping[str, Any], objective: str) -> float | None:
    """The number ``objective`` ranks ``summary`` by (higher is better, ``drawdown`` negated);
    None when it is n/a (ranked last).

    Raises
    ------
    ValueError
        For an objective not in :data:`OBJECTIVES`.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"--objective {objective}: expected one of {', '.join(OBJECTIVES)}")
    if objective == "pnl":
        return float(Decimal(summary["realized_pnl"]) + Decimal(summary["unrealized_pnl"]))
    if objective == "drawdown":
        pct = summary.get("max_drawdown_pct")
        return -float(pct or 0)
    if objective == "profit_factor":
        pf = summary.get("profit_factor")
        if pf is None and Decimal(summary.get("gross_profit") or 0) > 0:
            return math.inf  # wins and no loss
        return None if pf is None else float(pf)
    key = "win_rate_pct" if objective == "win_rate" else objective
    value = summary.get(key)
    return None if value is None else float(value)


def rank(
    rows: list[tuple[dict[str, str], dict[str, Any]]], objective: str
) -> list[tuple[int, dict[str, str], dict[str, Any]]]:
    """``(number, combo, summary)`` best first by ``objective`` (``number``: 1-based, in the
    listed order; ties keep that order; n/a last)."""
    numbered = [(i, c, s) for i, (c, s) in enumerate(rows, 1)]

    def key(row: tuple[int, dict[str, str], dict[str, Any]]) -> tuple[int, float, int]:
        value = objective_value(row[2], objective)
        return (1, 0.0, row[0]) if value is None else (0, -value, row[0])

    return sorted(numbered, key=key)


@dataclass(frozen=True)
class Job:
    """One combination's run (picklable: it crosses to a worker process)."""

    strategy: str
    raw: dict[str, Any]
    paths: list[Path]
    fmt: str
    out: Path
    chart: bool = True
    cache_dir: Path | None = None


def run_job(job: Job) -> dict[str, Any]:
    """Run one combination in this process, write its outputs, return its summary."""
    setup = make_setup(job.strategy, job.raw)
    result = run_backtest(setup, market_events(setup, job.paths, job.fmt, job.cache_dir))
    write_outputs(result, job.out, chart=job.chart)
    return result.summary


def run_sweep(
    strategy: str,
    raw: Mapping[str, Any],
    axes: list[Axis],
    paths: list[Path],
    fmt: str,
    out: Path,
    workers: int | None = None,
    on_done: Callable[[int, int, dict[str, str]], None] | None = None,
    chart: bool = True,
    objective: str = "pnl",
    cache_dir: Path | None = None,
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Run every combination in parallel; write ``sweep.csv``, ``index.json`` and
    ``ranking.csv`` (by ``objective``) in ``out``; return (combo, summary) rows in the
    listed order.

    Every combination is validated before any starts. With ``cache_dir`` the data is
    parsed once, here, into its cached columns, which every worker then loads
    (:func:`~tradebus.backtest.engine.market_events`).

    Raises
    ------
    SetupError
        If a combination's parameters are invalid (the combination is named).
    ValueError
        For an objective not in :data:`OBJECTIVES` (before any run).
    Exception
        Whatever a worker raised (a malformed data file: ``DataFileError``).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"--objective {objective}: expected one of {', '.join(OBJECTIVES)}")
    combos = combinations(axes)
    names = [combo_dir(c, i, len(combos)) for i, c in enumerate(combos, 1)]
    jobs = []
    for combo, name in zip(combos, names, strict=True):
        params = apply_combo(raw, combo)
        try:
            make_setup(strategy, params)
        except SetupError as exc:
            where = ",".join(f"{k}={v}" for k, v in combo.items())
            raise SetupError([(f"[{where}] {f}", m) for f, m in exc.problems]) from None
        jobs.append(Job(strategy, params, list(paths), fmt, out / name, chart, cache_dir))
    if cache_dir is not None and jobs:
        market_events(make_setup(strategy, jobs[0].raw), list(paths), fmt, cache_dir)
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    summaries: list[dict[str, Any] | None] = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            summaries[i] = future.result()
            if on_done is not None:
                on_done(done, len(jobs), combos[i])
    rows = [(c, s) for c, s in zip(combos, summaries, strict=True) if s is not None]
    out.mkdir(parents=True, exist_ok=True)
    axis_names = [n for n, _ in axes]
    (out / SWEEP_CSV).write_text(sweep_csv(axis_names, rows), encoding="utf-8")
    index = {name: combo for name, combo in zip(names, combos, strict=True)}
    (out / INDEX_JSON).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    (out / RANKING_CSV).write_text(ranking_csv(axis_names, rows, objective), encoding="utf-8")
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def sweep_csv(names: list[str], rows: list[tuple[dict[str, str], dict[str, Any]]]) -> str:
    """The text of ``sweep.csv``: parameters, then ``dir``, then every summary field."""
    fields: list[str] = []
    for _, summary in rows:
        fields += [k for k in summary if k not in fields and k not in names]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*names, "dir", *fields])
    for i, (combo, summary) in enumerate(rows, 1):
        writer.writerow(
            [combo[n] for n in names]
            + [combo_dir(combo, i, len(rows))]
            + [_cell(summary.get(f)) for f in fields]
        )
    return buf.getvalue()


def ranking_csv(
    names: list[str], rows: list[tuple[dict[str, str], dict[str, Any]]], objective: str
) -> str:
    """The text of ``ranking.csv``: ``rank,dir,<parameters>,objective,<RANKING_FIGURES>``,
    best first by ``objective`` (:func:`rank`; an n/a objective is an empty cell)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "dir", *names, "objective", *RANKING_FIGURES])
    for place, (number, combo, summary) in enumerate(rank(rows, objective), 1):
        value = objective_value(summary, objective)
        if value is not None and objective == "drawdown":
            value = -value  # shown as the % it is
        writer.writerow(
            [place, combo_dir(combo, number, len(rows))]
            + [combo[n] for n in names]
            + [_cell(value)]
            + [_cell(summary.get(f)) for f in RANKING_FIGURES]
        )
    return buf.getvalue()

"""Parameter sweeps: ``--sweep 'name=v1,v2,v3'`` (repeatable), every combination in parallel.

Each combination is one backtest in its own process
(:class:`concurrent.futures.ProcessPoolExecutor`, at most one per CPU); the
worker reads the data files itself (events are not shipped between
processes) and writes its outputs to ``DIR/<name=value,...>/``. The parent
writes ``DIR/sweep.csv``: one row per combination, in the order the
combinations are listed (the first ``--sweep`` varies slowest), with the
parameters as given and then the summary's fields.

A swept name may be any key of the params file (a strategy parameter, a fee,
a size); values are read as YAML scalars (``5`` an int, ``true`` a bool,
``0.5`` a decimal).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tradebus.backtest.engine import open_events, run_backtest
from tradebus.backtest.report import write_outputs
from tradebus.backtest.setup import SetupError, make_setup

SWEEP_CSV = "sweep.csv"
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


def combo_dir(combo: Mapping[str, str]) -> str:
    """``name=value,...``: the combination's output directory (path separators replaced)."""
    text = ",".join(f"{k}={v}" for k, v in combo.items())
    return text.replace("/", "_").replace(os.sep, "_")


@dataclass(frozen=True)
class Job:
    """One combination's run (picklable: it crosses to a worker process)."""

    strategy: str
    raw: dict[str, Any]
    paths: list[Path]
    fmt: str
    out: Path
    chart: bool = True


def run_job(job: Job) -> dict[str, Any]:
    """Run one combination in this process, write its outputs, return its summary."""
    setup = make_setup(job.strategy, job.raw)
    result = run_backtest(setup, open_events(setup, job.paths, job.fmt))
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
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Run every combination in parallel; write ``out/sweep.csv``; return (combo, summary) rows.

    Every combination is validated before any starts.

    Raises
    ------
    SetupError
        If a combination's parameters are invalid (the combination is named).
    Exception
        Whatever a worker raised (a malformed data file: ``DataFileError``).
    """
    combos = combinations(axes)
    jobs = []
    for combo in combos:
        params = apply_combo(raw, combo)
        try:
            make_setup(strategy, params)
        except SetupError as exc:
            where = combo_dir(combo)
            raise SetupError([(f"[{where}] {f}", m) for f, m in exc.problems]) from None
        jobs.append(Job(strategy, params, list(paths), fmt, out / combo_dir(combo), chart))
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
    (out / SWEEP_CSV).write_text(sweep_csv([n for n, _ in axes], rows), encoding="utf-8")
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
    for combo, summary in rows:
        writer.writerow(
            [combo[n] for n in names] + [combo_dir(combo)] + [_cell(summary.get(f)) for f in fields]
        )
    return buf.getvalue()

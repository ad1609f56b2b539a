"""``tradebus backtest``: run one strategy over recorded market data, offline.

::

    tradebus backtest --strategy ladder --params params.yaml --data FILE [--data FILE ...]
                      --format FORMAT --out DIR [--sweep 'take_profit_pct=0.5,1,2' ...]

``params.yaml`` holds the strategy's parameters plus the market and the
account (:func:`tradebus.backtest.setup.make_setup`)::

    symbol: BTCUSDT
    tick_size: "0.01"
    step_size: "0.00001"
    maker_fee_bps: "1"
    taker_fee_bps: "5"
    balances: {USDT: "10000"}
    total_quote: "1000"
    order_count: 5
    max_drop_pct: "2"
    take_profit_pct: "1"

Writes ``fills.csv``, ``summary.json`` and ``report.png`` to ``--out``
(:mod:`.report`) and prints the summary as a table (rich); with ``--sweep``,
one directory per combination, ``sweep.csv`` and ``ranking.csv``, and prints
the combinations ranked by ``--objective`` (:mod:`.sweep`). Exit status 2 for
a bad params file, a malformed data file (named with its line) or a symbol
the data does not hold (``binance-raw`` files name theirs: the ones they hold
are listed, before anything runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

SECONDS_BETWEEN_LOG_LINES = 5.0
SECONDS_BETWEEN_REDRAWS = 0.2
BAR_WIDTH = 30


def _formats() -> tuple[str, ...] | None:
    try:
        from tradebus.feeds import readers
    except ImportError:
        return None
    return getattr(readers, "FORMATS", None)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``tradebus backtest``."""
    formats = _formats()
    p = sub.add_parser(
        "backtest",
        help="run a strategy over recorded market data (paper fill model, offline)",
        description="Replay recorded market data through one strategy core and the paper "
        "fill model (STRATEGIES.md); write fills.csv, summary.json and report.png.",
    )
    p.add_argument(
        "--strategy",
        required=True,
        help="ladder, martingale, spread, volume or an installed plug-in's (e.g. grid)",
    )
    p.add_argument("--params", type=Path, required=True, help="strategy, market and account YAML")
    p.add_argument(
        "--data", type=Path, action="append", required=True, help="a data file (repeatable)"
    )
    p.add_argument(
        "--format",
        required=True,
        choices=formats,
        help="the data files' format" + (f" ({', '.join(formats)})" if formats else ""),
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="run every combination of these values in parallel (repeatable)",
    )
    p.add_argument(
        "--objective",
        default="pnl",
        choices=("pnl", "sharpe", "sortino", "profit_factor", "drawdown", "win_rate"),
        help="what a sweep's combinations are ranked by (default: pnl, realized + unrealized)",
    )
    p.add_argument("--workers", type=int, help="sweep processes (default: the CPU count)")
    p.add_argument("--no-chart", action="store_true", help="skip report.png")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("var/cache/backtest"),
        help="where the parsed columns of data files are kept, by content hash, so a second "
        "run skips parsing (default var/cache/backtest)",
    )
    p.add_argument("--no-cache", action="store_true", help="parse the data files every run")


class ProgressBar:
    """Events processed, on stderr: a rich progress bar on a terminal, else a line every few
    seconds (a log has no bar to redraw)."""

    def __init__(self, total: int | None, stream: IO[str] | None = None) -> None:
        self.total = total or None
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_draw = self.started
        self._bar: Progress | None = None
        if self.tty:
            self._bar = Progress(
                TextColumn("backtest"),
                BarColumn(bar_width=BAR_WIDTH),
                MofNCompleteColumn(),
                TextColumn("events  {task.fields[rate]:,.0f} ev/s"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                refresh_per_second=1 / SECONDS_BETWEEN_REDRAWS,
            )
            self._task = self._bar.add_task("events", total=self.total, rate=0.0)
            self._bar.start()

    def __call__(self, n: int) -> None:
        """Report ``n`` events done (drawn only when it is time to)."""
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._task, completed=n, rate=n / max(now - self.started, 1e-9))
        elif now - self._last_draw >= SECONDS_BETWEEN_LOG_LINES:
            self._last_draw = now
            self._line(n, now)

    def _line(self, n: int, now: float) -> None:
        rate = n / max(now - self.started, 1e-9)
        text = f"{n:,} events  {rate:,.0f} ev/s"
        if self.total:
            frac = min(n / self.total, 1.0)
            eta = (self.total - n) / rate if rate and n < self.total else 0.0
            text = f"{frac:4.0%} {n:,}/{self.total:,} events  {rate:,.0f} ev/s  eta {eta:.0f}s"
        self.stream.write(f"backtest: {text}\n")
        self.stream.flush()

    def stop(self) -> None:
        """Stop redrawing the bar (idempotent; before an error is printed)."""
        if self._bar is not None:
            self._bar.stop()

    def close(self, n: int) -> None:
        """The final figure: the bar at ``n`` events, or a last log line."""
        if self._bar is not None:
            self._bar.update(self._task, completed=n)
            self._bar.refresh()
            self._bar.stop()
            self._bar = None
        else:
            self._line(n, time.monotonic())


def _estimate(paths: list[Path], fmt: str, symbols: tuple[str, ...]) -> int | None:
    """The progress bar's total, if the readers can estimate it (else no total)."""
    try:
        from tradebus.feeds import readers

        estimate = readers.estimate_events
    except (ImportError, AttributeError):
        return None
    try:
        return sum(estimate(paths, fmt, s) for s in symbols)
    except Exception:  # an estimate is a nicety: the run reports real errors
        return None


class MissingSymbolError(ValueError):
    """The data files hold no event of a symbol the params file trades."""


def check_symbols(paths: list[Path], fmt: str, symbols: tuple[str, ...]) -> int | None:
    """Check that the data holds events of every symbol (formats that name them); the
    events of ``symbols`` (the progress bar's total), None where the format cannot tell.

    Raises
    ------
    MissingSymbolError
        Naming the missing symbols and the ones the data holds, with their event counts.
    OSError
        If a data file cannot be read.
    """
    from tradebus.feeds.readers import events_by_symbol

    counts = events_by_symbol(paths, fmt)
    if counts is None:
        return None
    missing = [s for s in symbols if not counts.get(s)]
    if missing:
        held = ", ".join(f"{s} ({n:,} events)" for s, n in sorted(counts.items())) or "none"
        raise MissingSymbolError(
            f"the data holds no events of {', '.join(missing)}; symbols in the data: {held}"
        )
    return sum(counts[s] for s in symbols)


class SweepProgress:
    """A sweep's combinations done, on stderr: a rich bar on a terminal, else one line each."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._bar: Progress | None = None
        if bool(getattr(stream, "isatty", lambda: False)()):
            self._bar = Progress(
                TextColumn("sweep"),
                BarColumn(bar_width=BAR_WIDTH),
                MofNCompleteColumn(),
                TextColumn("runs  last: {task.fields[last]}"),
                TimeRemainingColumn(),
                console=Console(file=stream),
            )
            self._task = self._bar.add_task("runs", total=None, last="-")
            self._bar.start()

    def __call__(self, i: int, n: int, combo: dict[str, str]) -> None:
        """Combination ``combo`` finished, the ``i``-th of ``n`` to finish."""
        text = ",".join(f"{k}={v}" for k, v in combo.items())
        if self._bar is not None:
            self._bar.update(self._task, completed=i, total=n, last=text)
        else:
            print(f"backtest: {i}/{n} done ({text})", file=self.stream, flush=True)

    def stop(self) -> None:
        """Stop the bar (idempotent)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


RANKED_ROWS_SHOWN = 20
"""A sweep prints its best combinations (``ranking.csv`` holds them all)."""


def ranking_table(
    rows: list[tuple[dict[str, str], dict[str, Any]]], names: list[str], objective: str
) -> Table:
    """A sweep's combinations best first by ``objective`` (:func:`tradebus.backtest.sweep.rank`),
    the first :data:`RANKED_ROWS_SHOWN`, as a rich table (``run``: the number its output
    directory starts with; ``PF``: the profit factor, "no loss" when no cycle lost)."""
    from tradebus.backtest.report import money
    from tradebus.backtest.sweep import combo_dir, rank

    def num(value: Any, fmt: str = ",.2f") -> str:
        return "n/a" if value is None else format(value, fmt)

    table = Table(title=f"sweep ranked by {objective}")
    table.add_column("#")
    table.add_column("run")  # its directory's number: 005-take_profit_pct_5-...
    for column in names:
        table.add_column(column, overflow="fold")
    for column in ("P&L", "Sharpe", "Sortino", "PF", "win rate", "max DD"):
        table.add_column(column, justify="right", overflow="fold")  # never an elided number
    for place, (number, combo, s) in enumerate(rank(rows, objective)[:RANKED_ROWS_SHOWN], 1):
        pnl = money(str(Decimal(s["realized_pnl"]) + Decimal(s["unrealized_pnl"])))
        pf = s.get("profit_factor")
        table.add_row(
            str(place),
            combo_dir(combo, number, len(rows)).split("-", 1)[0],
            *(combo[n] for n in names),
            pnl,
            num(s.get("sharpe")),
            num(s.get("sortino")),
            num(pf) if pf is not None or not s.get("cycles_closed") else "no loss",
            f"{num(s.get('win_rate_pct'), '.1f')} %",
            f"{num(s.get('max_drawdown_pct'), '.2f')} %",
        )
    return table


def summary_table(summary: dict[str, Any], out: Path) -> Table:
    """The run's summary (:func:`tradebus.backtest.report.summary_rows`) as a rich table."""
    from tradebus.backtest.report import summary_rows

    table = Table(title=f"backtest: {summary['strategy']} on {', '.join(summary['symbols'])}")
    table.add_column("figure", style="bold")
    table.add_column("value", overflow="fold")
    for label, text in [*summary_rows(summary), ("outputs", str(out))]:
        table.add_row(label, text)
    return table


def load_params(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The params file as a mapping, and the line of each top-level key.

    Raises
    ------
    ValueError
        If it cannot be read or is not a YAML mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of parameters")
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            lines[str(key.value)] = key.start_mark.line + 1
    return {str(k): v for k, v in raw.items()}, lines


def _where(path: Path, lines: dict[str, int], field: str) -> str:
    top = field.split("]", 1)[-1].strip().split(".", 1)[0].split("[", 1)[0]
    line = lines.get(top)
    return f"{path}:{line}" if line else str(path)


def run(args: argparse.Namespace) -> int:
    """Run ``tradebus backtest``; the exit status."""
    from tradebus.backtest.engine import BacktestError, market_events, run_backtest
    from tradebus.backtest.report import write_outputs
    from tradebus.backtest.setup import SetupError, make_setup
    from tradebus.backtest.sweep import parse_sweeps, run_sweep
    from tradebus.feeds.readers import DataFileError

    err = sys.stderr
    out = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120)
    try:
        raw, lines = load_params(args.params)
        axes = parse_sweeps(args.sweep)
    except ValueError as exc:
        print(f"tradebus backtest: {exc}", file=err)
        return 2
    chart = not args.no_chart
    cache_dir = None if args.no_cache else args.cache_dir
    try:
        base = make_setup(args.strategy, raw)  # the base file itself first: its lines are known
        total = check_symbols(args.data, args.format, base.symbols)
        if axes:
            runs = SweepProgress(err)
            started = time.monotonic()
            try:
                rows = run_sweep(
                    args.strategy,
                    raw,
                    axes,
                    args.data,
                    args.format,
                    args.out,
                    args.workers,
                    runs,
                    chart,
                    args.objective,
                    cache_dir,
                )
            finally:
                runs.stop()
            took = time.monotonic() - started
            out.print(ranking_table(rows, [n for n, _ in axes], args.objective))
            out.print(
                f"{len(rows)} runs in {took:.1f}s -> {args.out}: sweep.csv, ranking.csv, "
                "index.json",
                highlight=False,
            )
            return 0
        setup = base
        if total is None:
            total = _estimate(args.data, args.format, setup.symbols)
        bar = ProgressBar(total, err)
        try:
            events = market_events(setup, args.data, args.format, cache_dir)
            backtest_result = run_backtest(setup, events, bar)
        finally:
            bar.stop()
        bar.close(backtest_result.summary["events"])
        write_outputs(backtest_result, args.out, chart=chart)
    except SetupError as exc:
        for field, message in exc.problems:
            print(f"{_where(args.params, lines, field)}: {field}: {message}", file=err)
        return 2
    except DataFileError as exc:
        print(f"\ntradebus backtest: {exc}", file=err)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"\ntradebus backtest: {exc}", file=err)
        return 2
    except BacktestError as exc:
        print(f"\ntradebus backtest: the strategy failed at {exc}", file=err)
        return 1
    out.print(summary_table(backtest_result.summary, args.out))
    return 0

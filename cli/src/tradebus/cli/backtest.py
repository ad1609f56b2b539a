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
(:mod:`.report`); with ``--sweep``, one directory per combination and
``sweep.csv`` (:mod:`.sweep`). Exit status 2 for a bad params file or a
malformed data file (named with its line).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import IO, Any

import yaml

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
    p.add_argument("--workers", type=int, help="sweep processes (default: the CPU count)")
    p.add_argument("--no-chart", action="store_true", help="skip report.png")


class ProgressBar:
    """Events processed, on stderr: a redrawn bar on a terminal, else a line every few seconds."""

    def __init__(self, total: int | None, stream: IO[str] | None = None) -> None:
        self.total = total or None
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_draw = 0.0 if self.tty else self.started

    def __call__(self, n: int) -> None:
        """Report ``n`` events done (drawn only when it is time to)."""
        now = time.monotonic()
        every = SECONDS_BETWEEN_REDRAWS if self.tty else SECONDS_BETWEEN_LOG_LINES
        if now - self._last_draw >= every:
            self._last_draw = now
            self._draw(n, now)

    def _draw(self, n: int, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = n / elapsed
        text = f"{n:,} events  {rate:,.0f} ev/s"
        if self.total:
            frac = min(n / self.total, 1.0)
            eta = (self.total - n) / rate if rate and n < self.total else 0.0
            text = f"{frac:4.0%} {n:,}/{self.total:,} events  {rate:,.0f} ev/s  eta {eta:.0f}s"
            if self.tty:
                fill = int(frac * BAR_WIDTH)
                text = f"[{'#' * fill}{'.' * (BAR_WIDTH - fill)}] {text}"
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
        else:
            self.stream.write(f"backtest: {text}\n")
        self.stream.flush()

    def close(self, n: int) -> None:
        """The final figure (and a newline on a terminal)."""
        self._draw(n, time.monotonic())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


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
    from tradebus.backtest.engine import BacktestError, open_events, run_backtest
    from tradebus.backtest.report import write_outputs
    from tradebus.backtest.setup import SetupError, make_setup
    from tradebus.backtest.sweep import parse_sweeps, run_sweep
    from tradebus.feeds.readers import DataFileError

    err = sys.stderr
    try:
        raw, lines = load_params(args.params)
        axes = parse_sweeps(args.sweep)
    except ValueError as exc:
        print(f"tradebus backtest: {exc}", file=err)
        return 2
    chart = not args.no_chart
    try:
        if axes:
            make_setup(args.strategy, raw)  # the base file itself first: its lines are known

            def done(i: int, n: int, combo: dict[str, str]) -> None:
                text = ",".join(f"{k}={v}" for k, v in combo.items())
                print(f"backtest: {i}/{n} done ({text})", file=err, flush=True)

            started = time.monotonic()
            rows = run_sweep(
                args.strategy,
                raw,
                axes,
                args.data,
                args.format,
                args.out,
                args.workers,
                done,
                chart,
            )
            took = time.monotonic() - started
            print(f"{len(rows)} runs in {took:.1f}s -> {args.out / 'sweep.csv'}")
            return 0
        setup = make_setup(args.strategy, raw)
        bar = ProgressBar(_estimate(args.data, args.format, setup.symbols), err)
        backtest_result = run_backtest(setup, open_events(setup, args.data, args.format), bar)
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
    s = backtest_result.summary
    print(
        f"{s['events']:,} events ({s['events_per_second'] or 0:,} ev/s): {s['fills']} fills, "
        f"{s['cycles_completed']} cycles, realized P&L {s['realized_pnl']}, fees {s['fees']}, "
        f"position {s['final_position']}, max drawdown {s['max_drawdown']} -> {args.out}"
    )
    return 0

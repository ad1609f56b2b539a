"""``python -m bench`` (``make bench``): every benchmark row in sequence, one table.

Steps, in this order (``--only`` picks some): ``floor`` (:mod:`bench.floor`),
``feed`` (:mod:`bench.feedbench`), ``tick`` (:mod:`bench.tickbench`),
``exec`` (:mod:`bench.execbench`), ``recon`` (:mod:`bench.reconbench`),
``engine`` (:mod:`bench.enginebench`), ``startup`` (:mod:`bench.startup`),
``gateway`` (:mod:`bench.gatewaybench`), ``web`` (:mod:`bench.webbench`),
``peers`` (:mod:`bench.peers`: hftbacktest and NautilusTrader on the same trades;
"not installed" until ``make bench-peers``).
Each step's module docstring says its method and units. Progress goes to
stderr, the table (:mod:`bench.table`) to stdout.

Exit status 0 when every step ran (the figures are never judged), 1 when a
step could not run (its row says FAILED and why; the message on stderr too),
130 on Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    enginebench,
    execbench,
    feedbench,
    floor,
    gatewaybench,
    peers,
    reconbench,
    startup,
    table,
    tickbench,
    webbench,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
STEPS = (
    "floor", "feed", "tick", "exec", "recon", "engine", "startup", "gateway", "web", "peers",
)  # fmt: skip


class Progress:
    """One status line on stderr: rewritten in place on a terminal, else every 5 s at most."""

    def __init__(self, steps: int) -> None:
        self.started = time.monotonic()
        self.steps = steps
        self.step = 0
        self.name = ""
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.text = ""

    def begin(self, name: str) -> None:
        self.step += 1
        self.name = name
        self.show(f"{name}: starting", force=True)
        self.text = f"{name}: running"

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        self.text = text
        if not force and now - self.last < (0.3 if self.tty else 5.0):
            return
        self.last = now
        line = f"[{now - self.started:6.1f}s] {self.step}/{self.steps} {text}"
        if self.tty:
            print(f"\r\x1b[2K{line[:150]}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def say(self, text: str) -> None:
        """A line of narration (kept on screen)."""
        print(("\r\x1b[2K" if self.tty else "") + text, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(STEPS), help=f"steps to run (of {','.join(STEPS)})")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"raw-feed recordings (default $TRADEBUS_DATA_DIR or {DEFAULT_DATA})",
    )
    p.add_argument("--bots", default="1000,10000", help="tick: bot counts (default 1000,10000)")
    p.add_argument("--rate", type=float, default=10_000, help="tick: fixed offered ticks/s")
    p.add_argument(
        "--tick-seconds",
        type=float,
        default=5.0,
        help="tick: seconds of ticks offered in the fixed and the sustained phase",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=15.0,
        help="tick: at most this long waiting for the host after a phase",
    )
    p.add_argument(
        "--burst-drain-seconds",
        type=float,
        default=60.0,
        help="tick: at most this long waiting for the start-up burst to be published",
    )
    p.add_argument(
        "--exec-seconds",
        type=float,
        default=60.0,
        help="exec: sustained throughput run (the issue's 60 s)",
    )
    p.add_argument(
        "--exec-latency-seconds",
        type=float,
        default=15.0,
        help="exec: latency run at 1,000 intents/s",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="short everything (tick 1,000 bots only, exec 15 + 5 s): a smoke run",
    )
    args = p.parse_args(argv)  # fmt: skip
    args.steps = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.steps) - set(STEPS)
    if unknown:
        p.error(f"unknown step(s) {', '.join(sorted(unknown))}; steps are {', '.join(STEPS)}")
    args.data = (args.data or Path(os.environ.get("TRADEBUS_DATA_DIR") or DEFAULT_DATA)).resolve()
    if not args.data.is_dir():
        p.error(f"data directory {args.data} does not exist (pass --data DIR)")
    if args.quick:
        args.bots, args.tick_seconds, args.drain_seconds = "1000", 3.0, 10.0
        args.burst_drain_seconds = 15.0
        args.exec_seconds, args.exec_latency_seconds = 15.0, 5.0
    args.bot_counts = tuple(int(b) for b in args.bots.split(","))
    return args


async def step(name: str, args: argparse.Namespace, progress: Progress) -> list[dict]:
    """Run one step; its rows."""
    d = args.data
    if name == "floor":
        return await floor.run()
    if name == "feed":
        return await feedbench.run(d)
    if name == "tick":
        return await tickbench.run(
            d, args.bot_counts, args.rate, args.tick_seconds, args.drain_seconds,
            args.burst_drain_seconds,
            progress=progress.show,
        )  # fmt: skip
    if name == "exec":
        rows = []
        for shards in (1, 2):  # one execution process, then two shards of the accounts
            rows += await execbench.run(
                args.exec_seconds, 1000, args.exec_latency_seconds, shards=shards
            )
        if args.exec_seconds != 60:
            for r in rows:
                if r["row"].startswith("execution throughput"):
                    r["detail"] += f"; SHORTENED: {args.exec_seconds:.0f} s, not the issue's 60 s"
        return [r for r in rows if not r["row"].startswith("wall")]
    if name == "recon":
        return await reconbench.run(10_000)
    if name == "engine":
        rows, _ = await asyncio.to_thread(enginebench.run, d, False)
        return rows
    if name == "gateway":
        return await gatewaybench.run(5.0 if args.quick else 10.0, progress=progress.show)
    if name == "web":
        return await webbench.run(5.0 if args.quick else 10.0, progress=progress.show)
    if name == "peers":
        return await asyncio.to_thread(peers.run, d)
    return await asyncio.to_thread(startup.run, d)


async def ticker(progress: Progress) -> None:
    """Keep the status line's clock moving while a step is quiet."""
    while True:
        await asyncio.sleep(1.0)
        progress.show(progress.text)


async def run_all(args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    """Every step asked for, in order; the rows and the failures."""
    progress = Progress(len(args.steps))
    rows: list[dict] = []
    failed: list[str] = []
    tick = asyncio.create_task(ticker(progress))
    try:
        for name in args.steps:
            progress.begin(name)
            t = time.monotonic()
            try:
                got = await step(name, args, progress)
            except (Exception, SystemExit) as exc:  # a step that cannot run: say so, go on
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
                got = [{"row": f"{name}: FAILED", "value": None, "unit": "", "detail": str(exc)}]
            progress.say(f"bench: {name} done in {time.monotonic() - t:.0f} s")
            rows += got
    finally:
        tick.cancel()
    for r in rows:
        r.setdefault("target", table.target_of(r["row"]))
    return rows, failed


def header(args: argparse.Namespace, started: datetime) -> str:
    files = sorted(args.data.glob("binance-spot_*_rawfeed_*.txt*"))
    lines = [
        f"== tradebus bench, {started:%Y-%m-%d %H:%M:%S} UTC ==",
        f"machine: {table.machine()}",
        f"load average 1/5/15 min at the start: {args.load_at_start} (other people's processes"
        " share these cores; nothing is pinned or isolated)",
        f"data: {args.data}",
        *(f"  {f.name} ({f.stat().st_size:,} B)" for f in files),
        f"steps: {', '.join(args.steps)}; tick: bots {args.bots}, rate {args.rate:,.0f}/s,"
        f" {args.tick_seconds:g} s phases, drain <= {args.burst_drain_seconds:g} s after the"
        f" start-up, {args.drain_seconds:g} s after the others;"
        f" exec: {args.exec_seconds:g} s sustained + {args.exec_latency_seconds:g} s @ 1,000/s",
    ]
    return "\n".join(lines)


def cli(argv: list[str] | None = None) -> int:
    """Entry point: parse, run every step, print the table; the exit status."""
    args = parse_args(argv)
    started = datetime.now(UTC)
    args.load_at_start = table.loadavg()
    t = time.monotonic()
    try:
        rows, failed = asyncio.run(run_all(args))
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        return 130
    print(header(args, started))
    print(table.render(rows))
    print(table.FOOTER)
    wall = time.monotonic() - t
    print(f"total wall time: {wall:,.1f} s; load average at the end: {table.loadavg()}")
    for f in failed:
        print(f"bench: could not run {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(cli())

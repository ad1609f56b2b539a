"""Benchmark: recorded Binance feeds -> marketdata -> NATS -> strategy host with N ladder bots.

1. Generate N ladder bots over BTCUSDT/ETHUSDT and 50-odd users, one paper
   account per user (:mod:`bench.configs`).
2. Start nats-server and PostgreSQL in a temporary directory, migrate, start
   execution (unless ``--no-execution``) and the strategy host, wait until
   they are ready.
3. Subscribe this process to ``md.>`` and ``intent.>`` (:mod:`bench.recorder`),
   then start marketdata replaying the four raw-feed files as fast as it can.
4. Poll the host's tick counter every 0.2 s. The run ends when the replay is
   over, the host has processed every tick seen on the bus, execution has
   drained its intents, and no intent has arrived for a second.
5. Stop everything, decode what was recorded and print the figures
   (:mod:`bench.analysis`, :mod:`bench.report`).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import analysis, configs, report
from bench.recorder import BusRecorder
from tradebus.cli.processes import Samples, total
from tradebus.cli.stack import LocalStack, StackError
from tradebus.strategy.registry import BotSpec

POLL_INTERVAL = 0.2
QUIET_SECONDS = 1.0
SETTLE_TIMEOUT = 900.0
HOST_TICKS = "tradebus_strategy_ticks_received_total"
EXEC_TICKS = "tradebus_execution_ticks_received_total"


@dataclass(frozen=True)
class Options:
    """What the benchmark was asked to do (see ``python -m bench --help``)."""

    bots: int
    data: Path
    execution: bool
    keep: bool
    speed: str = "max"


def replay_files(data: Path, symbols: list[str]) -> list[Path]:
    """The Binance raw-feed recordings of ``symbols`` in ``data``, sorted.

    Raises
    ------
    StackError
        If a symbol has none.
    """
    files = []
    for symbol in symbols:
        found = sorted(data.glob(f"binance-spot_{symbol}_rawfeed_*.txt*"))
        if not found:
            raise StackError(
                f"no recording binance-spot_{symbol}_rawfeed_*.txt.gz in {data} "
                "(pass --data DIR or set TRADEBUS_DATA_DIR)"
            )
        files += found
    return files


class HostBench:
    """One run of the benchmark (see the module docstring)."""

    def __init__(self, opts: Options, root: Path) -> None:
        self.opts = opts
        self.stack = LocalStack(root, say=say)
        self.recorder: BusRecorder | None = None
        self.polls: list[tuple[int, float]] = []
        self.started = time.monotonic()
        self.last_progress = 0.0
        self.replay_started = 0.0
        self.replay_ended = 0.0
        self.host_ticks_at_replay_end = 0.0
        self.settled = True

    # ----------------------------------------------------------------- launch
    async def launch(self, bots_file: Path, accounts_file: Path, files: list[Path]) -> None:
        """Servers, execution and strategy, the recorder, then marketdata."""
        say(f"bench: work directory {self.stack.root}")
        await self.stack.start_servers()
        await self.stack.connect(count_ticks=False)
        await self.stack.migrate()
        services = ["strategy"]
        if self.opts.execution:
            self.stack.start_service(
                "execution",
                {
                    "TRADEBUS_DATABASE_URL": self.stack.database_url,
                    "TRADEBUS_ACCOUNTS_FILE": str(accounts_file),
                },
            )
            services.append("execution")
        self.stack.start_service("strategy", {"TRADEBUS_BOTS_FILE": str(bots_file)})
        say(f"bench: waiting for {' and '.join(services)} to be ready")
        await self.stack.wait_ready(*services)
        self.recorder = BusRecorder(self.stack.nats_url)
        await self.recorder.start()
        symbols = sorted({f.name.split("_")[1] for f in files})
        self.stack.start_service(
            "marketdata",
            {
                "TRADEBUS_REPLAY_FILES": ",".join(str(f) for f in files),
                "TRADEBUS_REPLAY_SPEED": self.opts.speed,
                "TRADEBUS_SYMBOLS": ",".join(symbols),
            },
        )
        self.replay_started = time.monotonic()
        say(f"bench: replaying {len(files)} files at speed {self.opts.speed}")

    # ------------------------------------------------------------------ watch
    def running_services(self) -> list[str]:
        """Services that must stay up for the whole run."""
        return ["strategy", "execution"] if self.opts.execution else ["strategy"]

    async def poll(self) -> Samples:
        """Scrape the host's metrics and remember its tick counter with the time."""
        samples = await asyncio.to_thread(self.stack.services["strategy"].metrics)
        if HOST_TICKS in samples:
            self.polls.append((time.perf_counter_ns(), total(samples, HOST_TICKS)))
        return samples

    def host_ticks(self) -> float:
        """The host's tick counter at the last poll."""
        return self.polls[-1][1] if self.polls else 0.0

    def progress(self, phase: str, final: bool = False) -> None:
        """The progress line on stderr: in place on a terminal, every 5 s otherwise."""
        tty = sys.stderr.isatty()
        now = time.monotonic()
        if not final and now - self.last_progress < (0.5 if tty else 5.0):
            return
        self.last_progress = now
        assert self.recorder is not None
        line = (
            f"[{now - self.started:6.1f}s] {phase:<8} ticks {self.recorder.ticks:,}"
            f" | host {int(self.host_ticks()):,} | intents {self.recorder.intents:,}"
        )
        end = "\n" if final or not tty else ""
        print(f"\r\x1b[2K{line}" if tty else line, end=end, file=sys.stderr, flush=True)

    async def watch_replay(self) -> None:
        """Poll until marketdata exits; raise if it fails or another service dies."""
        marketdata = self.stack.services["marketdata"]
        while True:
            self.stack.check_running(*self.running_services())
            code = marketdata.returncode()
            if code is not None:
                if code != 0:
                    self.stack.check_running("marketdata")
                break
            await self.poll()
            self.progress("replay")
            await asyncio.sleep(POLL_INTERVAL)
        self.replay_ended = time.monotonic()
        self.host_ticks_at_replay_end = self.host_ticks()

    async def caught_up(self) -> tuple[bool, tuple[float, ...]]:
        """Whether the stack has processed every tick and intent, and a snapshot of counters."""
        assert self.recorder is not None and self.recorder.nc is not None
        seen = self.recorder.ticks
        done = self.host_ticks() >= seen
        snapshot: tuple[float, ...] = (seen, self.host_ticks(), self.recorder.intents)
        if self.opts.execution:
            execution = self.stack.services["execution"]
            exec_ticks = total(await asyncio.to_thread(execution.metrics), EXEC_TICKS)
            pending = await self.stack.intents_pending()
            done = done and exec_ticks >= seen and pending == 0
            snapshot += (exec_ticks, pending)
        return done, snapshot

    async def settle(self) -> None:
        """After the replay: wait until everything is processed and intents stopped."""
        assert self.recorder is not None
        deadline = time.monotonic() + SETTLE_TIMEOUT
        previous: tuple[float, ...] = ()
        while time.monotonic() < deadline:
            self.stack.check_running(*self.running_services())
            await self.poll()
            self.progress("settling")
            done, snapshot = await self.caught_up()
            quiet = self.recorder.last_intent_age() >= QUIET_SECONDS
            if done and quiet and snapshot == previous:
                return
            previous = snapshot
            await asyncio.sleep(POLL_INTERVAL)
        self.settled = False

    # ---------------------------------------------------------------- collect
    async def collect(self, bots: list[BotSpec], files: list[Path]) -> report.Result:
        """Everything the report needs, read before the services stop."""
        assert self.recorder is not None
        self.progress("done", final=True)
        recording = self.recorder.recording.cut()
        strategy_metrics = await self.poll()
        exec_metrics = (
            await asyncio.to_thread(self.stack.services["execution"].metrics)
            if self.opts.execution
            else {}
        )
        peak_rss = self.stack.services["strategy"].peak_rss_kib()
        ticks = analysis.tick_figures(recording)
        caught_up = analysis.caught_up_at(self.polls, ticks.total)
        return report.Result(
            bots=bots,
            execution=self.opts.execution,
            speed=self.opts.speed,
            files=analysis.file_ticks(files, ticks),
            replay_seconds=self.replay_ended - self.replay_started,
            ticks=ticks,
            host_caught_up_ns=caught_up,
            host_behind_at_replay_end=ticks.total - int(self.host_ticks_at_replay_end),
            intents=analysis.intent_figures(recording, ticks),
            strategy_metrics=strategy_metrics,
            exec_metrics=exec_metrics,
            strategy_peak_rss_kib=peak_rss,
            settled=self.settled,
            intents_after_catch_up=analysis.count_after(recording.intent_times, caught_up),
        )

    async def shutdown(self) -> None:
        """Stop strategy, then execution, the recorder and the servers."""
        for name in ("marketdata", "strategy", "execution"):
            if name in self.stack.services:
                await self.stack.stop_service(name)
        if self.recorder is not None:
            await self.recorder.close()
        await self.stack.close()


def say(text: str) -> None:
    """A line of the benchmark's own narration, on stderr (the table goes to stdout)."""
    print(text, file=sys.stderr, flush=True)


async def run_bench(bench: HostBench, work: Path) -> report.Result:
    """Launch, replay, settle, collect; always shuts the stack down."""
    bots_file, accounts_file, bots = configs.write_configs(work, bench.opts.bots)
    files = replay_files(bench.opts.data, sorted({b.symbol for b in bots}))
    try:
        await bench.launch(bots_file, accounts_file, files)
        await bench.watch_replay()
        await bench.settle()
        return await bench.collect(bots, files)
    finally:
        await bench.shutdown()


def cleanup(work: Path, keep: bool, failed: bool) -> None:
    """Remove the work directory; after a failure keep its configs and logs, and say where."""
    if keep:
        say(f"bench: kept {work} (configs, logs in {work / 'logs'})")
    elif failed:
        for sub in ("nats", "pg"):
            shutil.rmtree(work / sub, ignore_errors=True)
        say(f"bench: configs and logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


async def main(opts: Options) -> int:
    """Run the benchmark and print its table; 0 when the stack ran, 1 when it could not."""
    work = Path(tempfile.mkdtemp(prefix="tradebus-bench-"))
    bench = HostBench(opts, work)
    failed = False
    try:
        result = await run_bench(bench, work)
    except StackError as exc:
        failed = True
        say(f"bench: error: {exc}")
        return 1
    finally:
        cleanup(work, keep=opts.keep, failed=failed)
    result.wall_seconds = time.monotonic() - bench.started
    print(report.render(result, opts.data), flush=True)
    return 0

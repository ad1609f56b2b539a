"""Tick to intent: recorded ticks paced into a strategy host with N ladder bots.

Method
------
1. The four BTCUSDT/ETHUSDT raw-feed files are parsed *before* any clock
   starts, with marketdata's own code (:func:`bench.feedbench.feed_run`:
   ``ReplaySource`` + ``BinanceParser`` + ``Feed``, whose publish function here
   keeps each ``(subject, payload)``): the same subjects and bytes
   (``tradebus.common.codec``) marketdata would publish, 166,351 ticks.
2. A local stack (:class:`~tradebus.cli.stack.LocalStack`): nats-server,
   PostgreSQL, execution (paper venue, one account per user) and one strategy
   host with N ladder bots (:mod:`bench.configs`). Execution runs so bots get
   fills: they take profit and start new cycles, so intents keep coming from
   ticks after the first cycle. Host start-up = start to ``ready``.
3. This process publishes the ticks itself with plain ``nc.publish``, noting
   ``time.perf_counter_ns()`` just before each call, and records the arrival
   time (same clock) of every message on ``intent.>`` (core NATS sees the
   JetStream-bound intents when the host sends them).

   * **start-up**: the first ``min(2 * rate, n / 8)`` ticks at ``rate``
     ticks/s (a tick is sent once its due time ``i / rate`` has passed; the
     publisher wakes every ~0.5 ms): every bot's first ladder, the burst.
   * **fixed**: the next ``rate * offer_seconds`` ticks (at most a third of
     what is left) at ``rate``: the steady state after the burst.
   * **max**: half the ticks left (market time goes on) as fast as this
     process publishes them (~150,000/s): the host's highest rate.
   * **90 % of max**: the next ``0.9 * max rate * offer_seconds`` ticks paced
     at 90 % of the rate the host reached in the max phase: latency at the
     highest rate it sustains.

   After each phase the run waits (at most ``burst_drain_seconds`` after the
   start-up, ``drain_seconds`` after the others) until the host's
   counter ``tradebus_strategy_ticks_received_total`` (scraped every 0.2 s with
   a ``name[]`` filter, so the scrape costs the host little) has reached the
   ticks published (or has not moved for 3 s: the rest never reached the host)
   and no intent came for 1 s. Execution is not waited for
   (it lags far behind the first-cycle burst). Noted in the rows: the host's
   backlog at a phase's start, the CPU use (``/proc``, from the first publish
   to the host catching up) of host, execution, nats-server and this process,
   execution's pending intents after each phase and its accepted orders at
   the end.
4. Tick-to-intent latency = an intent's arrival minus the publish time of its
   trigger tick (``PlaceOrder.trigger_ts`` = the tick's ``ts_recv``; first tick
   with that ``(symbol, ts_recv)``); an intent id seen again (the host
   re-sends a publish not acknowledged in time) counts once, at its first
   arrival. Two sets: **start-up burst** = first-cycle
   buys (intent id ``<bot>:<run>.1:b<k>``: every bot's first ladder, all on the
   first ticks); **later** = every other ``PlaceOrder`` (buys of cycles >= 2,
   take-profit sells), nearly all emitted on a tick (a new cycle starts on the
   first price after the last one closed; a take-profit sell on the price that
   reaches it); the few emitted on an order event carry the bot's last tick,
   so theirs includes execution's round trip.
5. Host rate = ticks of the phase / (first publish -> counter reached the
   phase's end); when the cap ends the wait first, ticks processed / elapsed.
   Peak RSS = the host's ``VmHWM`` at the end of the run.

Rows are dicts ``{"row", "value", "unit", "detail"}``; ms, ticks/s, MiB, KiB.
Prints figures; never asserts on them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nats
from nats.aio.msg import Msg

from bench import configs
from bench import tickphase as tp
from bench.tickphase import Phase, Ticks
from tradebus.cli.processes import total
from tradebus.cli.stack import LocalStack
from tradebus.common import subjects
from tradebus.common.codec import decode_intent
from tradebus.common.messages import PlaceOrder

POLL = 0.2
QUIET = 1.0
IDLE = 3.0

Progress = Callable[[str], None]
"""Where a run reports what it is doing (``print`` by default)."""


class Run:
    """One stack with ``bots`` ladder bots, its recorder and its tick counter polls."""

    def __init__(self, ticks: Ticks, bots: int, root: Path, progress: Progress) -> None:
        self.ticks = ticks
        self.bots = bots
        self.progress = progress
        self.stack = LocalStack(root, say=lambda _line: None)
        self.sent = [0] * len(ticks.payloads)
        self.intent_t: list[int] = []
        self.intent_data: list[bytes] = []
        self.polls: list[tuple[int, float]] = []
        self.ready_s = 0.0
        self.resent = 0
        self.nc: nats.NATS | None = None

    async def start(self) -> None:
        """Servers, execution, the host (timed to ready), the intent recorder."""
        root = self.stack.root
        bots_file, accounts_file, _ = configs.write_configs(root, self.bots)
        await self.stack.start_servers()
        await self.stack.connect(count_ticks=False)
        await self.stack.migrate()
        self.stack.start_service("execution", {
            "TRADEBUS_DATABASE_URL": self.stack.database_url,
            "TRADEBUS_ACCOUNTS_FILE": str(accounts_file),

            "TRADEBUS_INTENT_RATE": "0",  # the bench measures speed, not the quota
        })  # fmt: skip
        await self.stack.wait_ready("execution")
        t = time.monotonic()
        self.stack.start_service("strategy", {"TRADEBUS_BOTS_FILE": str(bots_file)})
        self.progress(f"tick: {self.bots:,} bots: waiting for the strategy host to be ready")
        await self.stack.wait_ready("strategy", timeout=600)
        self.ready_s = time.monotonic() - t
        self.nc = await nats.connect(self.stack.nats_url, name="bench-ticks", pending_size=1 << 26)
        times, data = self.intent_t, self.intent_data

        async def on_intent(msg: Msg) -> None:
            times.append(time.perf_counter_ns())
            data.append(msg.data)

        await self.nc.subscribe(
            subjects.INTENT_ALL, cb=on_intent, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        await self.nc.flush()

    async def poller(self) -> None:
        """Append ``(perf_counter_ns, host tick counter)`` every ``POLL`` s."""
        port = self.stack.services["strategy"].metrics_port
        while True:
            value = await asyncio.to_thread(tp.host_ticks, port)
            if value is not None:
                self.polls.append((time.perf_counter_ns(), value))
            await asyncio.sleep(POLL)

    def counter(self) -> float:
        return self.polls[-1][1] if self.polls else 0.0

    async def publish(self, phase: Phase) -> None:
        """Publish ticks ``lo:hi`` paced at ``phase.rate`` (or unpaced), stamping each."""
        assert self.nc is not None
        pub, subj, pay, sent = self.nc.publish, self.ticks.subjects, self.ticks.payloads, self.sent
        clock = time.perf_counter_ns
        i, t0 = phase.lo, clock()
        phase.t_first = t0
        last_note = 0.0
        while i < phase.hi:
            if phase.rate:
                due = min(phase.hi, phase.lo + int((clock() - t0) * phase.rate / 1e9) + 1)
                if due <= i:
                    await asyncio.sleep(0.0005)
                    continue
            else:
                due = min(phase.hi, i + 500)
            while i < due:
                sent[i] = clock()
                await pub(subj[i], pay[i])
                i += 1
            if not phase.rate:
                await asyncio.sleep(0)
            if time.monotonic() - last_note > 1.0:
                last_note = time.monotonic()
                self.note(phase, f"published {i - phase.lo:,}/{phase.hi - phase.lo:,}")
        phase.t_last = sent[phase.hi - 1]
        await self.nc.flush()

    def note(self, phase: Phase, what: str) -> None:
        self.progress(
            f"tick: {self.bots:,} bots, {phase.name}: {what} | host {int(self.counter()):,}"
            f" | intents {len(self.intent_t):,}"
        )

    def unchanged_for(self) -> float:
        """Seconds since the host's tick counter last changed (0 when unknown)."""
        if not self.polls:
            return 0.0
        last = self.polls[-1][1]
        since = next((t for t, v in reversed(self.polls) if v != last), self.polls[0][0])
        return (time.perf_counter_ns() - since) / 1e9

    async def drain(self, phase: Phase, cap: float) -> None:
        """Wait until the host caught up and intents stopped (at most ``cap`` s).

        Caught up: the counter reached the ticks published, or it has not moved
        for ``IDLE`` s (the ticks missing never reached the host: lost).
        """
        deadline = time.monotonic() + cap
        while time.monotonic() < deadline:
            self.stack.check_running("strategy", "execution")
            value = self.counter()
            last = self.intent_t[-1] if self.intent_t else 0
            silent = (time.perf_counter_ns() - last) / 1e9
            stalled = value < phase.hi and self.unchanged_for() >= IDLE
            caught = value >= phase.hi or stalled
            if caught and phase.t_caught_up is None:
                phase.t_caught_up = next(t for t, v in self.polls if v >= value)
                phase.stalled = stalled
                phase.cpu_end = self.cpu()
            if caught and silent >= QUIET:
                phase.settled = True
                break
            self.note(phase, f"draining ({deadline - time.monotonic():.0f} s left)")
            await asyncio.sleep(0.2)
        phase.t_end = time.perf_counter_ns()
        phase.cpu_end = phase.cpu_end or self.cpu()
        before = max((v for t, v in self.polls if t <= phase.t_first), default=0.0)
        phase.processed = self.counter() - before
        phase.short = phase.hi - int(self.counter())

    def latencies(self, phases: list[Phase]) -> int:
        """Split matched ``PlaceOrder`` latencies (ms) by phase and set (module docstring, 4)."""
        placed = 0
        seen: set[str] = set()
        for p in phases:
            p.latencies = {"burst": [], "later": []}
        for t, data in zip(self.intent_t, self.intent_data, strict=False):
            intent = decode_intent(data)
            if intent.intent_id in seen:  # sent again (no publish ack in time): first one counts
                self.resent += 1
                continue
            seen.add(intent.intent_id)
            if not isinstance(intent, PlaceOrder):
                continue
            placed += 1
            if intent.trigger_ts is None:
                continue
            i = self.ticks.first.get((intent.symbol, intent.trigger_ts))
            if i is None or not self.sent[i]:
                continue
            kind, bot_run = tp.intent_set(intent.intent_id)
            for p in phases:
                if p.lo <= i < p.hi:
                    p.latencies[kind].append((t - self.sent[i]) / 1e6)
                    if kind == "burst":
                        p.burst_runs.add(bot_run)
        return placed

    def burst_published(self, t0: int) -> tuple[int, float]:
        """First-cycle buys seen on ``intent.>`` (intent ids ``<bot>:<run>.1:b<k>``, each
        once) and the seconds from ``t0`` (``perf_counter_ns``, the first tick published)
        to the arrival of the last of them."""
        seen: set[str] = set()
        last = t0
        for t, data in zip(self.intent_t, self.intent_data, strict=False):
            iid = decode_intent(data).intent_id
            if iid in seen or tp.intent_set(iid)[0] != "burst":
                continue
            seen.add(iid)
            last = max(last, t)
        return len(seen), (last - t0) / 1e9

    def cpu(self) -> tuple[float, ...]:
        """(monotonic s, CPU s of: the host, execution, nats-server, this process)."""
        nats_proc = self.stack.nats_server.proc if self.stack.nats_server else None
        pids = [self.stack.services[s].pid for s in ("strategy", "execution")]
        pids += [nats_proc.pid if nats_proc else None, os.getpid()]
        return (time.monotonic(), *(tp.cpu_seconds(pid) for pid in pids))

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()
        await self.stack.close()


async def run_phase(run: Run, p: Phase, drain_s: float) -> str:
    """Publish and drain one phase; a note of the host's backlog, CPU use and execution's."""
    behind = p.lo - int(run.counter())
    before = run.cpu()
    await run.publish(p)
    await run.drain(p, drain_s)
    wall = max(p.cpu_end[0] - before[0], 1e-9)
    host, ex, srv, me = ((b - a) / wall for a, b in zip(before[1:], p.cpu_end[1:], strict=True))
    pending = await run.stack.intents_pending()
    return (
        f"host counter {behind:,} short of the ticks published at the start; CPU (publish ->"
        f" host caught up, share of one core) host {host:.0%}, execution {ex:.0%},"
        f" nats-server {srv:.0%}, bench {me:.0%};"
        f" {pending:,} intents pending in execution after the phase"
    )


async def one_run(
    ticks: Ticks,
    bots: int,
    rate: float,
    offer_s: float,
    drains: tuple[float, float],
    progress: Progress,
) -> tuple[list[dict], int | None]:
    """One stack, its four phases (module docstring); the rows and the host's peak RSS (KiB)."""
    n = len(ticks.payloads)
    phases = tp.plan(n, rate, offer_s)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tickbench-") as tmp:
        run = Run(ticks, bots, Path(tmp), progress)
        poller = None
        try:
            await run.start()
            poller = asyncio.create_task(run.poller())
            for p in phases:
                notes.append(await run_phase(run, p, drains[p is not phases[0]]))
            top = 0.9 * phases[-1].host_rate
            b = phases[-1].hi
            end = min(n, b + max(1, int(top * offer_s)))
            phases.append(Phase("90% of max", b, end, top, f"@ {top:,.0f} ticks/s (90% of max)"))
            notes.append(await run_phase(run, phases[-1], drains[1]))
            rss = run.stack.services["strategy"].peak_rss_kib()
            m = await asyncio.to_thread(run.stack.services["execution"].metrics)
            accepted = total(m, "tradebus_execution_orders_total", status="accepted")
            pending = await run.stack.intents_pending()
            counted = int(run.counter())
            slow = tp.slow_consumers(run.stack.root / "nats" / "nats.log")
            drops = tp.disconnects(run.stack.services["strategy"].log_path)
        finally:
            if poller is not None:
                poller.cancel()
            await run.close()
    placed = run.latencies(phases)
    burst, burst_s = run.burst_published(phases[0].t_first)
    rows = [{
        "row": f"host start-up, {bots:,} bots", "value": round(run.ready_s, 1), "unit": "s",
        "detail": "tradebus-strategy start -> ready (bot file applied, bots running)",
    }, {
        "row": f"first-cycle burst, {bots:,} bots: {burst:,} intents published in",
        "value": round(burst_s, 2), "unit": "s",
        "detail": "first tick published -> the last first-cycle buy (<bot>:<run>.1:b<k>, each"
        " id once) seen on intent.> (the host sends it to JetStream)",
    }]  # fmt: skip
    for i, (p, note) in enumerate(zip(phases, notes, strict=True)):
        for r in tp.latency_rows(bots, p, later=i > 0):
            r["detail"] += f"; {note}"
            rows.append(r)
        if not p.rate:
            rows.append(tp.host_row(bots, p))
    rows.append({
        "row": f"tick run, {bots:,} bots: orders accepted by execution", "value": round(accepted),
        "unit": "orders", "detail": f"orders accepted of {placed:,} PlaceOrder intents seen;"
        f" {pending:,} intents pending at the end (no fill, no later intent until accepted);"
        f" host counted {counted:,} of the {phases[-1].hi:,} ticks published by the end;"
        f" {run.resent:,} intents seen again on intent.> (re-sent by the host, ignored);"
        f" nats-server logged {slow:,} slow-consumer events; the host logged {drops:,}"
        " NATS disconnections",
    })  # fmt: skip
    return rows, rss


async def run(
    data: Path,
    bots: tuple[int, ...] = (1000, 10_000),
    rate: float = 10_000,
    offer_seconds: float = 5.0,
    drain_seconds: float = 15.0,
    burst_drain_seconds: float = 60.0,
    progress: Progress = print,
) -> list[dict]:
    """Prepare the ticks once, then one stack per bot count; the rows (module docstring)."""
    ticks = await tp.prepare(data)
    rows: list[dict] = []
    rss: dict[int, int] = {}
    for n in bots:
        drains = (burst_drain_seconds, drain_seconds)
        got, peak = await one_run(ticks, n, rate, offer_seconds, drains, progress)
        rows += got
        if peak:
            rss[n] = peak
            rows.append({
                "row": f"host peak RSS, {n:,} bots", "value": round(peak / 1024),
                "unit": "MiB", "detail": "VmHWM of tradebus-strategy at the end of the run",
            })  # fmt: skip
    if rss:
        top = max(rss)
        marginal = ""
        if len(rss) > 1:
            low = min(rss)
            per = (rss[top] - rss[low]) / (top - low)
            marginal = f"; marginal ({top:,} vs {low:,} bots) {per:.1f} KiB/bot"
        rows.append({
            "row": f"host RSS per bot, {top:,} bots", "value": round(rss[top] / top, 1),
            "unit": "KiB/bot", "detail": f"peak RSS / bots{marginal}",
        })  # fmt: skip
    return rows


def main() -> None:
    import argparse

    from bench.floor import print_rows

    p = argparse.ArgumentParser(
        prog="python -m bench.tickbench", description=__doc__.split("\n")[0]
    )
    p.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    p.add_argument("--bots", default="1000,10000", help="comma-separated bot counts")
    p.add_argument("--rate", type=float, default=10_000)
    p.add_argument("--offer-seconds", type=float, default=5.0)
    p.add_argument("--drain-seconds", type=float, default=15.0)
    p.add_argument("--burst-drain-seconds", type=float, default=60.0)
    a = p.parse_args()
    err = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    bots = tuple(int(b) for b in a.bots.split(","))
    drains = a.drain_seconds, a.burst_drain_seconds
    print_rows(asyncio.run(run(a.data, bots, a.rate, a.offer_seconds, *drains, err)))


if __name__ == "__main__":
    main()

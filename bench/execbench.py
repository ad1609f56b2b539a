"""Benchmark: the execution service alone, fed PlaceOrder intents over JetStream.

Setup: a local nats-server and PostgreSQL (default durability, as in
production), the ledger migrated, and the real ``tradebus-execution`` process
(:class:`~tradebus.cli.processes.ServiceProcess`) with ``--accounts`` paper
accounts ``b<i>-paper`` of users ``b<i>`` holding 10^9 USDT and no risk limits.
Every intent is a valid limit buy of 0.001 BTCUSDT at 20,000 USDT, far below
the market: it rests, never fills (no ticks are published anyway), so each one
costs execution exactly one ledger order insert, a paper-venue placement, an
order update and an ``OrderAccepted`` event. Intents go to
``intent.<user>.bench`` with distinct intent ids and ``ts_init`` = publish wall
time (ns), published with JetStream ``publish_async`` (``WINDOW`` acks in flight).

Rows:

* **throughput** (intents/s): intents offered as fast as execution takes them
  for ``duration`` s (the backlog of published-but-not-accepted intents is kept
  at most ``BACKLOG`` so the stream never runs away); after ``WARMUP`` s, the
  rate is the ``OrderAccepted`` events seen on ``exec.evt.>`` per second of the
  measured window, cross-checked with execution's counter
  ``tradebus_execution_orders_total{status="accepted"}``.
* **latency** at a fixed offered rate (``rate`` intents/s for ``latency_seconds``
  s): intent-to-ack = arrival of its ``OrderAccepted`` on this process's core
  NATS subscription to ``exec.evt.>`` minus its publish time, same wall clock
  (ms, p50/p99/max); and the same quantiles of execution's own histogram
  ``tradebus_execution_intent_to_ack_seconds`` (``ts_init`` to venue ack),
  read as the upper bound of the bucket holding the quantile.
* execution's peak RSS (``VmHWM``, MiB).
* **CPU per intent** (ms): execution's user + system CPU time (``/proc/<pid>/stat``)
  over the measured throughput window, divided by the intents accepted in it.

With ``shards`` > 1 the run starts that many execution processes
(``TRADEBUS_EXECUTION_SHARD`` of ``TRADEBUS_EXECUTION_SHARDS``: each owns the users in
its partition of ``partition(N, 1)`` on ``intent.<user>.>``), on the same NATS
and ledger; counters, histograms and CPU are summed over them, and every row
says ``(N shards)``.

Everything (both servers, execution and this publisher) shares the machine's
cores. Run: ``python -m bench.execbench [--duration 60] [--rate 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import nats
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from tradebus.cli.processes import Samples, total
from tradebus.cli.stack import LocalStack
from tradebus.common.codec import decode_event, encode
from tradebus.common.ids import AccountId, IntentId
from tradebus.common.messages import OrderAccepted, PlaceOrder

WINDOW = 512
"""JetStream publish acks in flight."""
BACKLOG = 5000
"""At most this many intents published but not yet accepted (throughput run)."""
WARMUP = 5.0
ACK_HIST = "tradebus_execution_intent_to_ack_seconds_bucket"
ACCEPTED = "tradebus_execution_orders_total"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def accounts_yaml(n: int) -> str:
    lines = ["accounts:"]
    lines += [
        f'  - {{id: b{i}-paper, user: b{i}, balances: {{USDT: "1000000000"}}}}' for i in range(n)
    ]
    return "\n".join(lines) + "\n"


def hist_quantile(before: Samples, after: Samples, q: float) -> float:
    """Upper bound (s) of the bucket holding quantile ``q`` of the observations in between."""

    def cum(samples: Samples) -> dict[float, float]:
        return {float(lab["le"]): v for lab, v in samples.get(ACK_HIST, [])}

    b, a = cum(before), cum(after)
    bounds = sorted(a)
    count = a[bounds[-1]] - b.get(bounds[-1], 0.0) if bounds else 0.0
    for le in bounds:
        if a[le] - b.get(le, 0.0) >= q * count and count > 0:
            return le
    return float("nan")


def merged(samples: list[Samples]) -> Samples:
    """The histogram and counter samples of several processes, summed label by label."""
    out: Samples = {}
    for name in (ACK_HIST, ACCEPTED):
        sums: dict[tuple[tuple[str, str], ...], float] = {}
        for s in samples:
            for lab, v in s.get(name, []):
                key = tuple(sorted(lab.items()))
                sums[key] = sums.get(key, 0.0) + v
        out[name] = [(dict(k), v) for k, v in sums.items()]
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the processes ``pids`` (``/proc/<pid>/stat``)."""
    tick = os.sysconf("SC_CLK_TCK")
    total_ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total_ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total_ticks / tick


def row(name: str, value: object, unit: str, detail: str) -> dict:
    """One result row."""
    return {"row": name, "value": value, "unit": unit, "detail": detail}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


class ExecBench:
    """One run: the stack, the publisher and the ``exec.evt.>`` recorder."""

    def __init__(self, stack: LocalStack, accounts: int, shards: int = 1) -> None:
        self.stack = stack
        self.accounts = accounts
        self.names = ["execution"] + [f"execution-{i}" for i in range(1, shards)]
        self.tag = "" if shards == 1 else f" ({shards} shards)"
        self.cpu_ms = float("nan")
        self.n = 0
        self.sent: dict[str, int] = {}  # intent id -> publish wall ns (latency run only)
        self.lat_ms: list[float] = []
        self.accepted = 0
        self.stamp = False

    def intent(self) -> tuple[str, bytes, str]:
        self.n += 1
        user = f"b{self.n % self.accounts}"
        iid = IntentId(f"x{self.n}")
        msg = PlaceOrder(
            intent_id=iid, account=AccountId(f"{user}-paper"), symbol="BTCUSDT", side="buy",
            qty=Decimal("0.001"), price=Decimal("20000"), ts_init=time.time_ns(),
        )  # fmt: skip
        return f"intent.{user}.bench", encode(msg), iid

    async def on_event(self, msg: Msg) -> None:
        if not self.stamp:
            self.accepted += 1  # one event (OrderAccepted) per intent in this benchmark
            return
        now = time.time_ns()
        event = decode_event(msg.data)
        if isinstance(event, OrderAccepted):
            self.accepted += 1
            sent = self.sent.pop(event.intent_id, None)
            if sent is not None:
                self.lat_ms.append((now - sent) / 1e6)

    async def drain(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while await self.stack.intents_pending() > 0 and time.monotonic() < deadline:
            self.stack.check_running(*self.names)
            await asyncio.sleep(0.2)

    async def metrics(self) -> Samples:
        """Every execution process's samples, summed."""
        services = [self.stack.services[n] for n in self.names]
        return merged([await asyncio.to_thread(s.metrics) for s in services])

    def pids(self) -> list[int]:
        return [pid for n in self.names if (pid := self.stack.services[n].pid) is not None]

    async def throughput(self, js: JetStreamContext, duration: float) -> dict:
        start = time.monotonic()
        mark: tuple[float, int, float, float] | None = None
        while (now := time.monotonic()) - start < duration:
            if mark is None and now - start >= WARMUP:
                m = await self.metrics()
                mark = (
                    now,
                    self.accepted,
                    total(m, ACCEPTED, status="accepted"),
                    cpu_seconds(self.pids()),
                )
            if self.n - self.accepted >= BACKLOG:
                self.stack.check_running(*self.names)
                await asyncio.sleep(0.005)
                continue
            for _ in range(256):
                subject, data, _iid = self.intent()
                await js.publish_async(subject, data)
        end = time.monotonic()
        cpu = cpu_seconds(self.pids())
        m = await self.metrics()
        assert mark is not None
        secs = end - mark[0]
        bus_rate = (self.accepted - mark[1]) / secs
        accepted = total(m, ACCEPTED, status="accepted") - mark[2]
        metric_rate = accepted / secs
        self.cpu_ms = (cpu - mark[3]) * 1000 / accepted if accepted else float("nan")
        return {
            "row": f"execution throughput{self.tag}", "value": round(bus_rate),
            "unit": "intents/s",
            "detail": f"{self.accepted - mark[1]:,} OrderAccepted in {secs:.1f} s"
            f" after {WARMUP:.0f} s warm-up; execution's accepted counter: {metric_rate:,.0f}/s;"
            f" {self.n:,} intents published in {end - start:.1f} s",
        }  # fmt: skip

    async def latency(self, js: JetStreamContext, rate: int, seconds: float) -> list[dict]:
        before = await self.metrics()
        self.stamp, self.lat_ms, self.sent = True, [], {}
        count = int(rate * seconds)
        t0 = time.monotonic()
        for i in range(count):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            subject, data, iid = self.intent()
            self.sent[iid] = time.time_ns()
            await js.publish_async(subject, data)
        offered = count / (time.monotonic() - t0)
        await js.publish_async_completed()
        await self.drain()
        deadline = time.monotonic() + 30
        while len(self.lat_ms) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        after = await self.metrics()
        h50, h99 = (hist_quantile(before, after, q) * 1000 for q in (0.5, 0.99))
        lat = self.lat_ms
        detail = (
            f"offered {offered:,.0f} intents/s for {seconds:.0f} s; {len(lat):,}/{count:,} acked"
        )
        hist = "bucket upper bound, ts_init -> venue ack"
        t = self.tag
        return [
            row(f"intent->ack p50 @ {rate}/s (bus){t}", round(pct(lat, 0.5), 2), "ms", detail),
            row(f"intent->ack p99 @ {rate}/s (bus){t}", round(pct(lat, 0.99), 2), "ms",
                f"max {max(lat, default=float('nan')):.1f} ms"),
            row(f"intent->ack p50 @ {rate}/s (execution histogram){t}", h50, "ms", hist),
            row(f"intent->ack p99 @ {rate}/s (execution histogram){t}", h99, "ms", hist),
        ]  # fmt: skip


async def run(
    duration: float = 60.0,
    rate: int = 1000,
    latency_seconds: float = 20.0,
    accounts: int = 20,
    shards: int = 1,
) -> list[dict]:
    """Start the stack (``shards`` execution processes), run the throughput then the latency
    phase, return the rows."""
    with tempfile.TemporaryDirectory(prefix="execbench-") as tmp:
        root = Path(tmp)
        stack = LocalStack(root, say=say)
        nc = None
        try:
            await stack.start_servers()
            await stack.connect(count_ticks=False)
            await stack.migrate()
            accounts_file = root / "accounts.yaml"
            accounts_file.write_text(accounts_yaml(accounts))
            bench = ExecBench(stack, accounts, shards)
            for index, name in enumerate(bench.names):
                stack.start_service(name, {
                    "TRADEBUS_DATABASE_URL": stack.database_url,
                    "TRADEBUS_ACCOUNTS_FILE": str(accounts_file),
                    "TRADEBUS_INTENT_RATE": "0",  # the bench measures speed, not the quota
                    "TRADEBUS_EXECUTION_SHARD": str(index),
                    "TRADEBUS_EXECUTION_SHARDS": str(shards),
                }, service_name="execution")  # fmt: skip
            await stack.wait_ready(*bench.names)
            nc = await nats.connect(stack.nats_url, pending_size=64 * 1024 * 1024)
            await nc.subscribe(
                "exec.evt.>", cb=bench.on_event, pending_msgs_limit=-1, pending_bytes_limit=-1
            )
            js = nc.jetstream(publish_async_max_pending=WINDOW)
            t = time.monotonic()
            say(f"execbench: throughput for {duration:.0f} s")
            rows = [await bench.throughput(js, duration)]
            await js.publish_async_completed()
            await bench.drain()
            say(f"execbench: latency at {rate}/s for {latency_seconds:.0f} s")
            rows += await bench.latency(js, rate, latency_seconds)
            tag = bench.tag
            rows.insert(
                1,
                row(
                    f"execution CPU per intent{tag}",
                    round(bench.cpu_ms, 3),
                    "ms",
                    "user + system CPU of execution over the throughput window / intents accepted",
                ),
            )
            rss = sum(stack.services[n].peak_rss_kib() or 0 for n in bench.names)
            mib = round(rss / 1024)
            rows.append(
                row(f"execution peak RSS{tag}", mib, "MiB", f"VmHWM, {bench.n:,} orders resting")
            )
            wall = round(time.monotonic() - t)
            rows.append(row(f"wall{tag}", wall, "s", f"{accounts} paper accounts, after start-up"))
            return rows
        finally:
            if nc is not None:
                await nc.close()
            await stack.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=60.0, help="throughput run, s")
    p.add_argument("--rate", type=int, default=1000, help="offered rate of the latency run")
    p.add_argument("--latency-seconds", type=float, default=20.0)
    p.add_argument("--accounts", type=int, default=20)
    p.add_argument("--shards", type=int, default=1, help="execution processes")
    a = p.parse_args()
    for row in asyncio.run(run(a.duration, a.rate, a.latency_seconds, a.accounts, a.shards)):
        print(f"{row['row']:<48} {row['value']!s:>10} {row['unit']:<10} {row['detail']}")


if __name__ == "__main__":
    main()

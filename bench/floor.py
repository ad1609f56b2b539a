"""The floor: what raw nats-py + msgspec can do on this machine, with no service code.

Method
------
A local nats-server (:class:`~tradebus.cli.localstack.LocalNats`, free port, no
config) and plain ``nats.connect`` clients (no tradebus wrappers). The message
is one real :class:`~tradebus.common.messages.TradeTick` (a BTCUSDT trade)
encoded once with :func:`tradebus.common.codec.encode` (~250 bytes).

* **pub->sub->decode, same process**: one connection subscribes to
  ``bench.floor.data`` with a callback that runs ``codec.decode_market`` on
  every message and counts; a second connection publishes the same payload N
  times (``await nc.publish``), then flushes. Messages/s = N / (time from the
  first publish to the subscriber's N-th decode).
* **pub->sub->decode, subscriber in a subprocess** (``python -m bench.floor
  --serve URL N``): as above, but the subscriber is its own process (like the
  stack's services); it publishes ``bench.floor.done`` on the N-th decode and
  the time runs until that arrives.
* **request/reply round trip**: a responder echoes the payload
  (``msg.respond(msg.data)``); the requester sends R sequential
  ``nc.request`` calls and times each one (``perf_counter_ns``); p50/p99 in
  microseconds. Done with the responder in-process and in the subprocess.

Every other row of the benchmark table is read as a ratio to these figures.
Prints figures; never asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import nats
import nats.aio.msg

from tradebus.cli.localstack import LocalNats
from tradebus.common import codec
from tradebus.common.messages import TradeTick

DATA = "bench.floor.data"
DONE = "bench.floor.done"
ECHO = "bench.floor.echo"
READY = "bench.floor.ready"


def payload() -> bytes:
    """One real BTCUSDT trade tick, encoded as marketdata publishes it."""
    tick = TradeTick(
        venue="binance",
        symbol="BTCUSDT",
        unified_symbol="BTC/USDT",
        price=Decimal("61234.56"),
        size=Decimal("0.00123"),
        aggressor="buy",
        trade_id="3721349871",
        ts_event=1723161600123000000,
        ts_recv=1723161600124567890,
        ts_init=1723161600124601234,
    )
    data = codec.encode(tick)
    assert type(codec.decode_market(data)) is TradeTick
    return data


def pct(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank."""
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def pubsub_inproc(url: str, data: bytes, n: int) -> float:
    """Messages/s of publish -> subscribe -> decode with both ends in this process."""
    sub_nc = await nats.connect(url, name="floor-sub", pending_size=8 * 1024 * 1024)
    pub_nc = await nats.connect(url, name="floor-pub", pending_size=8 * 1024 * 1024)
    done = asyncio.Event()
    count = 0
    decode = codec.decode_market

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        nonlocal count
        decode(msg.data)
        count += 1
        if count == n:
            done.set()

    await sub_nc.subscribe(DATA, cb=on_msg, pending_msgs_limit=n + 1, pending_bytes_limit=1 << 30)
    await sub_nc.flush()
    started = time.perf_counter()
    publish = pub_nc.publish
    for _ in range(n):
        await publish(DATA, data)
    await pub_nc.flush()
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await pub_nc.close()
    await sub_nc.close()
    return n / elapsed


async def pubsub_subproc(nc: nats.NATS, data: bytes, n: int) -> float:
    """Messages/s of publish -> subscribe -> decode, subscriber in the ``--serve`` subprocess."""
    done = asyncio.Event()

    async def on_done(msg: nats.aio.msg.Msg) -> None:
        done.set()

    sub = await nc.subscribe(DONE, cb=on_done)
    await nc.flush()
    started = time.perf_counter()
    publish = nc.publish
    for _ in range(n):
        await publish(DATA, data)
    await nc.flush()
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    return n / elapsed


async def round_trips(nc: nats.NATS, data: bytes, r: int) -> list[float]:
    """Sorted round-trip times (microseconds) of ``r`` sequential requests to ``ECHO``."""
    for _ in range(200):  # warm-up
        await nc.request(ECHO, data, timeout=5)
    out = []
    request = nc.request
    for _ in range(r):
        t0 = time.perf_counter_ns()
        await request(ECHO, data, timeout=5)
        out.append((time.perf_counter_ns() - t0) / 1000)
    out.sort()
    return out


async def echo_back(msg: nats.aio.msg.Msg) -> None:
    """The responder: answer with the request's payload."""
    await msg.respond(msg.data)


def rr_rows(where: str, rtt: list[float]) -> list[dict]:
    """Round-trip rows: p50 and p99 (µs), mean and max in the details."""
    detail = f"mean {statistics.fmean(rtt):.1f} µs, max {rtt[-1]:.1f} µs over {len(rtt):,} requests"
    return [
        {
            "row": f"floor request/reply RTT {q} ({where})",
            "value": round(pct(rtt, f), 1),
            "unit": "µs",
            "detail": detail,
        }
        for q, f in (("p50", 0.5), ("p99", 0.99))
    ]


async def run(n: int = 200_000, r: int = 5_000) -> list[dict]:
    """Start nats-server, measure, stop it; return the rows."""
    data = payload()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        server = LocalNats(Path(tmp) / "nats")
        url = server.start()
        try:
            rate = await pubsub_inproc(url, data, n)
            rows.append(
                {
                    "row": "floor pub->sub->decode (1 process)",
                    "value": round(rate),
                    "unit": "msg/s",
                    "detail": f"{n:,} msgs of {len(data)} B",
                }
            )
            nc = await nats.connect(url, name="floor-main", pending_size=8 * 1024 * 1024)
            echo = await nc.subscribe(ECHO, cb=echo_back)
            rows += rr_rows("1 process", await round_trips(nc, data, r))
            await echo.unsubscribe()
            ready = asyncio.Event()

            async def on_ready(msg: nats.aio.msg.Msg) -> None:
                ready.set()

            rsub = await nc.subscribe(READY, cb=on_ready)
            await nc.flush()
            child = subprocess.Popen([sys.executable, "-m", "bench.floor", "--serve", url, str(n)])
            try:
                await asyncio.wait_for(ready.wait(), 30)
                await rsub.unsubscribe()
                rate = await pubsub_subproc(nc, data, n)
                rows.append(
                    {
                        "row": "floor pub->sub->decode (subscriber in subprocess)",
                        "value": round(rate),
                        "unit": "msg/s",
                        "detail": f"{n:,} msgs of {len(data)} B",
                    }
                )
                rtt = await round_trips(nc, data, r)
                rows += rr_rows("responder in subprocess", rtt)
            finally:
                child.terminate()
                child.wait(10)
            await nc.close()
        finally:
            server.stop()
    return rows


async def serve(url: str, n: int) -> None:
    """The subprocess: decode and count ``DATA`` (announce ``DONE`` at ``n``), echo ``ECHO``."""
    nc = await nats.connect(url, name="floor-serve")
    count = 0
    decode = codec.decode_market

    async def on_data(msg: nats.aio.msg.Msg) -> None:
        nonlocal count
        decode(msg.data)
        count += 1
        if count == n:
            await nc.publish(DONE, b"")

    await nc.subscribe(DATA, cb=on_data, pending_msgs_limit=n + 1, pending_bytes_limit=1 << 30)
    await nc.subscribe(ECHO, cb=echo_back)
    await nc.flush()
    await nc.publish(READY, b"")
    await nc.flush()
    await asyncio.Event().wait()  # until terminated


def print_rows(rows: list[dict]) -> None:
    """One line per row: name, value, unit, detail."""
    for row in rows:
        value = f"{row['value']:,}" if isinstance(row["value"], int) else str(row["value"])
        print(f"{row['row']:<52} {value:>12} {row['unit']:<8} {row['detail']}")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=200_000, help="messages per pub/sub run")
    p.add_argument("-r", type=int, default=5_000, help="request/reply round trips")
    p.add_argument("--serve", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve[0], int(args.serve[1])))
        return
    started = time.perf_counter()
    print_rows(asyncio.run(run(args.n, args.r)))
    print(f"wall {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

"""Benchmark: the gateway's reads and live events with 100 concurrent clients.

Setup: a local nats-server and PostgreSQL (:class:`~tradebus.cli.stack.LocalStack`,
as the other benches), the ledger migrated, and the real ``tradebus-gateway``
process (its ``run``; :class:`~tradebus.cli.processes.ServiceProcess`). Data:
``USERS`` (10) users, each with one paper account and ``BOTS_PER_USER`` (10)
ladder bots in KV ``bots`` (100 bots; no strategy host runs, so their
statuses are null and ``ctl.bots.list`` has no one to ask), and
``ORDERS_PER_USER`` (1,000) orders, each accepted and filled once, written
through :class:`~tradebus.ledger.store.Ledger` as execution writes them
(10,000 orders and 10,000 fills in all).

Clients: ``CLIENTS`` (100) in this process, ``CLIENTS / USERS`` signed in as
each user; HTTP with aiohttp (one connection per client), WebSockets with the
``websockets`` library (permessage-deflate, as browsers negotiate it).

Rows:

* **GET /api/v1/bots**, **GET /api/v1/history/orders**, **GET
  /api/v1/history/fills** (first page, 100 rows): each client sends its next
  request as soon as the previous one is answered, for ``seconds`` s after
  ``WARMUP`` s; p50 and p99 of the request times (ms) and the requests/s.
* **events pushed/s to 100 WebSocket clients**: ``OrderAccepted`` events of
  the users' bots published on ``EXEC`` round-robin over the users (so each
  goes to 10 clients) as fast as the clients take them (the publisher stays
  at most ``LAG`` events ahead of the slowest client, below a client's
  queue); the rate is frames received by all clients per second of the
  measured window. The publish->receive latency (ms, p50/p99; ``ts_event``
  = publish wall time) is that of the same saturated run, and again at a
  fixed ``rate`` events/s.

Everything (both servers, the gateway and these clients) shares the
machine's cores. Run: ``python -m bench.gatewaybench [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import nats
from nats.js import JetStreamContext
from websockets.asyncio.client import ClientConnection, connect

from bench.gatewaystack import gateway_stack, pct, print_rows, row, say
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.ids import AccountId, BotId, IntentId, UserId
from tradebus.common.messages import OrderAccepted
from tradebus.common.order_status import OrderStatus
from tradebus.control.botstore import create_spec, open_bots
from tradebus.ledger.entries import FillFacts, deposit_entries, fill_entries
from tradebus.ledger.passwords import Passwords
from tradebus.ledger.pool import create_pool
from tradebus.ledger.rows import FillRow, NewOrder
from tradebus.ledger.store import Ledger
from tradebus.ledger.users import Users
from tradebus.strategies.registry import BotSpec

USERS = 10
BOTS_PER_USER = 10
ORDERS_PER_USER = 1000
CLIENTS = 100
WARMUP = 2.0
LAG = 150
"""Events the publisher may be ahead of the slowest client's share (its queue holds 1,024)."""
PUBLISH_WINDOW = 256
SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC


def user_of(i: int) -> str:
    return f"u{i:02}"


async def seed(database_url: str, js: JetStreamContext) -> dict[str, str]:
    """Users, accounts, bots, orders and fills (module docstring); user -> password."""
    pool = await create_pool(database_url)
    try:
        ledger, users, passwords = Ledger(pool), Users(pool), Passwords()
        kv = await open_bots(js)
        out: dict[str, str] = {}
        trade = itertools.count(1)

        async def one(u: int) -> None:
            user = UserId(user_of(u))
            password = secrets.token_urlsafe(12)
            await users.create(user, "user", await passwords.hash(password), "bench", T0)
            out[user] = password
            account = AccountId(f"{user}-paper")
            deposits = deposit_entries(account, {"USDT": Decimal(10**9)}, "initial")
            await ledger.ensure_account(account, user, "paper", deposits, T0)
            for b in range(BOTS_PER_USER):
                spec = BotSpec(id=BotId(f"{user}-ladder-{b}"), user=user, account=account,
                               strategy="ladder", venue="binance", symbol="BTCUSDT")  # fmt: skip
                await create_spec(kv, spec)
            for n in range(ORDERS_PER_USER):
                ts = T0 + n * SEC
                intent = IntentId(f"{user}-ladder-{n % BOTS_PER_USER}:1.{n}:b0")
                order, _ = await ledger.insert_order(
                    NewOrder(
                        intent_id=intent, account_id=account, user_id=user,
                        source=f"{user}-ladder-{n % BOTS_PER_USER}", symbol="BTCUSDT",
                        side="buy", order_type="limit", price=Decimal(60000),
                        qty=Decimal("0.001"), trigger_ts=ts, stream_seq=None, ts=ts,
                    )
                )  # fmt: skip
                await ledger.set_order_status(
                    user, intent, OrderStatus.ACCEPTED, ts, venue_order_id=f"V{n}"
                )
                trade_id = f"T{next(trade)}"
                facts = FillFacts(
                    account=account, base="BTC", quote="USDT", side="buy",
                    price=Decimal(60000), qty=Decimal("0.001"), fee=Decimal("0.01"),
                    fee_asset="USDT", ref=f"paper:{account}:{trade_id}",
                )  # fmt: skip
                await ledger.record_fill(
                    FillRow(
                        venue="paper", trade_id=trade_id, client_order_id=order.client_order_id,
                        account_id=account, symbol="BTCUSDT", side="buy",
                        price=Decimal(60000), qty=Decimal("0.001"), fee=Decimal("0.01"),
                        fee_asset="USDT", liquidity="maker", ts_event=ts + 1000, ts=ts + 2000,
                        entries=fill_entries(facts),
                    )
                )  # fmt: skip

        await asyncio.gather(*(one(u) for u in range(USERS)))
        return out
    finally:
        await pool.close()


async def sign_in(base: str, passwords: dict[str, str]) -> list[tuple[str, str]]:
    """``(user, access token)`` of each client, ``CLIENTS / USERS`` per user."""
    tokens = {}
    async with aiohttp.ClientSession(base_url=base) as http:
        for user, password in passwords.items():
            async with http.post(
                "/api/v1/auth/login", json={"user": user, "password": password}
            ) as answer:
                answer.raise_for_status()
                tokens[user] = (await answer.json())["access_token"]
    users = sorted(tokens)
    return [(users[i % len(users)], tokens[users[i % len(users)]]) for i in range(CLIENTS)]


async def http_load(
    base: str, clients: list[tuple[str, str]], path: str, seconds: float
) -> tuple[list[float], int, float]:
    """Each client GETs ``path`` back to back; latencies (ms) after the warm-up, errors,
    and the measured window (s)."""
    lat: list[float] = []
    errors = 0
    start = time.monotonic()
    measure_from, end = start + WARMUP, start + WARMUP + seconds

    async def client(token: str) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(base_url=base, connector=connector) as http:
            while (t := time.monotonic()) < end:
                async with http.get(path, headers=headers) as answer:
                    await answer.read()
                    ok = answer.status == 200
                done = time.monotonic()
                if not ok:
                    errors += 1
                elif t >= measure_from:
                    lat.append((done - t) * 1000)

    await asyncio.gather(*(client(token) for _, token in clients))
    return lat, errors, seconds


class Watcher:
    """One WebSocket client: frames and order events received, latencies sampled."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.orders = 0
        self.lat_ms: list[float] = []
        self.closed: str | None = None
        self.stamp = False


_frame = msgspec.json.Decoder(dict[str, Any])


async def watch(url: str, token: str) -> Watcher:
    ws = await connect(url, open_timeout=30, max_queue=None)
    await ws.send(msgspec.json.encode({"type": "auth", "token": token}).decode())
    watcher = Watcher(ws)
    while True:  # up to ready and the statuses
        frame = _frame.decode(await ws.recv(decode=False))
        if frame["type"] == "ready":
            return watcher


async def read(watcher: Watcher) -> None:
    try:
        async for data in watcher.ws:
            now = time.time_ns()
            frame = _frame.decode(data)
            if frame["type"] == "order":
                watcher.orders += 1
                if watcher.stamp:
                    watcher.lat_ms.append((now - frame["event"]["ts_event"]) / 1e6)
    except Exception as exc:
        watcher.closed = repr(exc)
    if watcher.ws.close_code not in (None, 1000):
        watcher.closed = f"{watcher.ws.close_code} {watcher.ws.close_reason}"


def event(user: str, n: int) -> tuple[str, bytes]:
    bot = f"{user}-ladder-0"
    msg = OrderAccepted(
        intent_id=IntentId(f"{bot}:e.{n}"), user=UserId(user), source=bot,
        account=AccountId(f"{user}-paper"), symbol="BTCUSDT", side="buy", order_type="limit",
        price=Decimal(60000), qty=Decimal("0.001"), client_order_id=f"c{n}",
        venue_order_id=f"v{n}", ts_event=time.time_ns(),
    )  # fmt: skip
    return subjects.exec_evt(user, bot), encode(msg)


async def push_events(
    js: JetStreamContext,
    watchers: list[Watcher],
    users: list[str],
    seconds: float,
    rate: float | None,
    progress: Callable[[str], None],
) -> tuple[int, int, float, list[float]]:
    """Publish events for ``WARMUP + seconds`` s (``rate`` per s, or as fast as the slowest
    client takes them); ``(events published, frames received in the window, window s,
    latencies ms in the window)``."""
    base = [w.orders for w in watchers]
    for w in watchers:
        w.stamp, w.lat_ms = False, []
    published = 0
    start = time.monotonic()
    mark: tuple[float, int] | None = None
    while (now := time.monotonic()) - start < WARMUP + seconds:
        if mark is None and now - start >= WARMUP:
            mark = (now, sum(w.orders for w in watchers))
            for w in watchers:
                w.stamp = True
        if rate is not None:
            due = start + published / rate
            if due > now:
                await asyncio.sleep(due - now)
        else:  # each client's share of what was published, less what it got: its lag
            slowest = min(w.orders - b for w, b in zip(watchers, base, strict=True))
            if published // len(users) - slowest > LAG:
                await asyncio.sleep(0.001)
                continue
        for _ in range(len(users) if rate is None else 1):
            subject, data = event(users[published % len(users)], published)
            await js.publish_async(subject, data)
            published += 1
        if published % 2000 == 0:
            progress(f"gateway: {published:,} events published")
    end = time.monotonic()
    assert mark is not None
    frames = sum(w.orders for w in watchers) - mark[1]
    lat = [x for w in watchers for x in w.lat_ms]
    return published, frames, end - mark[0], lat


async def run(
    seconds: float = 10.0, rate: float = 200.0, progress: Callable[[str], None] = say
) -> list[dict[str, Any]]:
    """Start the stack and the gateway, seed, run each phase; the rows."""

    async def seeded(database_url: str, nc: nats.NATS) -> dict[str, str]:
        t = time.monotonic()
        passwords = await seed(database_url, nc.jetstream(publish_async_max_pending=PUBLISH_WINDOW))
        say(f"gatewaybench: seeded in {time.monotonic() - t:.0f} s")
        return passwords

    watchers: list[Watcher] = []
    readers: list[asyncio.Task[None]] = []
    async with gateway_stack("gatewaybench-", seeded) as running:
        try:
            js = running.nc.jetstream(publish_async_max_pending=PUBLISH_WINDOW)
            passwords, base = running.seeded, running.base
            clients = await sign_in(base, passwords)
            rows = []
            data = (
                f"{CLIENTS} clients ({CLIENTS // USERS} per user, {USERS} users);"
                f" {USERS * BOTS_PER_USER} bots, {USERS * ORDERS_PER_USER:,} orders and fills"
            )
            for path, name in (
                ("/api/v1/bots", "GET /api/v1/bots"),
                ("/api/v1/history/orders", "GET /api/v1/history/orders"),
                ("/api/v1/history/fills", "GET /api/v1/history/fills"),
            ):
                progress(f"gateway: {name} for {seconds:.0f} s")
                lat, errors, window = await http_load(base, clients, path, seconds)
                detail = (
                    f"{len(lat) / window:,.0f} req/s over {window:.0f} s; {errors} errors; {data}"
                )
                rows += [
                    row(f"{name} p50, 100 clients", round(pct(lat, 0.5), 1), "ms", detail),
                    row(f"{name} p99, 100 clients", round(pct(lat, 0.99), 1), "ms",
                        f"max {max(lat, default=float('nan')):.0f} ms"),
                ]  # fmt: skip
            url = base.replace("http://", "ws://") + "/api/v1/events"
            watchers = list(await asyncio.gather(*(watch(url, tok) for _, tok in clients)))
            readers = [asyncio.create_task(read(w)) for w in watchers]
            users = sorted(passwords)
            progress(f"gateway: events, as fast as {CLIENTS} clients take them, {seconds:.0f} s")
            published, frames, window, lat = await push_events(
                js, watchers, users, seconds, None, progress
            )
            closed = [w.closed for w in watchers if w.closed]
            rows.append(row(
                "events pushed/s to 100 WebSocket clients", round(frames / window), "frames/s",
                f"{frames / window / (CLIENTS // USERS):,.0f} events/s, each to"
                f" {CLIENTS // USERS} clients; {published:,} published; {len(closed)} clients"
                f" closed; publish->receive p50 {pct(lat, 0.5):.0f} ms, p99"
                f" {pct(lat, 0.99):.0f} ms (saturated)",
            ))  # fmt: skip
            progress(f"gateway: events at {rate:.0f}/s for {seconds:.0f} s")
            published, frames, window, lat = await push_events(
                js, watchers, users, seconds, rate, progress
            )
            rows += [
                row(f"event publish->WebSocket p50 @ {rate:.0f} events/s", round(pct(lat, 0.5), 1),
                    "ms", f"{frames / window:,.0f} frames/s to {CLIENTS} clients"),
                row(f"event publish->WebSocket p99 @ {rate:.0f} events/s",
                    round(pct(lat, 0.99), 1), "ms",
                    f"max {max(lat, default=float('nan')):.0f} ms"),
            ]  # fmt: skip
            rss = running.stack.services["gateway"].peak_rss_kib()
            rows.append(row("gateway peak RSS", round((rss or 0) / 1024), "MiB", "VmHWM"))
            return rows
        finally:
            for task in readers:
                task.cancel()
            for w in watchers:
                await w.ws.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds of each phase")
    p.add_argument("--rate", type=float, default=200.0, help="events/s of the latency phase")
    a = p.parse_args()
    print_rows(asyncio.run(run(a.seconds, a.rate)))


if __name__ == "__main__":
    main()

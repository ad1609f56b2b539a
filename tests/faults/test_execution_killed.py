"""Fault: execution SIGKILLed and restarted while intents of many bots flow.

Execution runs as a real process (``tradebus-execution``, as ``make demo``
runs it) on the test's NATS and PostgreSQL. Bots of four users publish
PlaceOrder intents (and some CancelOrder) on ``intent.<user>.<bot>`` with
``Nats-Msg-Id`` = intent id, at a steady rate, to

* a live Backpack account (``bob-bp``) on the local Backpack server, which
  runs in this process and survives execution's deaths, so orders are
  counted at the venue; its trades are printed by ``server.feed_trade``;
* paper accounts (spot ``alice-paper``, ``carol-paper``, perpetual
  ``dave-perp``) filled by trades published on ``md.trade.binance.BTCUSDT``.

Meanwhile execution is SIGKILLed at seeded-random moments and restarted
(ready again when its metrics say so). At the end, once the ``INTENTS``
consumer has nothing pending: one ledger order row per intent, no order left
``new``/``unknown``; at Backpack exactly one order per intent (client ids
unique, the ledger's ones); every Backpack fill booked once; paper fills
booked once and every order's filled quantity the sum of its fills; and
reconciliation ok for every account.

The seed comes from ``$KILLED_SEED`` (else random) and is printed with the
kill moments (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from tests.support.backpack.server import BackpackServer
from tests.support.execution import (
    Bus,
    collecting,
    execution_service,
    execution_settings,
    reconcile_now,
)
from tests.support.intents import consumer_totals
from tests.support.services import eventually
from tests.support.ticks import trade
from tradebus.cli.localstack import free_port
from tradebus.cli.processes import ServiceProcess
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.messages import CancelOrder, OrderAccepted, PlaceOrder, Side
from tradebus.common.order_status import OrderStatus
from tradebus.ledger.pool import create_pool
from tradebus.ledger.rows import NewOrder
from tradebus.ledger.store import Ledger

ACK_WAIT_SECONDS = 5
"""Execution's ``ack_wait`` here (default 30 s): how soon a killed process's intents return."""
KEY_ENV = "KILLED_TEST_BOB_BP_KEY"  # not TRADEBUS_*: services refuse unknown ones
PAPER_USERS = {"alice": "alice-paper", "carol": "carol-paper", "dave": "dave-perp"}
BOTS_PER_USER = 4
RESTART_SECONDS = 4.0
"""About how long execution takes from exec to ready on a busy 2-core machine."""
ACCOUNTS = """
accounts:
  - {{id: alice-paper, user: alice, balances: {{USDT: "10000000", BTC: "1000"}}}}
  - {{id: carol-paper, user: carol, balances: {{USDT: "10000000", BTC: "1000"}}}}
  - id: dave-perp
    user: dave
    market_kind: perpetual
    leverage: "5"
    balances: {{USDT: "10000000"}}
  - id: bob-bp
    user: bob
    venue: backpack
    market_data: backpack
    api_url: {url}
    ws_url: {ws_url}
    api_key_env: {env}
    secret_file: {secret_file}
    rate_per_second: 500
    burst: 100
    poll_seconds: 0.2
    backstop_seconds: 2
    timeout_seconds: 2
"""


@dataclass
class Scenario:
    """What one run does: ``intents`` places over ``seconds``, ``kills`` SIGKILLs."""

    intents: int
    kills: int
    seconds: float
    seed: int = field(default_factory=lambda: int(os.environ.get("KILLED_SEED", 0)) or 0)


class Execution:
    """The execution process, restarted as often as the test kills it."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.starts = 0
        self.proc: ServiceProcess | None = None

    async def start(self) -> float:
        """Start it and wait until it pulls intents; the seconds that took."""
        began = time.monotonic()
        self.starts += 1
        self.proc = ServiceProcess(
            f"execution-{self.starts}", self.env, self.logs, free_port(), service="execution"
        )
        self.proc.start()

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.returncode() is not None:
                raise AssertionError(f"execution exited:\n{self.proc.log_tail(40)}")
            return await asyncio.to_thread(self.proc.is_ready)

        await eventually(ready, timeout=60, what="execution ready")
        return time.monotonic() - began

    def kill(self) -> None:
        assert self.proc is not None and self.proc.pid is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None:
            assert self.proc.stop(30) == 0, self.proc.log_tail(40)


SIDES: tuple[Side, ...] = ("buy", "sell")


class Flow:
    """Seeded intents of many bots, market trades for both venues, and the bookkeeping."""

    def __init__(self, rng: random.Random, nc: NATS, server: BackpackServer) -> None:
        self.rng = rng
        self.nc = nc
        self.js = nc.jetstream()
        self.server = server
        self.places: dict[str, tuple[str, str]] = {}  # intent id -> (user, account)
        self.by_bot: dict[tuple[str, str], list[IntentId]] = {}
        self.cancels = 0
        self.paper_price = D(60000)
        self.bp_price = D(60000)
        self.trades = 0

    def bots(self) -> list[tuple[str, str, AccountId]]:
        """``(user, bot, account)`` of every bot."""
        users = {**PAPER_USERS, "bob": "bob-bp"}
        return [
            (u, f"{u}-b{i}", AccountId(a)) for u, a in users.items() for i in range(BOTS_PER_USER)
        ]

    async def publish(self, n: int) -> None:
        """Publish place ``n`` (and now and then a cancel of an earlier place of its bot)."""
        user, bot, account = self.rng.choice(self.bots())
        live = account == "bob-bp"
        mid = self.bp_price if live else self.paper_price
        side = self.rng.choice(SIDES)
        offset = D(self.rng.randint(0, 60))
        price = mid - offset if side == "buy" else mid + offset
        intent = PlaceOrder(
            intent_id=IntentId(f"{bot}:1.{n}:b0"),
            account=account,
            symbol="BTC_USDC" if live else "BTCUSDT",
            side=side,
            qty=D(self.rng.randint(1, 5)) / 1000,
            price=price,
            ts_init=time.time_ns(),
        )
        await self._send(user, bot, intent)
        self.places[intent.intent_id] = (user, account)
        earlier = self.by_bot.setdefault((user, bot), [])
        earlier.append(intent.intent_id)
        if len(earlier) > 3 and self.rng.random() < 0.12:
            self.cancels += 1
            cancel = CancelOrder(
                intent_id=IntentId(f"{bot}:1.{n}:c"),
                account=account,
                target_intent_id=self.rng.choice(earlier[:-1]),
                ts_init=time.time_ns(),
            )
            await self._send(user, bot, cancel)

    async def _send(self, user: str, bot: str, intent: PlaceOrder | CancelOrder) -> None:
        subject = subjects.intent(user, bot)
        await self.js.publish(subject, encode(intent), headers={"Nats-Msg-Id": intent.intent_id})

    async def market(self, stop: asyncio.Event) -> None:
        """A random walk traded on both venues every 50 ms until ``stop``."""
        while not stop.is_set():
            self.paper_price += D(self.rng.randint(-12, 12))
            self.bp_price += D(self.rng.randint(-12, 12))
            now = time.time_ns()
            tick = trade(self.paper_price, now, aggressor=self.rng.choice(("buy", "sell")))
            await self.nc.publish(subjects.md_trade("binance", "BTCUSDT"), encode(tick))
            await self.server.feed_trade("BTC_USDC", self.bp_price, "1")
            self.trades += 1
            await asyncio.sleep(0.05)


async def consumer_drained(js: JetStreamContext) -> bool:
    return await consumer_totals(js) == (0, 0)


async def run_scenario(
    scenario: Scenario, nats_url: str, database_url: str, tmp_path: Path
) -> None:
    seed = scenario.seed or random.randrange(1, 2**31)
    rng = random.Random(seed)
    print(f"\n[killed] seed={seed} intents={scenario.intents} kills={scenario.kills}")
    began = time.monotonic()
    async with BackpackServer() as server:
        creds = server.add_account({"USDC": "100000000", "BTC": "10000"})
        secret_file = tmp_path / "bob_bp_secret"
        secret_file.write_text(creds.secret + "\n")
        accounts_file = tmp_path / "accounts.yaml"
        accounts_file.write_text(
            ACCOUNTS.format(
                url=server.url, ws_url=server.ws_url, env=KEY_ENV, secret_file=secret_file
            )
        )
        env = {
            "TRADEBUS_NATS_URL": nats_url,
            "TRADEBUS_DATABASE_URL": database_url,
            "TRADEBUS_ACCOUNTS_FILE": str(accounts_file),
            "TRADEBUS_LOG_LEVEL": "info",
            # a killed process's intents come back after 5 s, not 30: the same path, sooner
            "TRADEBUS_ACK_WAIT_SECONDS": str(ACK_WAIT_SECONDS),
            KEY_ENV: creds.api_key,
        }
        execution = Execution(env, tmp_path / "logs")
        nc = await nats.connect(nats_url)
        flow = Flow(rng, nc, server)
        stop_market = asyncio.Event()
        try:
            await execution.start()
            market = asyncio.create_task(flow.market(stop_market))
            alive = max(0.5, scenario.seconds / scenario.kills - RESTART_SECONDS)
            t0 = time.monotonic()
            killer = asyncio.create_task(
                killing(
                    execution,
                    nc.jetstream(),
                    random.Random(rng.random()),
                    scenario.kills,
                    alive,
                    t0,
                )
            )
            interval = scenario.seconds / scenario.intents
            for n in range(scenario.intents):
                await flow.publish(n)
                await asyncio.sleep(max(0.0, t0 + (n + 1) * interval - time.monotonic()))
            moments, restarts, in_flight = await killer
            print(f"[killed] kills at (s after the flow began): {moments}")
            print(f"[killed] restart to ready (s): {restarts}")
            print(f"[killed] intents in flight at each kill: {in_flight}")
            await eventually(
                lambda: consumer_drained(nc.jetstream()), timeout=150, what="INTENTS drained"
            )
            stop_market.set()
            await market
            await check_ledger(flow, server, creds.api_key, database_url)
            await check_reconciliation(nats_url, database_url, nc)
            execution.stop()
            restored = restores(tmp_path / "logs")
            print(f"[killed] paper restores (starts after the first): {restored}")
            assert restored["resting"] > 0  # the restarts did rebuild resting paper orders
        finally:
            stop_market.set()
            if execution.proc is not None and execution.proc.returncode() is None:
                execution.proc.stop(10)
            await nc.close()
    print(
        f"[killed] seed={seed} places={len(flow.places)} cancels={flow.cancels} "
        f"trades={flow.trades} starts={execution.starts} "
        f"wall={time.monotonic() - began:.1f}s"
    )


async def killing(
    execution: Execution, js, rng: random.Random, kills: int, mean_alive: float, t0: float
) -> tuple[list[float], list[float], list[int]]:
    """SIGKILL execution ``kills`` times, each a seeded-random time (mean ``mean_alive`` s)
    after its last start was ready, and restart it; the kill moments (s after ``t0``),
    the restart times (s) and the intents in flight (ack pending) at each kill."""
    moments: list[float] = []
    restarts: list[float] = []
    in_flight: list[int] = []  # intents the killed process had fetched and not acked
    stale = 0  # ack pending of processes killed before (redelivered after the ack wait)
    for _ in range(kills):
        # half the kills land while execution holds fetched, unacked intents (mid-work)
        mid_work = rng.random() < 0.5
        await asyncio.sleep(
            rng.uniform(0.02, 0.5) if mid_work else rng.uniform(0.2, 2 * mean_alive)
        )
        deadline = time.monotonic() + (3.0 if mid_work else 0.0)
        while True:
            _, ack_pending = await consumer_totals(js)
            if not mid_work or ack_pending > stale or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        moments.append(round(time.monotonic() - t0, 2))
        execution.kill()
        in_flight.append(max(0, ack_pending - stale))
        stale = (await consumer_totals(js))[1]
        restarts.append(round(await execution.start(), 1))
    return moments, restarts, in_flight


def restores(logs: Path) -> Counter[str]:
    """Totals of what the restarts rebuilt (the first start restores only deposits)."""
    totals: Counter[str] = Counter()
    for path in sorted(logs.glob("execution-*.log")):
        if path.name == "execution-1.log":
            continue
        for line in path.read_text().splitlines():
            if "paper account restored" in line:
                record = msgspec.json.decode(line)
                for key in ("resting", "unanswered", "positions"):
                    totals[key] += record[key]
    return totals


async def check_ledger(flow: Flow, server: BackpackServer, api_key: str, url: str) -> None:
    conn = await asyncpg.connect(url)
    try:

        async def bp_fills_booked() -> bool:
            n = await conn.fetchval("SELECT count(*) FROM fills WHERE account_id = 'bob-bp'")
            return n == len(server.fills(api_key))

        await eventually(bp_fills_booked, timeout=30, what="every Backpack fill booked")
        orders = await conn.fetch(
            "SELECT user_id, intent_id, account_id, client_order_id, status, qty, filled_qty"
            " FROM orders"
        )
        statuses = Counter(r["status"] for r in orders)
        print(f"[killed] order statuses: {dict(statuses)}")
        # one ledger order row per intent, every one answered
        assert {r["intent_id"]: (r["user_id"], r["account_id"]) for r in orders} == flow.places
        assert len(orders) == len(flow.places)
        assert not statuses["new"] and not statuses["unknown"], statuses
        # Backpack: exactly one venue order per intent, under the ledger's client id
        venue = server.orders(api_key)
        per_client = Counter(o.client_id for o in venue)
        assert [c for c, k in per_client.items() if k > 1] == []
        bob = {r["client_order_id"] for r in orders if r["account_id"] == "bob-bp"}
        rejected = {
            r["client_order_id"]
            for r in orders
            if r["account_id"] == "bob-bp" and r["status"] == "rejected"
        }
        assert set(per_client) == bob - rejected
        assert len(venue) == len(bob) - len(rejected)
        # every venue fill once in the ledger
        bp_fills = {f"BTC_USDC:{f.trade_id}" for f in server.fills(api_key)}
        ledger_bp = await conn.fetch("SELECT trade_id FROM fills WHERE account_id = 'bob-bp'")
        assert Counter(r["trade_id"] for r in ledger_bp) == Counter(bp_fills)
        # paper: no fill twice, and every order filled by exactly its fills
        dupes = await conn.fetch(
            "SELECT account_id, client_order_id, count(*) FROM fills"
            " GROUP BY account_id, client_order_id HAVING count(*) > 1 AND account_id <> 'bob-bp'"
        )
        assert dupes == []
        sums = {
            r["client_order_id"]: r["qty"]
            for r in await conn.fetch(
                "SELECT client_order_id, sum(qty) AS qty FROM fills GROUP BY client_order_id"
            )
        }
        for r in orders:
            assert r["filled_qty"] == sums.get(r["client_order_id"], D(0)), dict(r)
            assert (r["status"] == "filled") == (r["filled_qty"] == r["qty"]), dict(r)
        fills = await conn.fetchval("SELECT count(*) FROM fills")
        print(f"[killed] fills booked: {fills} (Backpack {len(bp_fills)})")
    finally:
        await conn.close()


async def check_reconciliation(nats_url: str, database_url: str, nc: NATS) -> None:
    reports = await reconcile_now(nats_url, database_url, nc)
    bad = {
        a: [msgspec.structs.asdict(row) for row in r.rows if not row.ok]
        for a, r in reports.items()
        if r.status != "ok"
    }
    assert sorted(reports) == ["alice-paper", "bob-bp", "carol-paper", "dave-perp"]
    assert bad == {}


async def test_execution_killed_twice_150_intents(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    """Two kills in ``make test``; three and more (the 10-kill run) in ``make test-all``."""
    await run_scenario(Scenario(intents=150, kills=2, seconds=10), nats_url, database_url, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_execution_killed_3_times_300_intents(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    await run_scenario(Scenario(intents=300, kills=3, seconds=20), nats_url, database_url, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_execution_killed_10_times_1000_intents(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    await run_scenario(
        Scenario(intents=1000, kills=10, seconds=60), nats_url, database_url, tmp_path
    )


CUT_OFF_ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}}
"""
CUT_OFF = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"alice-paper","symbol":"BTCUSDT",'
    '"side":"buy","qty":"0.01","price":"50000"}'
)
LOCK = D("500.5")
"""What one CUT_OFF order locks: 0.01 * 50000 plus the worst-case fee (10 bps)."""


async def test_places_cut_off_before_the_paper_venue_answered_are_placed_once_after_restart(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    """A killed execution left a ``new`` row (intent unacked) and an ``unknown`` one:
    the restarted paper venue does not have them, says so, and the engine places
    each once; a redelivery and another restart change nothing."""
    settings = execution_settings(nats_url, database_url, tmp_path, CUT_OFF_ACCOUNTS)
    async with collecting(nats_url, Bus) as bus:
        async with execution_service(bus.nc, settings):
            pass  # accounts and the consumer exist
        pool = await create_pool(database_url)
        ledger = Ledger(pool)
        for intent_id in ("cut-new", "cut-unknown"):
            await ledger.insert_order(
                NewOrder(
                    intent_id=IntentId(intent_id),
                    account_id=AccountId("alice-paper"),
                    user_id=UserId("alice"),
                    source="manual",
                    symbol="BTCUSDT",
                    side="buy",
                    order_type="limit",
                    price=D(50000),
                    qty=D("0.01"),
                    trigger_ts=None,
                    stream_seq=None,
                    ts=time.time_ns(),
                )
            )
        await ledger.set_order_status(
            UserId("alice"), IntentId("cut-unknown"), OrderStatus.UNKNOWN, time.time_ns()
        )
        await bus.pub("intent.alice.manual", CUT_OFF % "cut-new", "cut-new")

        async def statuses() -> dict[str, str]:
            rows = await pool.fetch("SELECT intent_id, status FROM orders")
            return {r["intent_id"]: r["status"] for r in rows}

        async with execution_service(bus.nc, settings):
            await eventually(
                lambda: bus.of(OrderAccepted, "cut-new") and bus.of(OrderAccepted, "cut-unknown"),
                what="both cut-off orders accepted",
            )
            assert await statuses() == {"cut-new": "accepted", "cut-unknown": "accepted"}
            assert (await bus.balance("USDT")).locked == 2 * LOCK
            await bus.pub("intent.alice.manual", CUT_OFF % "cut-new", "cut-new-again")
            await eventually(lambda: len(bus.of(OrderAccepted, "cut-new")) >= 1)
            await asyncio.sleep(0.5)
            assert (await bus.balance("USDT")).locked == 2 * LOCK
        async with execution_service(bus.nc, settings):  # the durable consumer exists: poll

            async def restored() -> bool:
                try:
                    usdt = await bus.balance("USDT")
                except nats.errors.NoRespondersError:
                    return False
                return (usdt.total, usdt.locked) == (D(10000), 2 * LOCK)

            await eventually(restored, what="the restarted venue to hold both orders")
        assert await statuses() == {"cut-new": "accepted", "cut-unknown": "accepted"}
        await pool.close()

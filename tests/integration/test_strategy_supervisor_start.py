"""A host starting more bots than it can within one lease time keeps its lease.

Starting a bot costs a KV or stream round trip or two; a host with 10,000 bots
used to start them without renewing the leases it had taken, so the first
ones expired (TTL = lease time) before the last bot ran: the host dropped and
resumed thousands of bots, each re-sending its unanswered intents (found by
``make bench`` with 10,000 bots). Leases are now one per replica; the host must
still renew its own during a long start. Here the starts are made slow on
purpose (0.8 s each, 64 at a time) against a 3 s lease on a real NATS KV bucket:
400 bots take about twice the lease time to start, and none may be lost.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry

from tradebus.common.bus import ensure_streams
from tradebus.common.clock import LiveClock
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.publish_acks import PublishAcks
from tradebus.control.botstore import apply_specs
from tradebus.strategies.registry import BotSpec
from tradebus.strategy import supervisor as supervisor_module
from tradebus.strategy.host import BotRunner, Dispatcher
from tradebus.strategy.host_metrics import HostMetrics
from tradebus.strategy.kvstore import BotRecord, open_buckets
from tradebus.strategy.publisher import IntentPublisher
from tradebus.strategy.supervisor import Supervisor

BOTS = 400
LEASE_SECONDS = 3.0
HEARTBEAT_SECONDS = 0.5
START_SECONDS = 0.8


def ladder(i: int) -> BotSpec:
    params = {"total_quote": "100", "order_count": 2, "max_drop_pct": "5", "take_profit_pct": "1"}
    return BotSpec(
        id=BotId(f"u{i % 7}-ladder-{i:04d}"),
        user=UserId(f"u{i % 7}"),
        account=AccountId(f"u{i % 7}-paper"),
        strategy="ladder",
        venue="binance",
        symbol="BTCUSDT",
        params=params,
    )


async def test_a_long_start_renews_the_leases_it_already_holds(
    nc: NATS, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "START_CONCURRENCY", 64)  # 7 slow chunks
    js = nc.jetstream()
    await ensure_streams(js)
    buckets = await open_buckets(js, LEASE_SECONDS)
    await apply_specs(js, [ladder(i) for i in range(BOTS)])
    metrics = HostMetrics(CollectorRegistry())
    acks = PublishAcks(nc)
    await acks.start()
    publisher = IntentPublisher(acks, LiveClock(), metrics)
    supervisor = Supervisor(
        js,
        buckets,
        Dispatcher(publisher, metrics, host="host-a"),
        publisher,
        MarketCatalog.load(default_markets_path()),
        metrics,
        "host-a",
        subscribe=lambda market: None,
        unsubscribe=lambda market: None,
        heartbeat_seconds=HEARTBEAT_SECONDS,
        lease_seconds=LEASE_SECONDS,
    )
    start_bot = supervisor.start_bot

    async def slow_start(
        spec: BotSpec,
        fresh: bool = False,
        record: tuple[BotRecord | None, int] | None = None,
        exec_seq: int | None = None,
    ) -> BotRunner:
        await asyncio.sleep(START_SECONDS)
        return await start_bot(spec, fresh, record, exec_seq)

    supervisor.start_bot = slow_start  # type: ignore[method-assign]
    tasks = [asyncio.create_task(publisher.run()), asyncio.create_task(supervisor.watch_specs())]
    caplog.set_level(logging.WARNING, logger="tradebus.strategy")
    try:
        await asyncio.wait_for(supervisor.specs_ready.wait(), 10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not supervisor.started.is_set():
            await supervisor.beat()
            await supervisor.reconcile()
        took = loop.time() - started
        assert took > 1.5 * LEASE_SECONDS  # the start outlasted the lease time
        for _ in range(3):  # and the leases stay ours afterwards
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await supervisor.beat()
        assert len(supervisor.dispatcher.runners) == BOTS
        assert supervisor.leases.held  # the replica's one lease, renewed all along
        bots = [ladder(i).id for i in range(BOTS)]
        assert await supervisor.leases.owners(bots) == dict.fromkeys(bots, "host-a")
        assert not [r.message for r in caplog.records if "lease lost" in r.message]
        assert not [r.message for r in caplog.records if "bots dropped" in r.message]
        # every bot started once, fresh: none was dropped and resumed
        assert metrics.resumes.labels(mode="fresh")._value.get() == BOTS
        assert metrics.resumes.labels(mode="resume")._value.get() == 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

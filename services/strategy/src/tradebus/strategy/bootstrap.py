"""Composition root of a strategy host: bots from the bot file, NATS subscriptions, publisher.

Subscriptions: one core-NATS subscription ``md.*.<venue>.<symbol>`` per market
the bots trade; one JetStream ordered consumer of ``exec.evt.>`` for order
events; request/reply ``ctl.bots.status`` and ``ctl.bots.list``.
Shutdown: stop ticks, stop every bot (cancels per ``cancel_on_exit``), wait
for the intents to be acknowledged and the cancels confirmed, then leave.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from tradebus.common import subjects
from tradebus.common.bus import connect, ensure_streams
from tradebus.common.clock import LiveClock
from tradebus.common.codec import decode_bots_query, decode_event, decode_market, encode
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import BotsReply, ErrorReply
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.strategy.botfile import load_bots
from tradebus.strategy.host import Dispatcher, HostMetrics
from tradebus.strategy.publisher import IntentPublisher
from tradebus.strategy.settings import StrategySettings

log = logging.getLogger(__name__)

MD_PENDING_MSGS = 2_000_000
MD_PENDING_BYTES = 1024 * 1024 * 1024
YIELD_EVERY_TICKS = 16


async def run(settings: StrategySettings, stop: asyncio.Event) -> int:
    """Run the host until ``stop`` is set; returns the exit status."""
    catalog = MarketCatalog.load(settings.markets_file or default_markets_path())
    bots = load_bots(settings.bots_file, catalog)
    registry = new_registry()
    metrics = HostMetrics(registry)
    server = serve_metrics(registry, settings.metrics_port)
    nc = await connect(settings.nats_url, "strategy")
    js = nc.jetstream()
    await ensure_streams(js)
    clock = LiveClock()
    publisher = IntentPublisher(js, clock, metrics)
    dispatcher = Dispatcher(bots, publisher, metrics)
    tasks = [asyncio.create_task(publisher.run())]

    ticks_since_yield = 0

    async def on_market(msg: Msg) -> None:
        nonlocal ticks_since_yield
        try:
            tick = decode_market(msg.data)
        except msgspec.MsgspecError:
            log.warning("undecodable tick", extra={"subject": msg.subject})
            return
        ticks_since_yield += 1
        # nats-py runs this callback back to back while ticks are queued; yield so the
        # intents just emitted are published, and order events reach the bots, now
        if dispatcher.on_tick(tick) or ticks_since_yield >= YIELD_EVERY_TICKS:
            ticks_since_yield = 0
            await asyncio.sleep(0)

    async def on_event(msg: Msg) -> None:
        try:
            _, _, user, source = msg.subject.split(".", 3)
            event = decode_event(msg.data)
        except (ValueError, msgspec.MsgspecError):
            log.warning("undecodable order event", extra={"subject": msg.subject})
            return
        dispatcher.on_order_event(user, source, event)

    async def on_status(msg: Msg) -> None:
        try:
            query = decode_bots_query(msg.data or b'{"type":"BotsQuery"}')
        except msgspec.MsgspecError as exc:
            await msg.respond(encode(ErrorReply(error="bad_request", message=str(exc))))
            return
        await msg.respond(encode(BotsReply(bots=dispatcher.statuses(query.bot))))

    events_sub = await js.subscribe(
        subjects.EXEC_EVT_ALL,
        cb=on_event,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
    )
    ctl_subs = [
        await nc.subscribe(subjects.ctl("bots", verb), cb=on_status) for verb in ("status", "list")
    ]
    md_subs = [
        await nc.subscribe(
            subjects.md_symbol_wildcard(venue, symbol),
            cb=on_market,
            pending_msgs_limit=MD_PENDING_MSGS,
            pending_bytes_limit=MD_PENDING_BYTES,
        )
        for venue, symbol in dispatcher.markets()
    ]
    await nc.flush()
    metrics.ready.set(1)
    log.info(
        "strategy host ready",
        extra={"bots": len(bots), "markets": [f"{v}:{s}" for v, s in dispatcher.markets()]},
    )

    async def refresh_gauges() -> None:
        while True:
            dispatcher.update_state_gauge()
            await asyncio.sleep(1.0)

    tasks.append(asyncio.create_task(refresh_gauges()))
    await stop.wait()

    log.info("stopping bots")
    for sub in md_subs:
        await sub.unsubscribe()
    dispatcher.stop_all()
    deadline = time.monotonic() + settings.stop_timeout_seconds
    await publisher.drain(settings.stop_timeout_seconds)
    while dispatcher.open_orders() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    left = dispatcher.open_orders()
    if left:
        log.warning("orders still open at exit", extra={"open_orders": left})
    dispatcher.update_state_gauge()
    for task in tasks:
        task.cancel()
    for sub in (events_sub, *ctl_subs):
        await sub.unsubscribe()
    await nc.drain()
    server.close()
    log.info("strategy host stopped", extra={"open_orders": left})
    return 0

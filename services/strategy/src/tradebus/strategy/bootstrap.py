"""Composition root of a strategy host replica.

Wiring: KV buckets (``bots``, ``bot_state``, ``leases``, ``group_volume``);
one core-NATS subscription ``md.*.<venue>.<symbol>`` per market its bots
trade (opened and closed as bots come and go); one JetStream ordered
consumer of ``exec.evt.>`` (a :class:`~tradebus.common.bus.StreamTail`, renewed
after every reconnect) started before any bot, so a resumed bot's
catch-up and the live events overlap and nothing falls between them; the
``ctl.bots.*`` responders; the publisher; the bots' status changes on
``bot.status.<user>.<bot>`` (:mod:`~tradebus.strategy.status_events`); and
the supervisor's loop (heartbeat, leases, reassignment) with periodic
snapshots, balances and group volumes.

Shutdown: hand the bots to other live replicas, or, as the last replica,
stop them (cancels per ``cancel_on_exit``) and wait for the cancels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tradebus.common import subjects
from tradebus.common.bus import StreamTail, connect, ensure_streams
from tradebus.common.clock import LiveClock
from tradebus.common.codec import decode_event, decode_market
from tradebus.common.config import redact_url
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.common.publish_acks import PublishAcks
from tradebus.common.runtime import unless_stopped
from tradebus.control.botstore import apply_specs
from tradebus.strategies.catalog import strategy_catalog
from tradebus.strategy.control import Control
from tradebus.strategy.host import Dispatcher
from tradebus.strategy.host_metrics import HostMetrics
from tradebus.strategy.inputs import Balances, GroupVolumes
from tradebus.strategy.kvstore import open_buckets
from tradebus.strategy.markets import keep_learning, learn_markets
from tradebus.strategy.position_checks import PositionChecks
from tradebus.strategy.publisher import IntentPublisher
from tradebus.strategy.settings import StrategySettings, default_replica_id
from tradebus.strategy.specload import load_specs_apart
from tradebus.strategy.status_events import StatusEvents
from tradebus.strategy.supervisor import STABLE_BEATS, Supervisor

log = logging.getLogger(__name__)

MD_PENDING_MSGS = 2_000_000
MD_PENDING_BYTES = 1024 * 1024 * 1024
YIELD_EVERY_TICKS = 16


async def run(settings: StrategySettings, stop: asyncio.Event) -> int:
    """Run the host until ``stop`` is set; returns the exit status."""
    catalog = MarketCatalog.load(settings.markets_file or default_markets_path())
    for problem in strategy_catalog().problems:  # its bots fail alone, each with this reason
        log.error("strategy plug-in not loaded", extra={"error": problem})
    replica = settings.replica_id or default_replica_id()
    subjects.token(replica, "replica")
    registry = new_registry()
    metrics = HostMetrics(registry)
    server = serve_metrics(registry, settings.metrics_port, settings.metrics_host)
    nc = await unless_stopped(  # SIGTERM works while NATS is unreachable (connect retries)
        connect(
            settings.nats_url,
            f"strategy-{replica}",
            creds=settings.nats_creds,
            stream_replicas=settings.stream_replicas,
        ),
        stop,
        f"NATS at {redact_url(settings.nats_url)}",
    )
    await learn_markets(nc, catalog)  # the venues' own rules, before any bot is built
    specs = await load_specs_apart(settings.bots_file, catalog) if settings.bots_file else None
    js = nc.jetstream()
    await ensure_streams(js)
    buckets = await open_buckets(js, settings.lease_seconds)
    if specs is not None:
        result = await apply_specs(js, specs)
        log.info(
            "bot file applied", extra={"file": settings.bots_file, **msgspec.to_builtins(result)}
        )
    acks = PublishAcks(nc)
    await acks.start()
    publisher = IntentPublisher(acks, LiveClock(), metrics)
    dispatcher = Dispatcher(
        publisher,
        metrics,
        host=replica,
        max_price_age_ns=int(settings.max_price_age_seconds * 1_000_000_000),
    )
    status_events = StatusEvents(nc.publish, dispatcher)  # bot.status.<user>.<bot>
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

    md_subs: dict[tuple[str, str], Subscription] = {}
    pending: set[asyncio.Task[None]] = set()

    async def subscribe(market: tuple[str, str]) -> None:
        if market not in md_subs:
            md_subs[market] = await nc.subscribe(
                subjects.md_symbol_wildcard(*market),
                cb=on_market,
                pending_msgs_limit=MD_PENDING_MSGS,
                pending_bytes_limit=MD_PENDING_BYTES,
            )

    async def unsubscribe(market: tuple[str, str]) -> None:
        sub = md_subs.pop(market, None)
        if sub is not None:
            await sub.unsubscribe()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        pending.add(task)
        task.add_done_callback(pending.discard)

    supervisor = Supervisor(
        js,
        buckets,
        dispatcher,
        publisher,
        catalog,
        metrics,
        replica,
        subscribe=lambda m: spawn(subscribe(m)),
        unsubscribe=lambda m: spawn(unsubscribe(m)),
        heartbeat_seconds=settings.heartbeat_seconds,
        lease_seconds=settings.lease_seconds,
    )

    async def on_event(msg: Msg) -> None:
        try:
            _, _, user, source = msg.subject.split(".", 3)
            event = decode_event(msg.data)
        except (ValueError, msgspec.MsgspecError):
            log.warning("undecodable order event", extra={"subject": msg.subject})
            return
        dispatcher.on_order_event(user, source, msg.metadata.sequence.stream, event)

    # an ordered consumer that is replaced at once after a reconnect (a restarted
    # nats-server has forgotten it): bots keep hearing their fills
    events_tail = StreamTail(nc, subjects.STREAM_EXEC, subjects.EXEC_EVT_ALL, on_event)
    await events_tail.start()
    checks = PositionChecks(nc, dispatcher)
    control = Control(nc, supervisor, checks=checks)
    await control.start()
    balances = Balances(nc, dispatcher, settings.account_refresh_seconds)
    volumes = GroupVolumes(
        buckets.volume,
        dispatcher,
        publisher,
        0.5,
        members=lambda group: [
            b for b, spec in supervisor.specs.items() if spec.group_name == group
        ],
    )

    async def supervise() -> None:
        ready = False
        await supervisor.specs_ready.wait()
        while True:
            try:
                await supervisor.beat()
                await supervisor.reconcile()
            except Exception as exc:  # NATS hiccup: try again next beat
                log.exception("supervision round failed", extra={"error": repr(exc)})
            if supervisor.started.is_set() and not ready:
                ready = True
                metrics.ready.set(1)
                log.info(
                    "strategy host ready",
                    extra={"replica": replica, "bots": len(dispatcher.runners)},
                )
            balances.wake.set()
            # the first rounds come quickly: replicas starting together meet, then bots start
            quick = supervisor.beats < STABLE_BEATS
            await supervisor.wait_next_beat(0.3 if quick else settings.heartbeat_seconds)

    async def snapshots() -> None:
        while True:
            await asyncio.sleep(settings.snapshot_interval_seconds)
            supervisor.save_dirty()
            dispatcher.update_state_gauge()

    tasks = [
        asyncio.create_task(publisher.run()),
        asyncio.create_task(supervisor.watch_specs()),
        asyncio.create_task(volumes.watch()),
        asyncio.create_task(volumes.report()),
        asyncio.create_task(balances.run()),
        asyncio.create_task(checks.run()),
        asyncio.create_task(snapshots()),
        asyncio.create_task(status_events.run()),
        supervision := asyncio.create_task(supervise()),
        asyncio.create_task(supervisor.keep_alive()),  # also while shutdown hands over
        asyncio.create_task(keep_learning(nc, catalog)),
    ]
    await nc.flush()

    await stop.wait()
    log.info("stopping host", extra={"replica": replica, "bots": len(dispatcher.runners)})
    supervision.cancel()  # no more reassignment while leaving
    left = await supervisor.shutdown(settings.stop_timeout_seconds)
    if left:
        log.warning("orders still open at exit", extra={"open_orders": left})
    await publisher.drain(settings.stop_timeout_seconds)
    dispatcher.update_state_gauge(every_bot=True)
    for task in tasks:
        task.cancel()
    await status_events.close()  # the bots' last statuses (stopped, or handed over)
    await control.stop()
    await events_tail.stop()
    await nc.drain()
    server.close()
    log.info("strategy host stopped", extra={"replica": replica, "open_orders": left})
    return 0

"""Composition root of the execution service.

Wires: migrations (under an advisory lock), accounts (ledger rows, paper
venues, and a ccxt venue with its fill poller and order stream per live
account: :mod:`.live_accounts`), the engine, a core-NATS subscription to the
market data of every paper venue, the ``exec.query.balances`` responder, and
the durable pull consumer of
``INTENTS`` whose messages are acked only after the engine has committed
them and published their events (transient failures and venue outcomes still
unknown are nak'ed with a delay and retried). Each fetch batch goes to the
engine's group commit (:meth:`ExecutionEngine.handle_intents`), which takes
as many leading messages as it can handle together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tradebus.common import subjects
from tradebus.common.bus import connect, ensure_streams, publish_event
from tradebus.common.clock import LiveClock
from tradebus.common.codec import decode_balances_query, decode_market
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import BalancesReply, Message, TradeTick
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.execution.accounts import AccountSpec, load_accounts
from tradebus.execution.adjust import AdjustControl
from tradebus.execution.consumer_lag import start_consumer_lag
from tradebus.execution.engine import TRANSIENT_ERRORS, ExecutionEngine, RetryLater
from tradebus.execution.event_acks import EventAcks
from tradebus.execution.killswitch import KillSwitchControl
from tradebus.execution.live_accounts import open_live_accounts, start_live_tasks
from tradebus.execution.metrics import ExecutionMetrics
from tradebus.execution.paper import PaperExchange, PaperVenue
from tradebus.execution.paper_restore import restore_account
from tradebus.execution.replies import answer
from tradebus.execution.settings import ExecutionSettings
from tradebus.execution.venue import Venue
from tradebus.ledger.entries import deposit_entries
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.store import Ledger, create_pool

log = logging.getLogger(__name__)

MD_PENDING_MSGS = 2_000_000
MD_PENDING_BYTES = 1024 * 1024 * 1024
ACK_WAIT_SECONDS = 30.0


async def open_accounts(
    specs: list[AccountSpec], ledger: Ledger, catalog: MarketCatalog, now_ns: int
) -> tuple[dict[str, Venue], dict[str, PaperExchange]]:
    """Create ledger accounts (with their starting deposits) and one paper venue per paper
    account (live accounts: :func:`open_live_accounts`).

    A paper account's state (balances, resting orders, perpetual positions) is
    rebuilt from the ledger, the source of truth (:mod:`.paper_restore`): on
    the first start the ledger holds only the configured deposits; after a
    restart it holds everything the previous run booked.
    """
    exchanges: dict[str, PaperExchange] = {}
    venues: dict[str, Venue] = {}
    for spec in specs:
        if spec.live:
            continue
        exchange = exchanges.get(spec.market_data)
        if exchange is None:
            exchange = exchanges[spec.market_data] = PaperExchange(catalog, spec.market_data)
        deposits = deposit_entries(spec.id, dict(spec.balances), "initial")
        await ledger.ensure_account(spec.id, spec.user, spec.venue, deposits, now_ns)
        await restore_account(exchange, ledger, spec)
        venues[spec.id] = PaperVenue(exchange, spec.id)
    return venues, exchanges


async def consume_intents(
    engine: ExecutionEngine,
    js,
    settings: ExecutionSettings,
    stop: asyncio.Event,
    metrics: ExecutionMetrics,
) -> None:
    """Pull intents and hand them to the engine; ack after commit, nak on transient errors."""
    psub = await js.pull_subscribe(
        subjects.INTENT_ALL,
        durable=settings.consumer,
        stream=subjects.STREAM_INTENTS,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_SECONDS,
            max_ack_pending=10_000,
        ),
    )
    metrics.ready.set(1)
    try:
        await _consume(engine, psub, settings, stop)
    finally:
        await psub.unsubscribe()


async def _consume(
    engine: ExecutionEngine, psub, settings: ExecutionSettings, stop: asyncio.Event
) -> None:  # type: ignore[no-untyped-def]
    while not stop.is_set():
        try:
            msgs = await psub.fetch(settings.fetch_batch, timeout=0.5)
        except (nats.errors.TimeoutError, TimeoutError):
            continue
        except nats.errors.Error as exc:
            log.warning("fetch failed", extra={"error": repr(exc)})
            await asyncio.sleep(0.5)
            continue
        batch = [(m.subject, m.data, m.metadata.sequence.stream) for m in msgs]
        i = 0
        while i < len(msgs):
            try:
                done = await engine.handle_intents(batch[i:])
            except TRANSIENT_ERRORS as exc:
                log.warning("transient failure; will retry", extra={"error": repr(exc)})
                if not isinstance(exc, RetryLater):  # the database or the bus, not a venue
                    engine.set_healthy(False, f"intents wait: {type(exc).__name__}")
                for pending in msgs[i:]:
                    with contextlib.suppress(nats.errors.Error, OSError):
                        await pending.nak(delay=1.0)
                await asyncio.sleep(1.0)
                break
            engine.set_healthy(True)
            for msg in msgs[i : i + done]:
                await msg.ack()
            i += done


async def run(settings: ExecutionSettings, stop: asyncio.Event) -> int:
    """Run execution until ``stop`` is set; returns the exit status."""
    catalog = MarketCatalog.load(settings.markets_file or default_markets_path())
    specs = load_accounts(settings.accounts_file)
    registry = new_registry()
    metrics = ExecutionMetrics(registry)
    server = serve_metrics(registry, settings.metrics_port)
    clock = LiveClock()
    pool = await create_pool(settings.database_url)
    async with pool.acquire() as conn:
        applied = await apply_migrations(conn)
    if applied:
        log.info("migrations applied", extra={"versions": applied})
    ledger = Ledger(pool)
    venues, exchanges = await open_accounts(specs, ledger, catalog, clock.now_ns())
    live, halted, connecting = await open_live_accounts(specs, ledger, clock.now_ns())
    venues.update(live)
    nc = await connect(settings.nats_url, "execution")
    js = nc.jetstream()
    await ensure_streams(js)

    async def emit(subject: str, event: Message, msg_id: str) -> None:
        await publish_event(js, subject, event, msg_id)

    event_acks = EventAcks(nc)
    await event_acks.start()

    trade_prices: dict[tuple[str, str], Decimal] = {}  # live accounts' markets

    def last_price(venue: str, symbol: str) -> Decimal | None:
        exchange = exchanges.get(venue)
        if exchange is not None:
            return exchange.last_trade(symbol)
        return trade_prices.get((venue, symbol))

    engine = ExecutionEngine(
        ledger,
        {s.id: s for s in specs},
        venues,
        catalog,
        emit,
        clock,
        metrics,
        last_price,
        event_acks.publish,
    )
    await engine.start()
    for account, reason in halted.items():
        await engine.halt(account, reason)
    pollers = start_live_tasks(engine, ledger, live, connecting, specs, clock, stop)
    pollers.append(start_consumer_lag(js, settings.consumer, metrics))  # cancelled with them
    kill_switch = KillSwitchControl(engine, metrics, clock)
    await kill_switch.start(nc, js)
    adjustments = AdjustControl(engine, ledger, catalog, exchanges, clock)
    await adjustments.start(nc)
    tick_counters: dict[tuple[str, str], object] = {}

    async def on_market(msg: Msg) -> None:
        try:
            tick = decode_market(msg.data)
        except msgspec.MsgspecError:
            return
        exchange = exchanges.get(tick.venue)
        if exchange is None:
            return
        key = (tick.venue, tick.symbol)
        counter = tick_counters.get(key)
        if counter is None:
            counter = tick_counters[key] = metrics.ticks.labels(
                venue=tick.venue, symbol=tick.symbol
            )
        counter.inc()  # type: ignore[attr-defined]
        async with engine.lock:
            if isinstance(tick, TradeTick):
                fills = exchange.on_trade(tick)
                if fills:
                    metrics.venue_fills.labels(venue="paper").inc(len(fills))
                    await engine.record_fills(fills)
            else:
                exchange.on_quote(tick)

    async def balances_reply(data: bytes) -> Message:
        query = decode_balances_query(data or b'{"type":"BalancesQuery"}')
        accounts = await engine.balances(query.account)
        return BalancesReply(accounts=accounts, ts_event=clock.now_ns())

    async def on_balances(msg: Msg) -> None:
        await answer(msg, balances_reply)

    md_subs = [
        await nc.subscribe(
            f"md.*.{subjects.token(venue, 'venue')}.*",
            cb=on_market,
            pending_msgs_limit=MD_PENDING_MSGS,
            pending_bytes_limit=MD_PENDING_BYTES,
        )
        for venue in sorted(exchanges)
    ]

    async def on_live_trade(msg: Msg) -> None:
        with contextlib.suppress(msgspec.MsgspecError):
            tick = decode_market(msg.data)
            if isinstance(tick, TradeTick):
                trade_prices[(tick.venue, tick.symbol)] = tick.price

    live_markets = sorted({s.market_data for s in specs if s.live} - set(exchanges))
    md_subs += [
        await nc.subscribe(f"md.trade.{subjects.token(venue, 'venue')}.*", cb=on_live_trade)
        for venue in live_markets
    ]
    query_sub = await nc.subscribe(subjects.exec_query("balances"), cb=on_balances)
    await nc.flush()
    log.info("execution ready", extra={"accounts": sorted(venues)})
    try:
        await consume_intents(engine, js, settings, stop, metrics)
    finally:
        for sub in (*md_subs, query_sub):
            await sub.unsubscribe()
        await kill_switch.stop()
        await adjustments.stop()
        log.info("stopping: subscriptions closed")
        for task in pollers:
            task.cancel()
        for task in pollers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with engine.lock:
            pass  # let an in-flight fill commit
        for venue in live.values():
            await venue.close()
        await nc.drain()
        log.info("stopping: nats drained")
        await pool.close()
        server.close()
        log.info(
            "execution stopped",
            extra={
                "paper_orders_placed": sum(e.orders_placed for e in exchanges.values()),
                "paper_fills_made": sum(e.fills_made for e in exchanges.values()),
            },
        )
    return 0

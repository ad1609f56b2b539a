"""Composition root of the execution service.

Wires: migrations (under an advisory lock), accounts (ledger rows, paper
venues, and a ccxt venue with its fill poller and order stream per live
account: :mod:`.live_accounts`), the engine, a core-NATS subscription to the
market data of every paper venue (:mod:`.market_feed`), the
``exec.query.balances`` responder, the accounts added at run time (the
ledger's ``account_configs``, loaded at start and on ``ctl.accounts.sync``:
:mod:`.accounts_sync`), and the intake
(:class:`~.intent_consumer.IntentConsumer`): one durable pull consumer per
user's ``INTENTS_<user>`` stream, scheduled fairly across users and in order
per account, acked only after the engine has committed the intents and
published their events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import ccxt
from nacl.public import PrivateKey
from nats.aio.msg import Msg

from tradebus.common import subjects
from tradebus.common.bus import MSG_ID, IntentQuota, connect, ensure_streams, publish_event
from tradebus.common.clock import LiveClock
from tradebus.common.codec import decode_balances_query, decode_markets_query, encode
from tradebus.common.config import ConfigError, redact_url
from tradebus.common.ids import AccountId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import BalancesReply, MarketsReply, Message
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.common.publish_acks import PublishAcks
from tradebus.common.runtime import unless_stopped
from tradebus.common.sealed import SealedError, load_private_key
from tradebus.control.audit import AuditTrail
from tradebus.engine.accounts import AccountSpec, load_accounts
from tradebus.engine.core import ExecutionEngine
from tradebus.engine.paper.exchange import PaperExchange, PaperVenue
from tradebus.engine.venue import Venue, VenueRejected, VenueUnavailable
from tradebus.execution.account_start import AccountStart
from tradebus.execution.accounts_sync import AccountLoader
from tradebus.execution.adjust import AdjustControl
from tradebus.execution.bot_groups import BotGroups
from tradebus.execution.ccxt_venue import CcxtVenue
from tradebus.execution.consumer_lag import start_consumer_lag
from tradebus.execution.intent_consumer import IntakeSettings, IntentConsumer
from tradebus.execution.killswitch import KillSwitchControl
from tradebus.execution.live_accounts import open_live_accounts, start_live_tasks
from tradebus.execution.market_feed import MarketFeed
from tradebus.execution.metrics import ExecutionMetrics, VenueClockCollector
from tradebus.execution.paper_restore import restore_account
from tradebus.execution.replies import answer
from tradebus.execution.settings import ExecutionSettings
from tradebus.execution.shard import Shard
from tradebus.ledger.account_configs import AccountConfig, AccountConfigs
from tradebus.ledger.entries import deposit_entries
from tradebus.ledger.history import LedgerHistory
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool
from tradebus.ledger.store import Ledger

log = logging.getLogger(__name__)


async def open_accounts(
    specs: list[AccountSpec],
    ledger: Ledger,
    history: LedgerHistory,
    catalog: MarketCatalog,
    now_ns: int,
) -> tuple[dict[AccountId, Venue], dict[str, PaperExchange]]:
    """Create ledger accounts (with their starting deposits) and one paper venue per paper
    account (live accounts: :func:`open_live_accounts`).

    A paper account's state (balances, resting orders, perpetual positions) is
    rebuilt from the ledger's ``history``, the source of truth (:mod:`.paper_restore`): on
    the first start the ledger holds only the configured deposits; after a
    restart it holds everything the previous run booked.
    """
    exchanges: dict[str, PaperExchange] = {}
    venues: dict[AccountId, Venue] = {}
    for spec in specs:
        if spec.live:
            continue
        exchange = exchanges.get(spec.market_data)
        if exchange is None:
            exchange = exchanges[spec.market_data] = PaperExchange(catalog, spec.market_data)
        deposits = deposit_entries(spec.id, dict(spec.balances), "initial")
        await ledger.ensure_account(spec.id, spec.user, spec.venue, deposits, now_ns)
        await restore_account(exchange, history, spec)
        venues[spec.id] = PaperVenue(exchange, spec.id)
    return venues, exchanges


def load_seal_key(settings: ExecutionSettings) -> PrivateKey | None:
    """Execution's private key for sealed credentials (``TRADEBUS_SEAL_KEY_FILE``), or None
    when not set (live accounts added at run time are then loaded halted).

    Raises
    ------
    ConfigError
        If the file is set but cannot be read or holds no key (never its content).
    """
    if not settings.seal_key_file:
        return None
    try:
        return load_private_key(settings.seal_key_file)
    except SealedError as exc:
        raise ConfigError(f"TRADEBUS_SEAL_KEY_FILE: {exc}") from None


def check_unique(specs: list[AccountSpec], rows: list[AccountConfig], accounts_file: str) -> None:
    """Refuse an account id that is both in the accounts file and added at run time.

    Raises
    ------
    ConfigError
        Naming every such id.
    """
    both = sorted({s.id for s in specs} & {r.account_id for r in rows})
    if both:
        raise ConfigError(
            f"account {', '.join(both)}: both in {accounts_file} and added at run time"
            " (account_configs); remove it from the file"
        )


def intake_settings(settings: ExecutionSettings) -> IntakeSettings:
    """How the intent consumer fetches, schedules and limits intents (from ``settings``)."""
    return IntakeSettings(
        consumer=settings.consumer,
        fetch_batch=settings.fetch_batch,
        user_inflight=settings.user_inflight,
        ack_wait=settings.ack_wait_seconds,
        max_deliver=settings.max_deliver,
        rate=settings.intent_rate,
        burst=settings.intent_burst,
        quota=IntentQuota(
            backlog_msgs=settings.intent_backlog,
            backlog_bytes=settings.intent_backlog_bytes,
            msg_bytes=settings.intent_max_bytes,
        ),
        shard=shard_of(settings),
    )


def shard_of(settings: ExecutionSettings) -> Shard:
    """This process's shard (``TRADEBUS_EXECUTION_SHARD`` of ``TRADEBUS_EXECUTION_SHARDS``).

    Raises
    ------
    ConfigError
        Naming the variable and its value when out of range.
    """
    return Shard(settings.execution_shard, settings.execution_shards)


def check_settings(settings: ExecutionSettings) -> None:
    """Refuse settings no intake can run with.

    Raises
    ------
    ConfigError
        Naming the variable and its value.
    """
    problems = [
        f"TRADEBUS_{name.upper()}={value!r}: must be {rule}"
        for name, value, ok, rule in (
            ("fetch_batch", settings.fetch_batch, settings.fetch_batch >= 1, ">= 1"),
            ("user_inflight", settings.user_inflight, settings.user_inflight >= 1, ">= 1"),
            ("max_deliver", settings.max_deliver, settings.max_deliver >= 2, ">= 2"),
            ("intent_rate", settings.intent_rate, settings.intent_rate >= 0, ">= 0"),
            ("intent_burst", settings.intent_burst, settings.intent_burst >= 1, ">= 1"),
            ("intent_backlog", settings.intent_backlog, settings.intent_backlog >= 1, ">= 1"),
            (
                "intent_backlog_bytes",
                settings.intent_backlog_bytes,
                settings.intent_backlog_bytes >= 1024,
                ">= 1024",
            ),
            (
                "intent_max_bytes",
                settings.intent_max_bytes,
                settings.intent_max_bytes >= 512,
                ">= 512",
            ),
        )
        if not ok
    ]
    if problems:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems))


async def refresh_markets(
    venues: dict[AccountId, CcxtVenue], every_seconds: float, stop: asyncio.Event
) -> None:
    """Load each live venue's markets again every ``every_seconds`` (a venue that does
    not answer is tried at the next round), until ``stop``."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)
            return
        for account, venue in list(venues.items()):
            try:
                changed = await venue.refresh_markets()
            except (VenueUnavailable, VenueRejected) as exc:
                log.warning("markets not refreshed", extra={"account": account, "error": str(exc)})
                continue
            if changed:
                log.info("markets refreshed", extra={"account": account, "changed": changed})


async def run(settings: ExecutionSettings, stop: asyncio.Event) -> int:
    """Run execution until ``stop`` is set; returns the exit status."""
    check_settings(settings)
    shard = shard_of(settings)
    catalog = MarketCatalog.load(settings.markets_file or default_markets_path())
    every_spec = load_accounts(settings.accounts_file, live_venues=ccxt.exchanges)
    specs = [s for s in every_spec if shard.owns(s.user)]  # the accounts of this shard's users
    seal_key = load_seal_key(settings)
    registry = new_registry()
    metrics = ExecutionMetrics(registry)
    server = serve_metrics(registry, settings.metrics_port, settings.metrics_host)
    clock = LiveClock()
    # execution's statements leave no session state: no reset round trip after each one
    pool = await create_pool(settings.database_url, light_reset=True)
    async with pool.acquire() as conn:
        applied = await apply_migrations(conn)
    if applied:
        log.info("migrations applied", extra={"versions": applied})
    ledger = Ledger(pool)
    configs = AccountConfigs(pool)
    rows = await configs.active()
    check_unique(every_spec, rows, settings.accounts_file)
    venues, exchanges = await open_accounts(
        specs, ledger, LedgerHistory(pool), catalog, clock.now_ns()
    )
    live, halted, connecting = await open_live_accounts(specs, ledger, clock.now_ns(), catalog)
    venues.update(live)
    registry.register(VenueClockCollector(venues))  # the engine's own dict, kept current
    nc = await unless_stopped(  # SIGTERM works while NATS is unreachable (connect retries)
        connect(
            settings.nats_url,
            "execution",
            creds=settings.nats_creds,
            stream_replicas=settings.stream_replicas,
        ),
        stop,
        f"NATS at {redact_url(settings.nats_url)}",
    )
    js = nc.jetstream()
    await ensure_streams(js)

    async def emit(subject: str, event: Message, msg_id: str) -> None:
        await publish_event(js, subject, event, msg_id)

    acks = PublishAcks(nc)
    await acks.start()

    async def emit_nowait(subject: str, event: Message, msg_id: str) -> asyncio.Future[bytes]:
        return await acks.publish(subject, encode(event), {MSG_ID: msg_id})

    feed = MarketFeed(nc, exchanges, metrics)
    engine = ExecutionEngine(
        ledger,
        {s.id: s for s in specs},
        venues,
        catalog,
        emit,
        clock,
        metrics,
        feed.last_price,
        emit_nowait,
    )
    feed.attach(engine)
    await engine.start()
    for account, reason in halted.items():
        await engine.halt(account, reason)
    at_start = AccountStart(engine, ledger, catalog, AuditTrail(js, "execution", clock), clock)
    pollers = start_live_tasks(engine, ledger, live, connecting, specs, clock, stop, at_start.begin)
    intake = IntentConsumer(
        engine, nc, js, intake_settings(settings), metrics, sorted({s.user for s in specs})
    )
    # the intake's own list of users: it changes as accounts come and go
    pollers.append(start_consumer_lag(js, intake.users, settings.consumer, metrics))
    kill_switch = KillSwitchControl(engine, metrics, clock, quiet_unknown=not shard.alone)
    await kill_switch.start(nc, js)
    adjustments = AdjustControl(
        engine, ledger, catalog, exchanges, clock, quiet_unknown=not shard.alone
    )
    await adjustments.start(nc)

    async def balances_reply(data: bytes) -> Message:
        query = decode_balances_query(data or b'{"type":"BalancesQuery"}')
        accounts = await engine.balances(query.account, query.reconcile)
        if query.bot_positions:
            accounts = [await adjustments.bot_positions(a) for a in accounts]
        return BalancesReply(accounts=accounts, ts_event=clock.now_ns())

    async def on_balances(msg: Msg) -> None:
        await answer(msg, balances_reply, quiet_unknown=not shard.alone)

    async def markets_reply(data: bytes) -> Message:
        query = decode_markets_query(data or b'{"type":"MarketsQuery"}')
        names = [query.venue] if query.venue else sorted({v for v, _ in catalog.all_markets()})
        venues = {name: catalog.venue_markets(name) for name in names}
        return MarketsReply(venues=venues, ts_event=clock.now_ns())

    async def on_markets(msg: Msg) -> None:
        await answer(msg, markets_reply)

    for market_venue in sorted(exchanges):
        await feed.watch_paper(market_venue)
    for market_venue in sorted({s.market_data for s in specs if s.live}):
        await feed.watch_live(market_venue)
    loader = AccountLoader(
        engine=engine,
        ledger=ledger,
        history=LedgerHistory(pool),
        configs=configs,
        catalog=catalog,
        exchanges=exchanges,
        feed=feed,
        intake=intake,
        seal_key=seal_key,
        audit=AuditTrail(js, "execution", clock),
        clock=clock,
        stop=stop,
        file_accounts={s.id for s in every_spec},
        at_start=at_start,
        owns=None if shard.alone else shard.owns,
    )
    started = await loader.load_at_start(rows)
    if started.failed:
        log.error("accounts added at run time that did not load", extra={"failed": started.failed})
    await loader.start(nc)
    bot_groups = BotGroups(js, engine.groups)
    await bot_groups.start()  # before any intent: the strategy groups' capital caps
    for spec in specs:  # before any intent: the accounts file's at_start options
        if spec.id not in engine.connecting and spec.id not in engine.halted:
            await at_start.run(spec, venues[spec.id])
    query_sub = await nc.subscribe(subjects.exec_query("balances"), cb=on_balances)
    markets_sub = await nc.subscribe(subjects.exec_query("markets"), cb=on_markets)
    pollers.append(
        asyncio.create_task(
            refresh_markets(live, settings.markets_refresh_seconds, stop), name="markets"
        )
    )
    await nc.flush()
    log.info(
        "execution ready",
        extra={"accounts": sorted(engine.accounts), "shard": f"{shard.index}/{shard.count}"},
    )
    await intake.start()
    metrics.ready.set(1)
    try:
        await intake.run(stop)
    finally:
        await intake.close()
        await feed.close()
        await query_sub.unsubscribe()
        await markets_sub.unsubscribe()
        await loader.close()
        await at_start.close()
        await bot_groups.close()
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

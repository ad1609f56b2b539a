"""NATS restarted mid-run (issue 5): every service reconnects by itself, nothing is lost.

Real nats-server (JetStream on disk, :class:`~tradebus.cli.localstack.LocalNats`),
real PostgreSQL, the real services in-process: execution (paper venue), one
strategy host with six ladder bots of three users, the reconciler, and the
marketdata service replaying the recorded Binance BTCUSDT and ETHUSDT feeds
(a 140 s slice of market time, the dip and rebound of the first capture).

The same run is made twice, each on a fresh NATS and a fresh database: once
undisturbed, once with nats-server stopped for a couple of seconds and
started again on the same port with the same JetStream store.

Why the restart happens between two parts of the replay: market data is
core NATS. Ticks published while the server is down are buffered by the
publishing client only up to its pending size and reach only subscribers
that re-subscribed before the publisher flushed, so ticks lost in a restart
would make the paper venue's fills (which depend only on the tick stream and
the orders' trigger timestamps) legitimately differ. So the slice is cut in
two files; part 1 is replayed, the test waits until everything is quiet
(execution's INTENTS consumer empty, bot statuses and streams unchanged),
then, while every bot holds open orders and JetStream holds the durable
consumer's ack state and the bots' KV state, nats-server is restarted; part 2
is replayed by a new marketdata replay once the services answer again. The
restart is the same moment of market time in both runs, so the comparison
is fair without weakening it.

Every fill is compared exactly. Take-profit sells are marketable, and
execution may take such an intent after it has already processed later
ticks (the host, execution and the replay share one event loop here); the
paper venue still fills it on the trade right after its trigger, as if it
had arrived in time (``paper_rules.RecentEvents``), so the fills depend only
on the market data and the intents.

The bots run one cycle each (``restart_after_take_profit: false``, no
no-fill restart): a new cycle's reference price is the first price *after*
the bot heard its cycle close, which depends on how execution and the host
interleave (README: counts vary a little between full-speed runs). With one
cycle, every order's price and trigger time depend only on the market data.

After the disturbed run: the services still run and answer (``ctl.bots.list``,
``exec.query.balances``, ``ctl.recon.run``); execution's consumer has nothing
pending; every place intent in ``INTENTS`` (and every order a bot counts as
placed) has its order row; every bot's position and fill count in its status
equal what the ledger's fills for it say (no order event lost); every account
reconciles; and the ledger's fills (account, bot, side, price, qty) are those
of the undisturbed run.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import uuid
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.data import BTC_RAW, ETH_RAW
from tests.support.execution import execution_ready, execution_settings, reconciler_settings
from tests.support.intents import IntentRecorder, intents_settled, intents_stored
from tests.support.services import eventually, service
from tradebus.cli.localstack import LocalNats, create_database, with_database
from tradebus.common import subjects
from tradebus.common.codec import (
    decode_balances_reply,
    decode_bots_reply,
    decode_recon_run_reply,
)
from tradebus.common.messages import BalancesQuery, BotStatus, PlaceOrder
from tradebus.execution.bootstrap import run as run_execution
from tradebus.feeds.readers import read_frames
from tradebus.marketdata.bootstrap import run as run_marketdata
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.reconciler.bootstrap import run as run_reconciler
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

log = logging.getLogger(__name__)

NS = 1_000_000_000
SLICE_START_S = 160  # seconds into the first captures: BTC and ETH about to dip
SPLIT_S = 270  # part 1: the dip to its low (buys fill); part 2: the rebound
SLICE_END_S = 300  # after the rebound: take-profits
REPLAY_SPEED = "10"
DOWN_SECONDS = 2.0

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}, maker_fee_bps: "1",
     taker_fee_bps: "2"}
  - {id: bob-paper, user: bob, balances: {USDT: "10000"}}
  - {id: carol-paper, user: carol, balances: {USDT: "10000"}, maker_fee_bps: "0",
     taker_fee_bps: "0"}
"""

# Every buy that fills does so in part 1 (its level is above part 1's low, which part 2
# never revisits); the deepest levels stay open; the take-profits (too high for part 1's
# bounces) are reached on part 2's rebound. So at the restart every bot holds open
# buys, and in part 2 every bot cancels, sells and closes: its orders, cancels and
# fills are all heard after the restart.
BOTS = """
defaults: {venue: binance, restart_after_take_profit: false, no_fill_restart_minutes: "0"}
strategies:
  btc-a: {strategy: ladder, symbol: BTCUSDT, total_quote: "600", order_count: 3,
          max_drop_pct: "0.4", take_profit_pct: "0.08"}
  btc-b: {strategy: ladder, symbol: BTCUSDT, total_quote: "900", order_count: 5,
          max_drop_pct: "0.45", take_profit_pct: "0.05"}
  btc-c: {strategy: ladder, symbol: BTCUSDT, total_quote: "500", order_count: 4,
          max_drop_pct: "0.3", take_profit_pct: "0.1"}
  eth-a: {strategy: ladder, symbol: ETHUSDT, total_quote: "600", order_count: 3,
          max_drop_pct: "0.2", take_profit_pct: "0.05"}
  eth-b: {strategy: ladder, symbol: ETHUSDT, total_quote: "400", order_count: 2,
          max_drop_pct: "0.3", take_profit_pct: "0.05"}
  eth-c: {strategy: ladder, symbol: ETHUSDT, total_quote: "500", order_count: 4,
          max_drop_pct: "0.2", take_profit_pct: "0.1"}
users:
  - {user: alice, account: alice-paper, strategies: {btc-a: {}, eth-a: {}}}
  - {user: bob, account: bob-paper, strategies: {btc-b: {}, eth-b: {}}}
  - {user: carol, account: carol-paper, strategies: {btc-c: {}, eth-c: {}}}
"""
BOT_COUNT = 6
ACCOUNT_IDS = {"alice-paper", "bob-paper", "carol-paper"}

Fill = tuple[str, str, str, D, D]  # account, bot, side, price, qty


def write_parts(data_dir: Path, out: Path) -> tuple[list[Path], list[Path]]:
    """The slice of the first BTCUSDT and ETHUSDT captures, cut at :data:`SPLIT_S` into
    two sets of files (frames unchanged, recorded receive times kept)."""
    out.mkdir(parents=True, exist_ok=True)
    first = min(next(read_frames(data_dir / name))[0] for name in (BTC_RAW[0], ETH_RAW[0]))
    start, split, end = (first + s * NS for s in (SLICE_START_S, SPLIT_S, SLICE_END_S))
    part1, part2 = [], []
    for name in (BTC_RAW[0], ETH_RAW[0]):
        p1, p2 = out / f"part1-{name}", out / f"part2-{name}"
        with gzip.open(p1, "wb", compresslevel=1) as f1, gzip.open(p2, "wb", compresslevel=1) as f2:
            for ts, frame in read_frames(data_dir / name):
                if start <= ts < split:
                    f1.write(b"%d %s\n" % (ts, frame))
                elif split <= ts < end:
                    f2.write(b"%d %s\n" % (ts, frame))
        part1.append(p1)
        part2.append(p2)
    return part1, part2


async def bot_statuses(nc: NATS) -> dict[str, BotStatus]:
    raw = await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=3)
    return {s.bot: s for s in getattr(decode_bots_reply(raw.data), "bots", [])}


async def replay_files(url: str, files: list[Path], speed: str) -> None:
    """Marketdata (in process) replaying ``files`` of BTCUSDT and ETHUSDT at ``speed``
    on the NATS at ``url``; fails the test unless it ends with status 0 within 120 s."""
    feed = MarketdataSettings(
        nats_url=url,
        symbols=["BTCUSDT", "ETHUSDT"],
        replay_files=[str(f) for f in files],
        replay_speed=speed,
        metrics_port=0,
    )
    assert await asyncio.wait_for(run_marketdata(feed, asyncio.Event()), 120) == 0


async def order_rows(database_url: str) -> list[asyncpg.Record]:
    """Every order row of the ledger: ``user_id``, ``intent_id`` and ``source``."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT user_id, intent_id, source FROM orders")
    finally:
        await conn.close()


async def recon_reports_stored(database_url: str) -> bool:
    """Whether the reconciler stored a report yet (its start-up run is done)."""
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM recon_reports"))
    finally:
        await conn.close()


async def answering(nc: NATS) -> bool:
    """The host answers ``ctl.bots.list`` with every bot running, execution answers
    ``exec.query.balances`` with every account."""
    try:
        statuses = await bot_statuses(nc)
        raw = await nc.request(
            subjects.exec_query("balances"), msgspec.json.encode(BalancesQuery()), timeout=3
        )
    except Exception:
        return False
    accounts = {a.account for a in getattr(decode_balances_reply(raw.data), "accounts", [])}
    return (
        len(statuses) == BOT_COUNT
        and all(s.state == "running" for s in statuses.values())
        and accounts >= ACCOUNT_IDS
    )


async def tailing_events(nc: NATS) -> bool:
    """True if a consumer of ``exec.evt.>`` (the strategy host's) is on ``EXEC``."""
    consumers = await nc.jetstream().consumers_info(subjects.STREAM_EXEC)
    return any(c.config.filter_subject == subjects.EXEC_EVT_ALL for c in consumers)


async def consumer_idle(nc: NATS) -> bool:
    return await intents_settled(nc)


async def quiet(nc: NATS, database_url: str, timeout: float = 30.0) -> dict[str, BotStatus]:
    """Wait until execution took every intent, the bots agree with the ledger, and
    nothing moves for a second (statuses, INTENTS and EXEC unchanged)."""
    js = nc.jetstream()

    async def picture() -> tuple[Any, ...]:
        statuses = await bot_statuses(nc)
        intents = await intents_stored(nc)
        events = (await js.stream_info(subjects.STREAM_EXEC)).state.last_seq
        return (statuses, intents, events)

    last: list[tuple[Any, ...]] = []

    async def settled() -> bool:
        if not await consumer_idle(nc):
            return False
        now = await picture()
        if not last or last[0] != now:
            last[:] = [now]
            await asyncio.sleep(1.0)
            return False
        ledger = await ledger_by_bot(database_url)
        return all(agrees(s, ledger.get(b)) for b, s in now[0].items())

    await eventually(settled, timeout, "everything to be quiet", detail=lambda: repr(last))
    return last[0][0]


async def ledger_by_bot(database_url: str) -> dict[str, tuple[D, int]]:
    """Per bot (order source): the position its fills add up to, and its filled orders."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT o.source, f.side, f.qty, o.intent_id FROM fills f"
            " JOIN orders o USING (client_order_id)"
        )
    finally:
        await conn.close()
    out: dict[str, tuple[D, set[str]]] = {}
    for r in rows:
        pos, filled = out.get(r["source"], (D(0), set()))
        pos += r["qty"] if r["side"] == "buy" else -r["qty"]
        out[r["source"]] = (pos, filled | {r["intent_id"]})
    return {bot: (pos, len(filled)) for bot, (pos, filled) in out.items()}


def agrees(status: BotStatus, ledger: tuple[D, int] | None) -> bool:
    position, filled = ledger or (D(0), 0)
    return status.position == position and status.orders_filled == filled


async def fills(database_url: str) -> list[Fill]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT f.account_id, o.source, f.side, f.price, f.qty FROM fills f"
            " JOIN orders o USING (client_order_id)"
        )
    finally:
        await conn.close()
    return sorted((r[0], r[1], r[2], r[3], r[4]) for r in rows)


def place_intents(recorder: IntentRecorder) -> set[tuple[str, str]]:
    """``(user, intent id)`` of every place intent the recorder saw published."""
    return {
        (subject.split(".")[1], intent.intent_id)
        for subject, _, intent in recorder.records
        if isinstance(intent, PlaceOrder)
    }


class Outcome(msgspec.Struct):
    fills: list[Fill]
    statuses: dict[str, BotStatus]
    open_before_restart: int
    orders: int


async def trading_run(
    root: Path,
    database_url: str,
    parts: tuple[list[Path], list[Path]],
    restart: bool,
) -> Outcome:
    """Replay part 1, wait for quiet, (restart NATS,) replay part 2, check, return fills."""
    server = LocalNats(root / "nats")
    url = server.start()
    port = int(url.rsplit(":", 1)[1])
    (root / "bots.yaml").write_text(BOTS)
    strategy = StrategySettings(
        nats_url=url,
        bots_file=str(root / "bots.yaml"),
        metrics_port=0,
        stop_timeout_seconds=2,
        replica_id="restart-host",
    )
    execution = execution_settings(url, database_url, root, ACCOUNTS)
    reconciler = reconciler_settings(url, database_url, {"DEFAULT": D("0.00000001")})
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)

    async def replay(files: list[Path]) -> None:
        await replay_files(url, files, REPLAY_SPEED)

    async def recon_ready() -> bool:
        return await recon_reports_stored(database_url)

    recorder = await IntentRecorder().start(nc)
    try:
        async with (
            service(run_execution, execution, lambda: execution_ready(nc)) as exec_task,
            service(run_strategy, strategy, lambda: answering(nc)) as host_task,
            service(run_reconciler, reconciler, recon_ready) as recon_task,
        ):
            await replay(parts[0])
            before = await quiet(nc, database_url)
            open_before = sum(s.open_orders for s in before.values())
            if restart:
                held = {b: (s.phase, s.open_orders, s.orders_filled) for b, s in before.items()}
                assert all(s.open_orders for s in before.values()), held
                server.stop()
                await asyncio.sleep(DOWN_SECONDS)
                server.start(port=port)
                restarted = time.monotonic()
                # nobody helps the services: they must reconnect and answer by themselves
                await eventually(lambda: answering(nc), 30, "the services to answer again")
                log.info("services answer %.2fs after the restart", time.monotonic() - restarted)
                # the host's order events consumer (ephemeral, in memory: gone with the
                # server) is back at once, not after nats-py's missed-heartbeat check (>10 s)
                await eventually(lambda: tailing_events(nc), 5, "the host to tail EXEC again")
            await replay(parts[1])
            statuses = await quiet(nc, database_url)
            for task in (exec_task, host_task, recon_task):
                assert not task.done(), task
            assert await answering(nc)
            assert await consumer_idle(nc)

            # no intent lost: every place intent published and every order a bot counts
            # has its order row
            rows = await order_rows(database_url)
            orders = {(r["user_id"], r["intent_id"]) for r in rows}
            assert place_intents(recorder) and place_intents(recorder) <= orders
            for bot, status in statuses.items():
                mine = sum(1 for r in rows if r["source"] == bot)
                assert status.orders_placed == mine, (bot, status.orders_placed, mine)

            # no order event lost: each bot's position and fills are the ledger's
            ledger = await ledger_by_bot(database_url)
            assert all(agrees(s, ledger.get(b)) for b, s in statuses.items()), (statuses, ledger)

            # every account reconciles (the reconciler also lived through the restart)
            raw = await nc.request(subjects.ctl("recon", "run"), b"{}", timeout=15)
            reports = {r.account: r for r in decode_recon_run_reply(raw.data).reports}  # type: ignore[union-attr]
            assert reports.keys() == ACCOUNT_IDS
            assert all(r.status == "ok" for r in reports.values()), reports
            return Outcome(await fills(database_url), statuses, open_before, len(rows))
    finally:
        await nc.close()
        server.stop()


@pytest.mark.timeout(240)
async def test_nats_restart_loses_nothing_and_fills_match_an_undisturbed_run(
    database_url: str, pg_admin_url: str, data_dir: Path, tmp_path: Path
) -> None:
    parts = write_parts(data_dir, tmp_path / "data")
    quiet_db = f"t_{uuid.uuid4().hex[:12]}"
    await create_database(pg_admin_url, quiet_db)
    calm = await trading_run(
        tmp_path / "calm", with_database(pg_admin_url, quiet_db), parts, restart=False
    )
    stormy = await trading_run(tmp_path / "stormy", database_url, parts, restart=True)

    # the slice trades: buys on the dip, take-profit sells on the rebound
    assert {f[2] for f in calm.fills} == {"buy", "sell"}, calm.fills
    assert calm.open_before_restart == stormy.open_before_restart > 0
    # maker fills (the buys, at their limits) exactly; taker fills (the take-profit sells)
    # in bot, side and quantity exactly, in price within a few ticks of the market
    assert stormy.fills == calm.fills
    assert stormy.orders == calm.orders
    summary = {
        b: (s.orders_placed, s.orders_filled, s.position) for b, s in stormy.statuses.items()
    }
    assert summary == {
        b: (s.orders_placed, s.orders_filled, s.position) for b, s in calm.statuses.items()
    }

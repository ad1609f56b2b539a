"""A paper account and a Backpack account trading side by side (issue 4, "Done when").

Real NATS, real PostgreSQL, the real services in-process: execution with
``alice-paper`` (paper, Binance market data) and ``bob-backpack`` (venue
backpack on the local :class:`~tests.support.backpack.server.BackpackServer`, keys
from the environment), one strategy host with a ladder bot for each, a
marketdata replay of the BTCUSDT recording for the paper account, and a live
``TRADEBUS_FEED=backpack`` marketdata on the server's WebSocket while the
server replays the same recording as ``BTC_USDC`` (its matching engine fills
bob's orders on those trades). Both bots place, fill and take profit; bob's
ledger equals the server's balances; a reconciliation run is ok for both.

Bob's account already holds BTC of his own, and Backpack takes a buy's fee in
the BTC bought (issue 18, item 1): the take-profit must sell exactly what the
buy delivered (floored to the step), never bob's own BTC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.backpack.recorded import binance_ticks
from tests.support.backpack.server import BackpackServer
from tests.support.data import BTC_RAW
from tests.support.execution import (
    Bus,
    E,
    collecting,
    execution_service,
    execution_settings,
    journal_totals,
    reconciler_settings,
)
from tests.support.services import eventually, service
from tradebus.common import subjects
from tradebus.common.codec import decode_bots_reply, decode_recon_run_reply
from tradebus.common.messages import BotStatus, OrderAccepted, OrderFilled
from tradebus.marketdata.bootstrap import run as run_marketdata
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.reconciler.bootstrap import run as run_reconciler
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

KEY_ENV = "TRADEBUS_TEST_SIDE_BY_SIDE_BP_KEY"
SECRET_ENV = "TRADEBUS_TEST_SIDE_BY_SIDE_BP_SECRET"

ACCOUNTS = """
accounts:
  - {{id: alice-paper, user: alice, venue: paper, market_data: binance,
      balances: {{USDT: "10000"}}}}
  - id: bob-backpack
    user: bob
    venue: backpack
    market_data: backpack
    api_url: {url}
    ws_url: {ws_url}
    api_key_env: {key_env}
    secret_env: {secret_env}
    rate_per_second: 50
    burst: 20
    poll_seconds: 0.2
    timeout_seconds: 2
"""

# Tight enough to fill and take profit in the first minute of the recording
# (buy 0.02 % under the first price, sell 0.02 % above the fill).
BOTS = """
defaults:
  total_quote: "100"
  order_count: 1
  max_drop_pct: "0.02"
  take_profit_pct: "0.02"
  restart_after_take_profit: false
strategies:
  btc-paper: {strategy: ladder, venue: binance, symbol: BTCUSDT}
  btc-bp: {strategy: ladder, venue: backpack, symbol: BTC_USDC}
users:
  - {user: alice, account: alice-paper, strategies: {btc-paper: {}}}
  - {user: bob, account: bob-backpack, strategies: {btc-bp: {}}}
"""
ALICE_BOT, BOB_BOT = "alice-btc-paper", "bob-btc-bp"
BOB_OWN_BTC = D("0.5")
BTC_STEP = D("0.00001")


async def bot_statuses(nc: NATS) -> dict[str, BotStatus]:
    try:
        raw = await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=1)
    except Exception:
        return {}
    return {s.bot: s for s in getattr(decode_bots_reply(raw.data), "bots", [])}


async def bot_status(nc: NATS, bot: str) -> BotStatus:
    body = b'{"bot":"%s"}' % bot.encode()
    raw = await nc.request(subjects.ctl("bots", "status"), body, timeout=3)
    (status,) = decode_bots_reply(raw.data).bots  # type: ignore[union-attr]
    return status


async def reported(database_url: str) -> bool:
    """True once the reconciler's run at start has stored its reports."""
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM recon_reports"))
    finally:
        await conn.close()


def of_bot(bus: Bus, kind: type[E], bot: str) -> list[E]:
    return [e for e in bus.of(kind) if (e.intent_id or "").startswith(f"{bot}:")]


async def test_paper_and_backpack_ladders_trade_side_by_side(
    nats_url: str,
    database_url: str,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recording = data_dir / BTC_RAW[0]
    async with BackpackServer() as server:
        creds = server.add_account({"USDC": "10000", "BTC": str(BOB_OWN_BTC)})
        monkeypatch.setenv(KEY_ENV, creds.api_key)
        monkeypatch.setenv(SECRET_ENV, creds.secret)
        accounts = ACCOUNTS.format(
            url=server.url, ws_url=server.ws_url, key_env=KEY_ENV, secret_env=SECRET_ENV
        )
        bots_file = tmp_path / "bots.yaml"
        bots_file.write_text(BOTS)
        strategy = StrategySettings(
            nats_url=nats_url,
            bots_file=str(bots_file),
            metrics_port=0,
            stop_timeout_seconds=0.2,
            heartbeat_seconds=0.2,
            lease_seconds=2,
            replica_id="side-by-side",
        )
        backpack_md = MarketdataSettings(
            nats_url=nats_url,
            feed="backpack",
            symbols=["BTC_USDC"],
            backpack_ws_url=server.ws_url,
            backpack_rest_url=server.url,
            stale_seconds=30,
            rest_poll_seconds=0,
            metrics_port=0,
        )
        binance_replay = MarketdataSettings(
            nats_url=nats_url,
            feed="binance",
            symbols=["BTCUSDT"],
            replay_files=[str(recording)],
            replay_speed="20",
            metrics_port=0,
        )
        reconciler = reconciler_settings(
            nats_url, database_url, {"BTC": D("0.00000001"), "DEFAULT": D("0.00000001")}
        )
        nc = await nats.connect(nats_url)

        async def both_bots_running() -> bool:
            found = await bot_statuses(nc)
            return {ALICE_BOT, BOB_BOT} <= found.keys() and all(
                s.state == "running" for s in found.values()
            )

        async def subscribed() -> bool:
            return server.ws.subscribed("trade.BTC_USDC", None)

        async def started() -> bool:
            return True

        try:
            async with (
                collecting(nats_url, Bus) as bus,
                execution_service(
                    bus.nc, execution_settings(nats_url, database_url, tmp_path, accounts)
                ),
                service(run_strategy, strategy, both_bots_running),
                service(run_marketdata, backpack_md, subscribed),
            ):
                # the paper account: Binance's recording replayed on md.*.binance.BTCUSDT
                async with service(run_marketdata, binance_replay, started):
                    # bob: the same recording, as BTC_USDC trades on the Backpack server
                    server.load(binance_ticks(recording, trades_only=True), "BTC_USDC")
                    await server.replay(1)  # the bot's reference price: it places its buy
                    await eventually(
                        lambda: server.open_orders(creds.api_key), what="bob's buy on the server"
                    )
                    await drive(server, lambda: done(nc, BOB_BOT), bus)
                    await eventually(
                        lambda: done(nc, ALICE_BOT), timeout=25, what="alice's take-profit"
                    )

                alice, bob = await bot_status(nc, ALICE_BOT), await bot_status(nc, BOB_BOT)
                for status in (alice, bob):
                    assert status.orders_placed >= 2, status  # a buy and its take-profit sell
                    assert status.orders_filled >= 2, status
                    assert status.cycles_completed >= 1, status
                for bot, account in ((ALICE_BOT, "alice-paper"), (BOB_BOT, "bob-backpack")):
                    fills = of_bot(bus, OrderFilled, bot)
                    assert {f.side for f in fills} == {"buy", "sell"}, fills
                    assert {f.account for f in fills} == {account}
                    assert of_bot(bus, OrderAccepted, bot)

                # bob's orders and fills are the server's
                bob_fills = [f for f in bus.of(OrderFilled) if f.account == "bob-backpack"]
                assert sorted(f.trade_id for f in bob_fills) == sorted(
                    f"BTC_USDC:{f.trade_id}" for f in server.fills(creds.api_key)
                )
                assert not server.open_orders(creds.api_key)

                # the ledger matches the server's balances (after everything settled)
                venue = {a: b.total for a, b in server.balances(creds.api_key).items() if b.total}
                await eventually(
                    lambda: ledger_is(database_url, "bob-backpack", venue),
                    what="bob's ledger to equal the server's balances",
                    detail=lambda: f"server: {venue}",
                )
                # the buy's fee was taken in BTC; the take-profit sold what the buy delivered
                # (floored to the step) and left bob's own BTC alone
                buys = [f for f in server.fills(creds.api_key) if f.side == "Bid"]
                sells = [f for f in server.fills(creds.api_key) if f.side == "Ask"]
                assert buys and sells and {f.fee_symbol for f in buys} == {"BTC"}
                received = sum((f.quantity - f.fee for f in buys), D(0))
                sold = sum((f.quantity for f in sells), D(0))
                assert sold == (received // BTC_STEP) * BTC_STEP, (received, sold)
                assert venue["BTC"] == BOB_OWN_BTC + received - sold
                assert {f.fee_symbol for f in sells} == {"USDC"} and venue["USDC"] != D(10000)
                # the bot holds the dust under one step, as the account does
                assert (await bot_status(nc, BOB_BOT)).position == received - sold < BTC_STEP

                # reconciliation: ok for both accounts
                async with service(run_reconciler, reconciler, lambda: reported(database_url)):
                    raw = await nc.request(subjects.ctl("recon", "run"), b"{}", timeout=10)
                    reply = decode_recon_run_reply(raw.data)
                    reports = {r.account: r for r in reply.reports}  # type: ignore[union-attr]
                    assert reports.keys() == {"alice-paper", "bob-backpack"}
                    for report in reports.values():
                        assert report.status == "ok", report
                        assert report.rows, report
                    bob_rows = {r.asset: r.venue_total for r in reports["bob-backpack"].rows}
                    assert {a: v for a, v in bob_rows.items() if v} == venue
        finally:
            await nc.close()


async def done(nc: NATS, bot: str) -> bool:
    found = await bot_statuses(nc)
    return bot in found and found[bot].cycles_completed >= 1 and found[bot].open_orders == 0


async def ledger_is(database_url: str, account: str, expected: dict[str, D]) -> bool:
    return await journal_totals(database_url, account) == expected


async def drive(server: BackpackServer, finished: Callable[[], Awaitable[bool]], bus: Bus) -> None:
    """Replay the server's queue a few trades at a time, letting the bot's orders reach
    the server between steps, until ``finished()`` or the queue runs out."""
    while server.queued:
        if await finished():
            return
        await server.replay(5)
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"the recording ran out before bob's take-profit; events: {bus.events[-10:]}"
    )

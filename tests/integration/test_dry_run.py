"""Per-bot dry run (``execute_trades: false``) on the full stack.

A dry-run bot runs on the live feed; its intents go to a simulated venue of its
own in the strategy host (the execution core on a paper venue, the paper fill
model), so it proceeds as if it traded, while its account's venue never sees
an order. Its intents and simulated fills are recorded on stream ``DRYRUN``
(``tradebus bots dry-run``) and its status says ``dry_run`` with the counts.

Two accounts: a live one on the local Backpack server (real ccxt client, real
marketdata on the server's WebSocket), and a paper one.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from tests.support.backpack.stack import backpack_stack
from tests.support.cli import tradebus
from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.intents import ensure_intent_streams
from tests.support.services import eventually, service
from tests.support.strategy_host import host_settings, running_status
from tests.support.ticks import trade
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.messages import (
    BotStatus,
    OrderAccepted,
    OrderFilled,
    PlaceOrder,
)
from tradebus.control.bots import bot_statuses
from tradebus.control.dryrun import dry_run_records
from tradebus.strategy.bootstrap import run as run_strategy

LIVE_DRY = """
defaults: {venue: backpack, symbol: BTC_USDC}
strategies:
  dry: {strategy: ladder, total_quote: "400", order_count: 4, max_drop_pct: "2",
        take_profit_pct: "1"}
users:
  - {user: bob, account: bob-backpack, execute_trades: false, strategies: {dry: {}}}
"""


def counts(status: BotStatus) -> tuple[object, object]:
    return status.details.get("dry_run_intents"), status.details.get("dry_run_fills")


async def test_a_dry_run_ladder_on_a_live_account_sends_nothing_to_the_venue(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with backpack_stack(
        nats_url, database_url, tmp_path, monkeypatch, bots=LIVE_DRY
    ) as stack:
        server, bus = stack.server, stack.bus
        bot = "bob-dry"

        async def placed() -> bool:
            s = await stack.status(bot)
            return s is not None and counts(s) == (4, 0)

        # the first trade (60000) places 4 simulated buys: 59700, 59400, 59100, 58800
        await eventually(placed, what="the dry-run ladder's 4 buys")

        async def bought() -> bool:
            await server.feed_trade("BTC_USDC", "59600", "0.01")  # through the first level
            s = await stack.status(bot)
            return s is not None and s.position > 0

        await eventually(bought, what="a simulated fill")
        status = await stack.status(bot)
        assert status is not None
        assert (status.state, status.phase, status.dry_run) == ("running", "buying", True)
        assert counts(status) == (4, 1) and status.open_orders == 3
        assert status.avg_price == Decimal("59700")

        # the venue never saw an order, and execution never heard of one from the bot
        assert server.requests_for("orderExecute") == []
        assert server.orders(stack.creds.api_key) == []
        assert [e for e in bus.events if getattr(e, "source", None) == bot] == []
        balances = server.balances(stack.creds.api_key)
        assert balances["USDC"].available == Decimal(10000) and "BTC" not in balances

        # recorded: the intents and the simulated venue's answers, in order
        records = await dry_run_records(stack.nc.jetstream(), "bob", bot)
        places = [r.intent for r in records if isinstance(r.intent, PlaceOrder)]
        assert [(p.side, p.price) for p in places] == [
            ("buy", Decimal(59700)),
            ("buy", Decimal(59400)),
            ("buy", Decimal(59100)),
            ("buy", Decimal(58800)),
        ]
        assert len([r for r in records if isinstance(r.event, OrderAccepted)]) == 4
        (fill,) = [r.event for r in records if isinstance(r.event, OrderFilled)]
        assert (fill.price, fill.qty, fill.liquidity) == (Decimal(59700), status.position, "maker")
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        assert {(r.user, r.account, r.bot) for r in records} == {("bob", "bob-backpack", bot)}

        # shown: the CLI lists them, and the bot list says dry run
        url = ("--nats-url", nats_url)
        code, out, err = await tradebus(capsys, "bots", "dry-run", bot, *url)
        assert code == 0, out + err
        lines = out.splitlines()
        assert lines[-1] == f"{bot}: dry run; {len(records)} records"
        assert any(f"filled {fill.intent_id} buy {fill.qty} @ 59700" in line for line in lines)
        code, out, _ = await tradebus(capsys, "bots", "list", *url)
        (row,) = [line.split() for line in out.splitlines() if line.startswith(bot)]
        assert row[4] == "running(dry-run)"


PAPER_DRY = """
defaults: {venue: binance}
strategies:
  btc: {strategy: ladder, symbol: BTCUSDT, total_quote: "1000", order_count: 4,
        max_drop_pct: "1", take_profit_pct: "0.5"}
users:
  - {user: alice, account: alice-paper, strategies: {btc: {execute_trades: false,
     dry_run_wallet: {USDT: "2000"}}}}
"""
ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}}
"""


async def test_a_dry_run_ladder_on_a_paper_account_trades_its_own_simulated_wallet(
    nats_url: str, database_url: str, nc: NATS, tmp_path: Path
) -> None:
    bots = tmp_path / "bots.yaml"
    bots.write_text(PAPER_DRY)
    host = host_settings(nats_url, "dry-host", bots)
    bot = "alice-btc"

    async def status() -> BotStatus | None:
        return await running_status(nc, bot)

    async def running() -> bool:
        return await status() is not None

    md = subjects.md_trade("binance", "BTCUSDT")
    settings = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    async with (
        collecting(nats_url, Bus) as bus,
        execution_service(nc, settings),
        service(run_strategy, host, running),
    ):
        await nc.publish(md, encode(trade("60000", 1_000_000_000, "BTCUSDT")))

        async def take_profit() -> bool:  # buy a level, then take profit 0.5 % above it
            for ts, price in ((2, "59800"), (3, "60200"), (4, "60300")):
                await nc.publish(md, encode(trade(price, ts * 1_000_000_000, "BTCUSDT")))
            s = await status()
            return s is not None and s.cycles_completed == 1

        await eventually(take_profit, what="a simulated cycle to close")
        s = await status()
        assert s is not None and s.dry_run and s.realized_pnl > 0, s
        intents, fills = counts(s)
        assert fills == 2 and isinstance(intents, int) and intents >= 6  # 4 buys, 3 cancels, 1 sell
        # the paper account's venue saw nothing: no events, every USDT free
        assert [e for e in bus.events if getattr(e, "source", None) == bot] == []
        usdt = await bus.balance("USDT", "alice-paper")
        assert (usdt.free, usdt.locked) == (Decimal(10000), 0)
        # the simulated wallet is the bot's own (2000 USDT): a level's quote is 250
        records = await dry_run_records(nc.jetstream(), "alice", bot)
        (sell,) = [
            r.intent
            for r in records
            if isinstance(r.intent, PlaceOrder) and r.intent.side == "sell"
        ]
        assert sell.clamp_to_free


VOLUME_BOTS = """
defaults: {venue: binance}
strategies:
  vol: {strategy: volume, symbol: BTCUSDT, single_trade_quote: "100",
        trade_interval_seconds: "1", buy_offset_pct: "0", sell_profit_pct: "1",
        target_volume: "100000"}
users:
  - {user: alice, account: alice-paper, strategies: {vol: {}}}
  - {user: bob, account: bob-paper, execute_trades: false, strategies: {vol: {}}}
"""


async def test_a_dry_run_volume_bot_adds_nothing_to_its_group_volume(
    nats_url: str, nc: NATS, tmp_path: Path
) -> None:
    """The group target counts traded volume: a dry-run bot's simulated buys are not
    reported to KV ``group_volume``, while a live bot of the group reports its own."""
    bots = tmp_path / "bots.yaml"
    bots.write_text(VOLUME_BOTS)
    await ensure_intent_streams(nc.jetstream(), ["alice"])  # as execution would
    host = host_settings(nats_url, "vol-host", bots)

    async def both() -> bool:
        return len(await bot_statuses(nc)) == 2

    md = subjects.md_trade("binance", "BTCUSDT")
    async with service(run_strategy, host, both):
        kv = await nc.jetstream().key_value(subjects.KV_GROUP_VOLUME)
        ts = 0

        async def simulated_volume() -> bool:
            nonlocal ts
            for price in ("60000", "59990"):
                ts += 1_000_000_000
                await nc.publish(md, encode(trade(price, ts, "BTCUSDT")))
            (s,) = await bot_statuses(nc, "bob-vol")
            return Decimal(str(s.details["own_volume"])) > 0

        await eventually(simulated_volume, what="the dry-run bot's simulated buy")
        await asyncio.sleep(1.5)  # several report rounds (every 0.5 s)
        keys = set(await kv.keys())
        assert "vol.bob-vol" not in keys
        (alice,) = await bot_statuses(nc, "alice-vol")  # live, no execution: nothing filled
        assert alice.orders_placed > 0 and not alice.dry_run

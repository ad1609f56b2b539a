"""Backpack's behaviour through the whole stack (issue 18): a bot on a live Backpack
account meets what the venue really does.

Real NATS and PostgreSQL, the real execution, strategy host and marketdata
(``TRADEBUS_FEED=backpack`` on the local server's WebSocket), and the local
Backpack server (:class:`~tests.support.backpack.server.BackpackServer`)
with the real ccxt client. Trades are fed to the server, which streams them
and fills orders on them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.backpack.server import BackpackServer, Credentials
from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually, service
from tradebus.common.messages import (
    BotStatus,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from tradebus.control.bots import bot_statuses
from tradebus.execution.order_stream import CANCELED_GRACE_SECONDS
from tradebus.marketdata.bootstrap import run as run_marketdata
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

KEY_ENV = "TRADEBUS_TEST_FIDELITY_BP_KEY"
SECRET_ENV = "TRADEBUS_TEST_FIDELITY_BP_SECRET"

ACCOUNTS = """
accounts:
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


@dataclass
class Stack:
    """The running stack around one Backpack account."""

    server: BackpackServer
    creds: Credentials
    bus: Bus
    nc: NATS

    async def status(self, bot: str) -> BotStatus | None:
        found = {s.bot: s for s in await bot_statuses(self.nc)}
        return found.get(bot)


@asynccontextmanager
async def backpack_stack(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bots: str | None,
    balances: dict[str, str | Decimal | int],
    first_price: str,
    partial_fills: bool = False,
) -> AsyncIterator[Stack]:
    """Execution, a strategy host running ``bots`` (a bot file for user bob; none if
    None), and the Backpack feed, around a server whose BTC_USDC last traded at
    ``first_price``; execution's order stream is subscribed."""
    async with BackpackServer(partial_fills=partial_fills) as server:
        creds = server.add_account(balances)
        monkeypatch.setenv(KEY_ENV, creds.api_key)
        monkeypatch.setenv(SECRET_ENV, creds.secret)
        accounts = ACCOUNTS.format(
            url=server.url, ws_url=server.ws_url, key_env=KEY_ENV, secret_env=SECRET_ENV
        )
        bots_file = tmp_path / "bots.yaml"
        bots_file.write_text(bots or "")
        strategy = StrategySettings(
            nats_url=nats_url,
            bots_file=str(bots_file),
            metrics_port=0,
            stop_timeout_seconds=0.2,
            heartbeat_seconds=0.2,
            lease_seconds=2,
            replica_id="fidelity",
        )
        feed = MarketdataSettings(
            nats_url=nats_url,
            feed="backpack",
            symbols=["BTC_USDC"],
            backpack_ws_url=server.ws_url,
            backpack_rest_url=server.url,
            stale_seconds=30,
            rest_poll_seconds=0,
            metrics_port=0,
        )
        nc = await nats.connect(nats_url)

        async def subscribed() -> bool:
            return server.ws.subscribed("trade.BTC_USDC", None)

        async def running() -> bool:
            return bool(await bot_statuses(nc))

        try:
            async with AsyncExitStack() as running_stack:
                bus = await running_stack.enter_async_context(collecting(nats_url, Bus))
                settings = execution_settings(nats_url, database_url, tmp_path, accounts)
                await running_stack.enter_async_context(execution_service(bus.nc, settings))
                await server.wait_subscribed("account.orderUpdate", creds.api_key)
                if bots is not None:
                    await running_stack.enter_async_context(
                        service(run_strategy, strategy, running)
                    )
                await running_stack.enter_async_context(service(run_marketdata, feed, subscribed))
                await server.feed_trade("BTC_USDC", first_price, "0.01")
                yield Stack(server, creds, bus, nc)
        finally:
            await nc.close()


FAR_LADDER = """
defaults: {venue: backpack, symbol: BTC_USDC}
strategies:
  far: {strategy: ladder, total_quote: "400", order_count: 4, max_drop_pct: "40",
        take_profit_pct: "1"}
users:
  - {user: bob, account: bob-backpack, strategies: {far: {}}}
"""


async def test_a_ladder_level_outside_the_price_band_is_refused_once_and_reported(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # levels 10, 20, 30 and 40 % under 60,000; Backpack's band ends 25 % under the last
    # price, so the two deepest levels are refused with INVALID_PRICE
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
        FAR_LADDER,
        {"USDC": "10000"},
        "60000",
    ) as stack:
        bus, server = stack.bus, stack.server
        await eventually(
            lambda: len(bus.of(OrderAccepted)) == 2 and len(bus.of(OrderRejected)) == 2,
            what="two levels placed, two refused",
            detail=lambda: f"{bus.of(OrderRejected)}",
        )
        refused = sorted(bus.of(OrderRejected), key=lambda r: str(r.intent_id))
        assert [str(r.intent_id).rsplit(":", 1)[1] for r in refused] == ["b2", "b3"]
        assert {r.reason for r in refused} == {"invalid_price"}
        assert all("too far from the last active price" in r.message for r in refused)
        resting = sorted(str(o.price) for o in server.open_orders(stack.creds.api_key))
        assert resting == ["48000", "54000"]

        async def reported() -> bool:
            status = await stack.status("bob-far")
            return status is not None and "invalid_price" in (status.error or "")

        await eventually(reported, what="the bot to say why its level was refused")
        status = await stack.status("bob-far")
        assert status is not None and status.state == "running", status
        assert status.open_orders == 2
        # refused for good: nothing is sent again
        await asyncio.sleep(2)
        assert len(server.requests_for("orderExecute")) == 4
        assert len(bus.of(OrderRejected)) == 2


IOC_BUY = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"bob-backpack","symbol":"BTC_USDC",'
    '"side":"buy","qty":"0.01","price":"60200","time_in_force":"ioc"}'
)


async def test_an_ioc_partial_fill_is_booked_within_a_second(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18, items 3 and 5: ``time_in_force: ioc`` reaches Backpack (it rested as a
    good-till-canceled order before), the venue takes what the touch offers inside the
    order request and expires the rest, and the fill is booked within a second from the
    account's order stream, not left to the 30-second backstop poll."""
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
        None,
        {"USDC": "10000"},
        "60000",
        partial_fills=True,
    ) as stack:
        bus, server = stack.bus, stack.server
        await server.feed_quote("BTC_USDC", "60090", "1", "60100", "0.004")
        await bus.pub("intent.bob.manual", IOC_BUY % "m-1")
        await eventually(lambda: server.fills(stack.creds.api_key), what="the venue's fill")
        filled_at = time.monotonic()
        (order,) = server.orders(stack.creds.api_key)
        assert (order.time_in_force, order.status, order.executed_qty) == (
            "IOC",
            "Expired",
            Decimal("0.004"),
        )
        await eventually(lambda: bus.of(OrderFilled, "m-1"), timeout=5, what="the fill booked")
        booked_in = time.monotonic() - filled_at
        (fill,) = bus.of(OrderFilled, "m-1")
        assert (fill.qty, fill.price, fill.liquidity) == (Decimal("0.004"), Decimal(60100), "taker")
        assert booked_in < 1.0, f"booked {booked_in:.2f} s after the venue filled it"
        # the unfilled rest expired at the venue: the order is closed here too, its source told
        await eventually(lambda: bus.of(OrderCanceled, "m-1"), what="the rest expired")
        (ended,) = bus.of(OrderCanceled, "m-1")
        assert (ended.reason, ended.filled_qty, ended.cancel_intent_id) == (
            "expired",
            Decimal("0.004"),
            None,
        )
        assert await order_status(database_url, "m-1") == "canceled"


GTC_BUY = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"bob-backpack","symbol":"BTC_USDC",'
    '"side":"buy","qty":"0.001","price":"59000"}'
)


async def test_a_fill_ccxt_pro_folds_into_the_expiry_is_fetched_at_once(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18, item 5: ccxt.pro keeps one update per order between two reads. While
    the order stream books one fill (a resting buy's), an IOC's acceptance, fill and
    expiry arrive; the next read holds only the ``orderExpired`` update, with no fill in
    it but the executed quantity ``z`` ahead of the ledger. The stream must fetch that
    fill at once, not leave it to the 30-second backstop poll."""
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
        None,
        {"USDC": "10000"},
        "60000",
        partial_fills=True,
    ) as stack:
        bus, server = stack.bus, stack.server
        await server.feed_quote("BTC_USDC", "60090", "1", "60100", "0.004")
        await bus.pub("intent.bob.manual", GTC_BUY % "g-1")
        await eventually(lambda: bus.of(OrderAccepted, "g-1"), what="the resting buy")
        server.hold_ws_frames()
        await server.feed_trade("BTC_USDC", "58999", "0.01")  # fills the resting buy
        await bus.pub("intent.bob.manual", IOC_BUY % "m-1")
        await eventually(
            lambda: any(o.status == "Expired" for o in server.orders(stack.creds.api_key)),
            what="the IOC taken and expired at the venue",
        )
        # g-1's fill (and the public trade, to the feed), then, while the stream books
        # that fill, m-1's acceptance, fill and expiry at once
        assert await server.release_ws_frames(pause=0.002) == 5
        released = time.monotonic()
        await eventually(lambda: bus.of(OrderFilled, "g-1"), timeout=5, what="g-1's fill")
        await eventually(lambda: bus.of(OrderFilled, "m-1"), timeout=5, what="m-1's fill")
        booked_in = time.monotonic() - released
        assert booked_in < 1.0, f"booked {booked_in:.2f} s after the stream told"
        (fill,) = bus.of(OrderFilled, "m-1")
        assert (fill.qty, fill.price) == (Decimal("0.004"), Decimal(60100))
        await eventually(lambda: bus.of(OrderCanceled, "m-1"), what="the rest expired")


async def test_an_order_canceled_at_the_venue_is_closed_here_and_its_source_told(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order canceled at the venue (by hand, in its web page) is closed in the ledger
    and its source hears ``OrderCanceled`` (reason ``canceled_at_venue``); a cancel sent
    through execution is told once, as the cancel it was."""
    async with backpack_stack(
        nats_url, database_url, tmp_path, monkeypatch, None, {"USDC": "10000"}, "60000"
    ) as stack:
        bus, server = stack.bus, stack.server
        await bus.pub("intent.bob.manual", GTC_BUY % "g-1")
        await bus.pub("intent.bob.manual", GTC_BUY % "g-2")
        await eventually(
            lambda: bus.of(OrderAccepted, "g-1") and bus.of(OrderAccepted, "g-2"),
            what="two resting buys",
        )
        by_hand = stack.server.ccxt_client(stack.creds, enableRateLimit=False)
        try:
            (accepted,) = bus.of(OrderAccepted, "g-1")
            await by_hand.cancel_order(accepted.venue_order_id, "BTC/USDC")
        finally:
            await by_hand.close()
        await eventually(lambda: bus.of(OrderCanceled, "g-1"), what="g-1 closed here", timeout=8)
        (ended,) = bus.of(OrderCanceled, "g-1")
        assert (ended.reason, ended.cancel_intent_id) == ("canceled_at_venue", None)
        assert await order_status(database_url, "g-1") == "canceled"
        # a cancel of ours: one OrderCanceled, naming the cancel
        await bus.pub("intent.bob.manual", CANCEL % ("c-2", "g-2"))
        await eventually(lambda: bus.of(OrderCanceled, "g-2"), what="g-2 canceled")
        await asyncio.sleep(CANCELED_GRACE_SECONDS + 0.5)
        (ours,) = bus.of(OrderCanceled, "g-2")
        assert (ours.reason, ours.cancel_intent_id) == ("canceled", "c-2")
        assert server.open_orders(stack.creds.api_key) == []


CANCEL = '{"type":"CancelOrder","intent_id":"%s","account":"bob-backpack","target_intent_id":"%s"}'


async def order_status(database_url: str, intent_id: str) -> str | None:
    """The ledger's status of bob's order ``intent_id``."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT status FROM orders WHERE user_id = 'bob' AND intent_id = $1", intent_id
        )
    finally:
        await conn.close()

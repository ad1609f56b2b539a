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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.backpack.server import BackpackServer, Credentials
from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually, service
from tradebus.common.messages import BotStatus, OrderAccepted, OrderRejected
from tradebus.control.bots import bot_statuses
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
    bots: str,
    balances: dict[str, str | Decimal | int],
    first_price: str,
) -> AsyncIterator[Stack]:
    """Execution, a strategy host running ``bots`` (a bot file for user bob), and the
    Backpack feed, around a server whose BTC_USDC last traded at ``first_price``."""
    async with BackpackServer() as server:
        creds = server.add_account(balances)
        monkeypatch.setenv(KEY_ENV, creds.api_key)
        monkeypatch.setenv(SECRET_ENV, creds.secret)
        accounts = ACCOUNTS.format(
            url=server.url, ws_url=server.ws_url, key_env=KEY_ENV, secret_env=SECRET_ENV
        )
        bots_file = tmp_path / "bots.yaml"
        bots_file.write_text(bots)
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
            async with (
                collecting(nats_url, Bus) as bus,
                execution_service(
                    bus.nc, execution_settings(nats_url, database_url, tmp_path, accounts)
                ),
                service(run_strategy, strategy, running),
                service(run_marketdata, feed, subscribed),
            ):
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

"""The whole stack around one live Backpack account, for tests (issue 18).

Real NATS and PostgreSQL (the test's), the real execution service, an optional
strategy host running a bot file, and the marketdata service on the local Backpack
server's WebSocket (``TRADEBUS_FEED=backpack``), around a
:class:`~tests.support.backpack.server.BackpackServer` with the real ccxt client.
Trades fed to the server are streamed and fill orders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.backpack.market import BTC_USDC, ETH_USDC, MarketSpec
from tests.support.backpack.server import BackpackServer, Credentials
from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import service
from tradebus.common.messages import BotStatus
from tradebus.control.bots import bot_statuses
from tradebus.marketdata.bootstrap import run as run_marketdata
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

KEY_ENV = "TRADEBUS_TEST_STACK_BP_KEY"
SECRET_ENV = "TRADEBUS_TEST_STACK_BP_SECRET"

ACCOUNTS = """
accounts:
  - id: bob-backpack
    user: bob
    venue: backpack
    market_data: backpack
    market_kind: {market_kind}
    api_url: {url}
    ws_url: {ws_url}
    api_key_env: {key_env}
    secret_env: {secret_env}
    rate_per_second: 50
    burst: 20
    poll_seconds: 0.2
    backstop_seconds: {backstop_seconds}
    timeout_seconds: 2
    risk: {risk}
    leverage: "{leverage}"
"""


@dataclass
class Stack:
    """The running stack around bob's Backpack account ``bob-backpack``."""

    server: BackpackServer
    creds: Credentials
    bus: Bus
    nc: NATS

    async def status(self, bot: str) -> BotStatus | None:
        """The bot's status from its host, None if no host runs it."""
        found = {s.bot: s for s in await bot_statuses(self.nc)}
        return found.get(bot)


@asynccontextmanager
async def backpack_stack(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    bots: str | None = None,
    balances: dict[str, str | Decimal | int] | None = None,
    first_prices: dict[str, str] | None = None,
    partial_fills: bool = False,
    markets: Sequence[MarketSpec] = (BTC_USDC, ETH_USDC),
    market_kind: str = "spot",
    backstop_seconds: float = 30.0,
    feed_markets_file: str = "",
    risk: str = "{}",
    leverage: str = "1",
) -> AsyncIterator[Stack]:
    """Execution, a strategy host running ``bots`` (a bot file for user bob; none if
    None), and the Backpack feed of the ``first_prices`` symbols (default BTC_USDC at
    60000), around a server with ``markets`` where each of those symbols last traded at
    its price, bob holding ``balances`` (default 10000 USDC); execution's order stream
    is subscribed. The account trades ``market_kind``; its fills and
    funding are polled every ``backstop_seconds`` while its order stream is up. The
    feed checks its symbols against ``feed_markets_file`` (default: the shipped one).
    ``risk`` is the account's ``risk`` limits (YAML flow mapping), ``leverage`` its
    leverage."""
    first_prices = first_prices or {"BTC_USDC": "60000"}
    async with BackpackServer(markets, partial_fills=partial_fills) as server:
        creds = server.add_account(balances or {"USDC": "10000"})
        monkeypatch.setenv(KEY_ENV, creds.api_key)
        monkeypatch.setenv(SECRET_ENV, creds.secret)
        accounts = ACCOUNTS.format(
            url=server.url,
            ws_url=server.ws_url,
            key_env=KEY_ENV,
            secret_env=SECRET_ENV,
            market_kind=market_kind,
            backstop_seconds=backstop_seconds,
            risk=risk,
            leverage=leverage,
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
            replica_id="backpack-stack",
        )
        feed = MarketdataSettings(
            nats_url=nats_url,
            feed="backpack",
            symbols=sorted(first_prices),
            backpack_ws_url=server.ws_url,
            backpack_rest_url=server.url,
            stale_seconds=30,
            rest_poll_seconds=0,
            metrics_port=0,
            markets_file=feed_markets_file,
        )
        nc = await nats.connect(nats_url)

        async def subscribed() -> bool:
            return all(server.ws.subscribed(f"trade.{s}", None) for s in first_prices)

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
                for symbol, price in first_prices.items():
                    await server.feed_trade(symbol, price, "0.01")
                yield Stack(server, creds, bus, nc)
        finally:
            await nc.close()

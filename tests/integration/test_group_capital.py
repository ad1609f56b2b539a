"""Two ladder bots of one strategy group on one paper account share ``total_capital``
(seed 001's dual strategy; issue 19).

Real NATS and PostgreSQL, the real execution service (paper venue) and strategy host
running a bot file whose group ``dual`` has ``total_capital: "1000"`` and two ladders
of 600 each (3 levels of about 200 at 59400, 58800 and 58200). Together they would
commit about 1198 USDT: any five of the six buys fit (at most 998.68), the sixth would
cross the cap and is refused with ``group_capital``, which its bot's status shows; the
open buys never sum above the cap, also after fills move quote into positions. A bot
of another group on the same account is not held to it.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import asyncpg

from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually, service
from tests.support.strategy_host import host_settings
from tests.support.ticks import trade
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.messages import OrderAccepted, OrderFilled, OrderRejected
from tradebus.control.bots import bot_statuses
from tradebus.strategy.bootstrap import run as run_strategy

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}}
"""

BOTS = """
defaults: {venue: binance, symbol: BTCUSDT, order_count: 3, max_drop_pct: "3",
           take_profit_pct: "5", no_fill_restart_minutes: 0}
strategies:
  dual: {strategy: ladder, total_quote: "600", total_capital: "1000"}
  solo: {strategy: ladder, total_quote: "600"}
users:
  - user: alice
    account: alice-paper
    strategies:
      dual: [{name: s1}, {name: s2, max_drop_pct: "3"}]
      solo: {}
"""
GROUP = ("alice-dual-s1", "alice-dual-s2")
CAP = D(1000)


def bot_of(event: OrderAccepted | OrderRejected) -> str:
    """The bot of an order event (its intent id is ``<bot>:<cycle>:<leg>``)."""
    assert event.intent_id is not None
    return event.intent_id.split(":")[0]


async def open_buys(database_url: str, bots: tuple[str, ...]) -> D:
    """The remaining notional of the bots' open buys, from the ledger."""
    conn = await asyncpg.connect(database_url)
    try:
        value = await conn.fetchval(
            "SELECT coalesce(sum(price * (qty - filled_qty)), 0) FROM orders"
            " WHERE source = ANY($1) AND side = 'buy'"
            " AND status IN ('accepted', 'partially_filled')",
            list(bots),
        )
    finally:
        await conn.close()
    return D(value)


async def bought(database_url: str, bots: tuple[str, ...]) -> D:
    """The cost of what the bots bought (none sold here), from the ledger's fills."""
    conn = await asyncpg.connect(database_url)
    try:
        value = await conn.fetchval(
            "SELECT coalesce(sum(f.price * f.qty), 0) FROM fills f JOIN orders o"
            " ON o.client_order_id = f.client_order_id WHERE o.source = ANY($1)"
            " AND f.side = 'buy'",
            list(bots),
        )
    finally:
        await conn.close()
    return D(value)


async def test_two_ladders_of_one_group_never_commit_more_than_total_capital(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    bots_file = tmp_path / "bots.yaml"
    bots_file.write_text(BOTS)
    strategy = host_settings(nats_url, "group-capital", bots_file)
    execution = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    md = subjects.md_trade("binance", "BTCUSDT")

    async with collecting(nats_url, Bus) as bus, execution_service(bus.nc, execution):

        async def running() -> bool:
            return len(await bot_statuses(bus.nc)) == 3

        async with service(run_strategy, strategy, running):
            await bus.nc.publish(md, encode(trade("60000", 1)))

            def answered() -> bool:
                return len(bus.of(OrderAccepted)) + len(bus.of(OrderRejected)) == 9

            await eventually(answered, what="every ladder level answered")
            refused = bus.of(OrderRejected)
            assert [(r.reason, bot_of(r)) for r in refused] in (
                [("group_capital", bot)] for bot in GROUP
            ), refused
            assert "total_capital 1000" in refused[0].message
            accepted = {bot_of(e) for e in bus.of(OrderAccepted)}
            assert accepted == {*GROUP, "alice-solo"}
            committed = await open_buys(database_url, GROUP)
            assert D("998") < committed <= CAP
            assert await open_buys(database_url, ("alice-solo",)) > D(599)  # not capped

            loser = bot_of(refused[0])

            async def shows_it() -> bool:
                (status,) = await bot_statuses(bus.nc, loser)
                return "group_capital" in (status.error or "")

            await eventually(shows_it, what="the refused bot's status shows why")

            # the first levels fill: quote moves from open buys into positions, the
            # group still commits the same and the refused level does not come back
            await bus.nc.publish(md, encode(trade("59300", 2)))
            await eventually(lambda: len(bus.of(OrderFilled)) >= 2, what="fills")
            await bus.nc.publish(md, encode(trade("59350", 3)))
            assert await open_buys(database_url, GROUP) < committed
            held = await bought(database_url, GROUP)
            assert held > D(390)  # both first levels
            assert await open_buys(database_url, GROUP) + held <= CAP
            assert len(bus.of(OrderRejected)) == 1

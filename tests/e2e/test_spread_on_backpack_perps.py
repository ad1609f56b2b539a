"""Issue 18, "Done when": a spread bot trades perpetuals through the whole stack on the
local Backpack server: both legs, an add, a funding payment, the take-profit.

The stack of :mod:`tests.support.backpack.stack` (execution, a strategy host, the
Backpack feed, real NATS and PostgreSQL) around a server with ``BTC_USDC_PERP``
and ``ETH_USDC_PERP``; bob's account trades perpetuals. Trades fed to the server
move the spread (STRATEGIES.md §3): BTC up 0.5 % opens the round (short BTC, long
ETH: marketable limit orders, which the server fills on the next trade of each
market), BTC up 1 % adds, a funding interval ends, and both back to their
references close it (reversion). Then the
venue holds no position, the ledger's USDC equals the venue's (realized P&L
computed by execution, funding booked from the venue's history, fees), and a
reconciliation run is ok.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from tests.support.backpack.market import BTC_USDC_PERP, ETH_USDC_PERP
from tests.support.backpack.stack import Stack, backpack_stack
from tests.support.execution import journal_totals, reconcile_now
from tests.support.services import eventually
from tradebus.common.messages import OrderAccepted, OrderFilled

BOTS = """
defaults: {venue: backpack}
strategies:
  pair:
    strategy: spread
    symbol_a: BTC_USDC_PERP
    symbol_b: ETH_USDC_PERP
    leg_quote: "600"
    entry_spread_pct: "0.5"
    adds: [{spread_pct: "1", multiplier: "1"}]
    take_profit: {mode: reversion, exit_spread_pct: "0.1"}
users:
  - {user: bob, account: bob-backpack, strategies: {pair: {}}}
"""
BOT = "bob-pair"


def of_bot(stack: Stack, kind: type[OrderAccepted] | type[OrderFilled]) -> list[object]:
    return [e for e in stack.bus.of(kind) if str(e.intent_id).startswith(f"{BOT}:")]


async def trade_both(stack: Stack, btc: str, eth: str, orders: int, what: str) -> None:
    """Once the bot has ``orders`` orders accepted, print a trade in each market: the
    venue fills the marketable ones (its fill model's rule 3); wait for the fills."""
    await eventually(lambda: len(of_bot(stack, OrderAccepted)) >= orders, what=what)
    await stack.server.feed_trade("BTC_USDC_PERP", btc, "0.1")
    await stack.server.feed_trade("ETH_USDC_PERP", eth, "1")
    await eventually(lambda: len(of_bot(stack, OrderFilled)) >= orders, what=f"{what} filled")


async def test_a_spread_bot_opens_adds_is_funded_and_takes_profit_on_backpack_perpetuals(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
        bots=BOTS,
        first_prices={"BTC_USDC_PERP": "60000", "ETH_USDC_PERP": "3000"},
        markets=(BTC_USDC_PERP, ETH_USDC_PERP),
        market_kind="perpetual",
        backstop_seconds=0.5,  # funding has no stream: it is polled
    ) as stack:
        server, key = stack.server, stack.creds.api_key

        async def references_taken() -> bool:
            status = await stack.status(BOT)
            return status is not None and status.details.get("ref_b") is not None

        await eventually(references_taken, what="the bot's reference prices")
        # the spread reaches +0.5 %: short BTC, long ETH, 600 USDC each
        await server.feed_trade("BTC_USDC_PERP", "60300", "0.1")
        await trade_both(stack, "60300", "3000", 2, "the round's two legs")
        assert server.positions(key) == {
            "BTC_USDC_PERP": D("-0.0099"),  # floor(600 / 60300, 0.0001)
            "ETH_USDC_PERP": D("0.2"),
        }
        # +1 %: the add, both legs again
        await server.feed_trade("BTC_USDC_PERP", "60600", "0.1")
        await trade_both(stack, "60600", "3000", 4, "the add's two legs")
        assert server.positions(key) == {
            "BTC_USDC_PERP": D("-0.0198"),
            "ETH_USDC_PERP": D("0.4"),
        }
        # the bot's status shows its account's margin ratio and its legs' liquidation
        # prices, as the venue estimates them

        async def risk_shown() -> bool:
            status = await stack.status(BOT)
            details = {} if status is None else status.details
            return details.get("margin_ratio") is not None and all(
                details.get(f"{s}.liquidation_price") for s in ("BTC_USDC_PERP", "ETH_USDC_PERP")
            )

        await eventually(risk_shown, what="the margin ratio and liquidation prices in the status")
        status = await stack.status(BOT)
        assert status is not None
        assert D(str(status.details["BTC_USDC_PERP.liquidation_price"])) > D(60600)  # short
        assert D(str(status.details["ETH_USDC_PERP.liquidation_price"])) < D(3000)  # long
        assert 0 < D(str(status.details["margin_ratio"])) < D("0.01")
        # a funding interval ends: the short receives, the long pays (rate 0.01 %)
        server.apply_funding("BTC_USDC_PERP", "0.0001")
        server.apply_funding("ETH_USDC_PERP", "0.0001")

        async def funding_booked() -> bool:
            conn = await asyncpg.connect(database_url)
            try:
                return (
                    await conn.fetchval("SELECT count(*) FROM journal WHERE kind = 'funding'") == 2
                )
            finally:
                await conn.close()

        await eventually(funding_booked, what="both funding payments booked")
        # both back to their references: the spread reverts, the round closes
        await server.feed_trade("BTC_USDC_PERP", "60000", "0.1")
        await trade_both(stack, "60000", "3000", 6, "the two closing orders")

        async def round_closed() -> bool:
            status = await stack.status(BOT)
            return status is not None and status.cycles_completed == 1

        await eventually(round_closed, what="the round closed")
        assert server.positions(key) == {}
        # the two closes, and only they, were reduce-only at the venue
        assert [o.reduce_only for o in server.orders(key)] == [False] * 4 + [True] * 2

        venue = {a: b.total for a, b in server.balances(key).items() if b.total}
        assert set(venue) == {"USDC"}
        await eventually(
            lambda: _journal_is(database_url, venue),
            what="the ledger to equal the venue",
            detail=lambda: f"venue {venue}",
        )
        paid = [f.quantity for f in server.exchange.funding]
        assert len(paid) == 2 and paid[0] > 0 > paid[1]  # the short received, the long paid
        # the bot's realized P&L (price differences less fees) is the venue's, funding apart
        status = await stack.status(BOT)
        assert status is not None
        assert status.realized_pnl == venue["USDC"] - D(10_000) - sum(paid, D(0))

        (report,) = (await reconcile_now(nats_url, database_url, stack.nc)).values()
        assert report.status == "ok", report


async def _journal_is(database_url: str, venue: dict[str, D]) -> bool:
    return await journal_totals(database_url, "bob-backpack") == venue

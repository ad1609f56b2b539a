"""A volume bot on a live Backpack account (the local exchange, the real ccxt client):
execution reads from ccxt what Backpack offers toward an OTO order, the bot's status says
``oto: emulated`` and why, and the emulation is what reaches the venue: a plain limit buy,
then, once it filled, a plain limit sell of what the account received, never an order
with Backpack's take-profit fields."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.backpack.stack import backpack_stack
from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.common.codec import decode_markets_reply, encode
from tradebus.common.messages import MarketsQuery, MarketsReply, OrderFilled
from tradebus.common.money import floor_to
from tradebus.strategies.volume.bot import OTO_EMULATION

VOLUME = """
defaults: {venue: backpack, symbol: BTC_USDC}
strategies:
  vol: {strategy: volume, single_trade_quote: "100", trade_interval_seconds: "1",
        buy_offset_pct: "0.1", sell_profit_pct: "0.5", target_volume: "150", max_open_sells: 1}
users:
  - {user: bob, account: bob-backpack, strategies: {vol: {}}}
"""
BACKPACK_SPOT = (
    "backpack spot: ccxt attaches no take-profit to spot orders (where it does, it is a"
    " take-profit trigger order (fired when the price reaches it), not a limit sell resting"
    " from the buy's fill)"
)
TAKE_PROFIT_FIELDS = ("takeProfitTriggerPrice", "takeProfitLimitPrice", "triggerPrice")


async def test_a_volume_bot_on_backpack_emulates_oto_and_says_why(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backpack_stack(nats_url, database_url, tmp_path, monkeypatch, bots=VOLUME) as stack:
        server, bus = stack.server, stack.bus

        # execution tells the market's OTO offer, read from ccxt's declarations
        raw = await stack.nc.request(
            subjects.exec_query("markets"), encode(MarketsQuery(venue="backpack")), timeout=5
        )
        reply = decode_markets_reply(raw.data)
        assert isinstance(reply, MarketsReply), reply
        assert {m.symbol: m.oto for m in reply.venues["backpack"]}["BTC_USDC"] == BACKPACK_SPOT

        # the buy fills; the bot then places the sell itself
        async def sold_on_fill() -> bool:
            if not bus.of(OrderFilled):
                await server.feed_trade("BTC_USDC", "60000", "0.01")
            return any(o.side == "Ask" for o in server.open_orders(stack.creds.api_key))

        await eventually(sold_on_fill, timeout=20, what="the buy to fill and its sell to rest")
        (buy_fill, *_) = [f for f in bus.of(OrderFilled) if f.side == "buy"]
        (sell,) = [o for o in server.open_orders(stack.creds.api_key) if o.side == "Ask"]
        fee_in_base = buy_fill.fee if buy_fill.fee_asset == "BTC" else Decimal(0)
        assert sell.order_type == "Limit" and sell.price == floor_to(
            buy_fill.price * Decimal("1.005"), Decimal("0.1")
        )
        assert sell.quantity == floor_to(buy_fill.qty - fee_in_base, Decimal("0.00001"))

        # every order went out plain: no take-profit or trigger field reached Backpack
        executes = server.requests_for("orderExecute")
        assert len(executes) >= 2
        assert not any(f in (r.body or {}) for r in executes for f in TAKE_PROFIT_FIELDS)

        # and the bot's status says which is used, and why
        async def says() -> bool:
            status = await stack.status("bob-vol")
            return status is not None and status.details.get("oto") == "emulated"

        await eventually(says, what="the bot's status")
        status = await stack.status("bob-vol")
        assert status is not None
        assert status.details["oto_why"] == f"{BACKPACK_SPOT}; {OTO_EMULATION}"

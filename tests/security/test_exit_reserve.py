"""Issue 14, item 7: a bot's exit is never blocked by its user's manual orders.

``max_open_orders`` counts every open order of an account. When the user's
manual orders use it up, a bot's take-profit used to be refused with
``risk_max_open_orders`` and the bot went ``failed`` with its position open.
Now an order that can only reduce the account's exposure (a *closing* order,
decided by execution itself, never by a flag of the intent: on a spot account
a sell, which can only sell base the account holds) is exempt from that
limit; every opening order is still refused (:mod:`tradebus.engine.risk`).

Real NATS, real PostgreSQL and the real execution service: a paper spot
account with ``max_open_orders: 3`` holding 0.05 BTC; the user fills the
limit with three manual buys; a ladder-style take-profit (published on
``intent.<user>.<bot id>`` with ``clamp_to_free`` as the ladder does) is
accepted and fills, while further buys are refused.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually
from tradebus.common.messages import OrderAccepted, OrderFilled, OrderRejected

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000", BTC: "0.05"},
     maker_fee_bps: "0", taker_fee_bps: "0", risk: {max_open_orders: 3}}
"""
BOT = "alice-ladder-btc"


def intent(intent_id: str, side: str, qty: str, price: str, **extra: object) -> str:
    return json.dumps(
        {
            "type": "PlaceOrder",
            "intent_id": intent_id,
            "account": "alice-paper",
            "symbol": "BTCUSDT",
            "side": side,
            "qty": qty,
            "price": price,
            **extra,
        }
    )


@pytest.fixture
async def bus(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Bus]:
    settings = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    async with collecting(nats_url, Bus) as b, execution_service(b.nc, settings):
        yield b


async def answer(bus: Bus, intent_id: str) -> OrderAccepted | OrderRejected:
    """Execution's answer to ``intent_id``: accepted or refused."""
    await eventually(
        lambda: bus.of(OrderAccepted, intent_id) or bus.of(OrderRejected, intent_id),
        what=f"{intent_id} answered",
    )
    accepted = bus.of(OrderAccepted, intent_id)
    answers: list[OrderAccepted | OrderRejected] = [*accepted] or [
        *bus.of(OrderRejected, intent_id)
    ]
    (event,) = answers
    return event


async def test_a_bots_take_profit_passes_a_full_open_order_limit(
    bus: Bus, database_url: str
) -> None:
    await bus.tick("60000", 1)
    # the user fills the limit by hand: three resting buys
    for i in range(3):
        await bus.pub("intent.alice.manual", intent(f"m-buy-{i}", "buy", "0.01", "59000"))
        assert isinstance(await answer(bus, f"m-buy-{i}"), OrderAccepted)
    await bus.pub("intent.alice.manual", intent("m-buy-3", "buy", "0.01", "59000"))
    refused = await answer(bus, "m-buy-3")
    assert isinstance(refused, OrderRejected) and refused.reason == "risk_max_open_orders"

    # the bot's take-profit, as the ladder sends it, is accepted at the limit
    take_profit = f"{BOT}:1.1:s1"
    await bus.pub(
        f"intent.alice.{BOT}",
        intent(take_profit, "sell", "0.05", "60500", trigger_ts=1, clamp_to_free=True),
    )
    accepted = await answer(bus, take_profit)
    assert isinstance(accepted, OrderAccepted), accepted
    assert accepted.qty == D("0.05")

    # opening orders are still refused: four open orders now, the limit is 3
    await bus.pub("intent.alice.manual", intent("m-buy-4", "buy", "0.01", "59000"))
    refused = await answer(bus, "m-buy-4")
    assert isinstance(refused, OrderRejected) and refused.reason == "risk_max_open_orders"
    assert "4 open orders" in refused.message
    # nor can a sell open anything: all of alice's BTC is locked by the take-profit,
    # so a sell passes the limit but the venue refuses it (a spot sell never goes short)
    await bus.pub("intent.alice.manual", intent("m-sell", "sell", "0.01", "61000"))
    refused = await answer(bus, "m-sell")
    assert isinstance(refused, OrderRejected) and refused.reason == "insufficient_balance"

    # the take-profit fills and the position is closed
    await bus.tick("60501", 2)
    await eventually(lambda: bus.of(OrderFilled, take_profit), what="take-profit filled")
    assert (await bus.balance("BTC")).total == 0
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT intent_id, status FROM orders ORDER BY intent_id")
    finally:
        await conn.close()
    assert {r["intent_id"]: r["status"] for r in rows} == {
        "m-buy-0": "accepted",
        "m-buy-1": "accepted",
        "m-buy-2": "accepted",
        "m-sell": "rejected",
        take_profit: "filled",
    }

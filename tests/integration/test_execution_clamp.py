"""``PlaceOrder.clamp_to_free`` through the real execution service (real NATS and PostgreSQL).

Account ``alice-paper`` holds 0.5 BTC and 1000 USDT. A sell with the flag is
placed for at most the free BTC (total - locked) and the order row, the
:class:`OrderAccepted` and the venue carry the placed quantity; with nothing
free it is refused ``insufficient_balance``.
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
  - {id: alice-paper, user: alice, balances: {USDT: "1000", BTC: "0.5"}}
"""


def place(intent_id: str, side: str, qty: str, price: str, clamp: bool = True) -> str:
    return json.dumps(
        {
            "type": "PlaceOrder",
            "intent_id": intent_id,
            "account": "alice-paper",
            "symbol": "BTCUSDT",
            "side": side,
            "qty": qty,
            "price": price,
            "trigger_ts": 1,
            "clamp_to_free": clamp,
        }
    )


@pytest.fixture
async def bus(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Bus]:
    settings = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    async with collecting(nats_url, Bus) as b, execution_service(b.nc, settings):
        yield b


async def order_rows(database_url: str) -> dict[str, tuple[D, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch("SELECT intent_id, qty, status FROM orders")
    finally:
        await conn.close()
    return {r["intent_id"]: (r["qty"], r["status"]) for r in records}


async def btc(bus: Bus) -> tuple[D, D]:
    b = await bus.balance("BTC")
    return b.total, b.free


async def test_a_clamped_sell_places_the_free_balance_and_then_nothing(
    bus: Bus, database_url: str
) -> None:
    await bus.tick("60000", 1)
    # 0.2 BTC locked by a resting sell without the flag: 0.3 free
    await bus.pub("intent.alice.manual", place("s-1", "sell", "0.2", "70000", clamp=False))
    await eventually(lambda: bus.of(OrderAccepted, "s-1"), what="s-1 accepted")
    # asks for 0.5, gets 0.3
    await bus.pub("intent.alice.manual", place("s-2", "sell", "0.5", "70000"))
    await eventually(lambda: bus.of(OrderAccepted, "s-2"), what="s-2 accepted")
    assert bus.of(OrderAccepted, "s-2")[0].qty == D("0.3")
    assert await btc(bus) == (D("0.5"), D(0))
    # nothing free: refused, naming the free balance
    await bus.pub("intent.alice.manual", place("s-3", "sell", "0.1", "70000"))
    await eventually(lambda: bus.of(OrderRejected, "s-3"), what="s-3 refused")
    (refused,) = bus.of(OrderRejected, "s-3")
    assert refused.reason == "insufficient_balance"
    assert "free BTC balance is 0" in refused.message
    # the flag does not apply to buys: placed in full although no BTC is free
    await bus.pub("intent.alice.manual", place("b-1", "buy", "0.001", "50000"))
    await eventually(lambda: bus.of(OrderAccepted, "b-1"), what="b-1 accepted")
    assert bus.of(OrderAccepted, "b-1")[0].qty == D("0.001")
    # a redelivered clamped intent is answered from its row, not taken for another order
    await bus.pub("intent.alice.manual", place("s-2", "sell", "0.5", "70000"), msg_id="again")
    await bus.pub("intent.alice.manual", place("after", "buy", "0.001", "50000"))
    await eventually(lambda: bus.of(OrderAccepted, "after"), what="the following intent")
    assert bus.of(OrderRejected, "s-2") == []
    # re-announced with the same message id: stored once in EXEC
    assert [e.qty for e in bus.of(OrderAccepted, "s-2")] == [D("0.3")]
    rows = await order_rows(database_url)
    assert rows["s-2"] == (D("0.3"), "accepted")
    assert "s-3" not in rows  # refused before any order row
    # both sells fill: 0.2 + 0.3 = everything there was
    await bus.tick("70000.01", 2)
    await eventually(lambda: len(bus.of(OrderFilled)) == 2, what="both sells filled")
    assert sorted(f.qty for f in bus.of(OrderFilled)) == [D("0.2"), D("0.3")]
    assert await btc(bus) == (D(0), D(0))

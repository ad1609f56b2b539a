"""Risk limits and the kill switch in the running execution service (real NATS, Postgres).

Every refusal carries a machine-readable reason and a message, is published
on ``exec.evt`` and kept in ``rejected_intents``. The kill switch cancels
open orders, refuses new ones until released, and survives a restart.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import nats.errors
import pytest

from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually
from tradebus.cli import killctl
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_killswitch_reply
from tradebus.common.messages import (
    KillSwitchCommand,
    KillSwitchReply,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from tradebus.execution.settings import ExecutionSettings

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"},
     risk: {price_band_pct: "5", max_orders_per_second: 3}}
  - {id: bob-paper, user: bob, balances: {USDT: "10000"}}
  - {id: carol-paper, user: carol, balances: {USDT: "10000"}, maker_fee_bps: "0",
     taker_fee_bps: "0", risk: {max_daily_loss: "50"}}
"""


def place(user: str, intent_id: str, price: str, side: str = "buy", qty: str = "0.01") -> str:
    return (
        f'{{"type":"PlaceOrder","intent_id":"{intent_id}","account":"{user}-paper",'
        f'"symbol":"BTCUSDT","side":"{side}","qty":"{qty}","price":"{price}"}}'
    )


@pytest.fixture
def settings(nats_url: str, database_url: str, tmp_path: Path) -> ExecutionSettings:
    return execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)


@pytest.fixture
async def bus(nats_url: str, settings: ExecutionSettings) -> AsyncIterator[Bus]:
    async with collecting(nats_url, Bus) as b, execution_service(b.nc, settings):
        yield b


async def kill(bus: Bus, action: str, account: str | None = None) -> KillSwitchReply:
    command = KillSwitchCommand(action=action, account=account, reason="test")  # type: ignore[arg-type]
    reply = decode_killswitch_reply(await request(bus.nc, subjects.CTL_KILLSWITCH, command))
    assert isinstance(reply, KillSwitchReply), reply
    return reply


async def answers(bus: Bus) -> bool:
    try:
        await kill(bus, "status")
    except nats.errors.NoRespondersError:
        return False
    return True


async def refused(bus: Bus, intent_id: str) -> OrderRejected:
    await eventually(lambda: bus.of(OrderRejected, intent_id), what=f"{intent_id} refused")
    (event,) = bus.of(OrderRejected, intent_id)
    assert event.message, event
    return event


async def accepted(bus: Bus, intent_id: str) -> None:
    await eventually(lambda: bus.of(OrderAccepted, intent_id), what=f"{intent_id} accepted")


async def test_price_band_and_order_rate(bus: Bus, database_url: str) -> None:
    await bus.pub("intent.alice.m", place("alice", "no-price-yet", "60000"))
    assert (await refused(bus, "no-price-yet")).reason == "risk_no_reference_price"
    await bus.tick("60000", 1)
    await bus.pub("intent.alice.m", place("alice", "fat-finger", "6000"))
    event = await refused(bus, "fat-finger")
    assert event.reason == "risk_price_band" and "band is 5%" in event.message
    # a burst: 3 orders a second pass, the 4th is refused
    for i in range(4):
        await bus.pub("intent.alice.m", place("alice", f"burst-{i}", "59900"))
    await eventually(
        lambda: len(bus.of(OrderAccepted)) + len(bus.of(OrderRejected)) >= 2 + 4,
        what="the burst answered",
    )
    reasons = [
        "ok"
        if bus.of(OrderAccepted, f"burst-{i}")
        else bus.of(OrderRejected, f"burst-{i}")[0].reason
        for i in range(4)
    ]
    assert reasons.count("ok") == 3 and "risk_order_rate" in reasons, reasons
    conn = await asyncpg.connect(database_url)
    try:
        kept = {r["reason"] for r in await conn.fetch("SELECT reason FROM rejected_intents")}
    finally:
        await conn.close()
    assert {"risk_no_reference_price", "risk_price_band", "risk_order_rate"} <= kept


async def test_daily_loss_stops_new_orders(bus: Bus) -> None:
    await bus.tick("60000", 1)
    await bus.pub("intent.carol.m", place("carol", "c-buy", "60000"))
    await accepted(bus, "c-buy")
    await bus.tick("60000", 2)  # fills the buy (trades-only model: a trade at its price)
    await eventually(lambda: bus.of(OrderFilled, "c-buy"), what="buy filled")
    await bus.pub("intent.carol.m", place("carol", "c-sell", "54000", side="sell"))
    await accepted(bus, "c-sell")
    await bus.tick("54000", 3)  # sold 0.01 BTC 6000 lower: a realized loss of 60 > 50
    await eventually(lambda: bus.of(OrderFilled, "c-sell"), what="sell filled")
    await bus.pub("intent.carol.m", place("carol", "c-next", "54000"))
    event = await refused(bus, "c-next")
    assert event.reason == "risk_daily_loss" and "-60" in event.message


async def test_kill_switch_cancels_refuses_and_survives_a_restart(
    nats_url: str, settings: ExecutionSettings
) -> None:
    async with collecting(nats_url, Bus) as bus:
        async with execution_service(bus.nc, settings):
            await bus.tick("60000", 1)
            for i in range(2):
                await bus.pub("intent.bob.m", place("bob", f"b-{i}", "59000"))
                await accepted(bus, f"b-{i}")
            reply = await kill(bus, "engage", "bob-paper")
            assert reply.canceled == 2 and reply.accounts == {"bob-paper": "test"}
            await eventually(lambda: len(bus.of(OrderCanceled)) == 2, what="both canceled")
            await bus.pub("intent.bob.m", place("bob", "b-2", "59000"))
            assert (await refused(bus, "b-2")).reason == "kill_switch"
            await bus.pub("intent.alice.m", place("alice", "a-1", "59900"))
            await accepted(bus, "a-1")  # other accounts trade on
            # the global switch stops everyone, and cancels alice's order too
            reply = await kill(bus, "engage")
            assert reply.global_reason == "test" and reply.canceled == 1
            await bus.pub("intent.alice.m", place("alice", "a-2", "59900"))
            assert (await refused(bus, "a-2")).reason == "kill_switch"
        # a restarted execution comes back with both switches engaged
        async with execution_service(bus.nc, settings):
            # its durable consumer exists already: wait until it answers ctl.killswitch
            await eventually(lambda: answers(bus), what="ctl.killswitch answered")
            status = await kill(bus, "status")
            assert status.global_reason == "test" and status.accounts == {"bob-paper": "test"}
            await bus.tick("60000", 10)  # alice's price band needs a last price again
            await kill(bus, "release")  # the global one; bob's own stays
            await bus.pub("intent.bob.m", place("bob", "b-3", "59000"))
            assert (await refused(bus, "b-3")).reason == "kill_switch"
            await bus.pub("intent.alice.m", place("alice", "a-3", "59900"))
            await accepted(bus, "a-3")
            # the CLI: tradebus killswitch engage/status/release
            cli = argparse.Namespace(nats_url=nats_url, json=False, account="bob-paper")
            out = await killctl.killswitch(argparse.Namespace(**vars(cli), verb="status"))
            assert out == "global: released\nbob-paper: ENGAGED: test"
            await killctl.killswitch(argparse.Namespace(**vars(cli), verb="release"))
            await bus.pub("intent.bob.m", place("bob", "b-4", "59000"))
            await accepted(bus, "b-4")
            assert (await kill(bus, "status")).accounts == {}
    assert [e.filled_qty for e in bus.of(OrderCanceled)] == [D(0), D(0), D(0)]

"""Perpetual futures on a live Backpack account, through the whole stack (issue 18).

An account with ``market_kind: perpetual`` trades ``BTC_USDC_PERP`` on the local
Backpack server (:mod:`tests.support.backpack.stack`): a short is opened and
closed by manual intents. Backpack's fills carry no realized P&L, so execution
computes it from the account's position when it books each fill. A funding
payment made while the short is open is booked once as a ``funding`` journal
entry. The ledger's USDC and position then equal the venue's, and a
reconciliation run, which reads the venue's positions beside its balances, is
ok.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from tests.support.backpack.market import BTC_USDC_PERP
from tests.support.backpack.stack import backpack_stack
from tests.support.execution import journal_totals, reconcile_now
from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_balances_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import (
    BalancesQuery,
    BalancesReply,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
)
from tradebus.ledger.entries import position_asset

PLACE = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"bob-backpack",'
    '"symbol":"BTC_USDC_PERP","side":"%s","qty":"%s","price":"%s"}'
)
CLOSE = PLACE[:-1] + ',"reduce_only":true}'
POSITION = position_asset("BTC_USDC_PERP")


async def test_a_short_on_a_backpack_perpetual_is_booked_as_the_venue_settles_it(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
        first_prices={"BTC_USDC_PERP": "60000"},
        markets=(BTC_USDC_PERP,),
        market_kind="perpetual",
        backstop_seconds=0.5,  # funding has no stream: it is polled
        risk='{max_margin_ratio: "0.0005"}',
        leverage="5",
    ) as stack:
        bus, server, key = stack.bus, stack.server, stack.creds.api_key
        # the account's leverage was set at the venue when it started (leverageLimit)
        assert server.exchange.leverage == {key: 5}
        await bus.pub("intent.bob.manual", PLACE % ("s-1", "sell", "0.01", "60010"))
        await eventually(lambda: bus.of(OrderAccepted, "s-1"), what="the short accepted")
        await server.feed_trade("BTC_USDC_PERP", "60020", "0.5")
        await eventually(lambda: bus.of(OrderFilled, "s-1"), what="the short filled")
        assert server.positions(key) == {"BTC_USDC_PERP": D("-0.01")}
        await eventually(
            lambda: _has(database_url, POSITION, D("-0.01")), what="the position in the ledger"
        )
        # the venue's view of the position and the account's margin ratio: maintenance
        # margin 0.01 * 60020 * 0.0125 over equity 10000 - fee + unrealized
        query = BalancesQuery(account=AccountId("bob-backpack"))
        answer = decode_balances_reply(
            await request(stack.nc, subjects.exec_query("balances"), query)
        )
        assert isinstance(answer, BalancesReply), answer
        (account,) = answer.accounts
        (position,) = account.positions
        assert (position.symbol, position.qty, position.entry_price) == (
            "BTC_USDC_PERP",
            D("-0.01"),
            D(60010),
        )
        assert position.liquidation_price is not None and position.liquidation_price > 60010
        maintenance = D("0.01") * 60020 * D("0.0125")
        equity = D(10_000) - D("600.1") * 2 / 10_000 + D("-0.01") * (60020 - 60010)
        assert account.margin_ratio == maintenance / equity  # 0.00075, over the 0.0005 limit
        # past max_margin_ratio only reduce-only orders go out
        await bus.pub("intent.bob.manual", PLACE % ("s-2", "sell", "0.01", "60030"))
        await eventually(lambda: bus.of(OrderRejected, "s-2"), what="the opening order refused")
        (refused,) = bus.of(OrderRejected, "s-2")
        assert refused.reason == "risk_margin_ratio", refused
        # a funding interval ends: the short receives 0.01 * 60020 * 0.0001 in USDC
        (paid,) = server.apply_funding("BTC_USDC_PERP", "0.0001")
        assert paid.quantity == D("0.06002")

        async def funding_booked() -> bool:
            return await _funding(database_url) == [D("0.06002")]

        await eventually(funding_booked, what="the funding payment booked")

        # reduce-only: more than the position is refused before the venue is asked
        await bus.pub("intent.bob.manual", CLOSE % ("b-0", "buy", "0.02", "59990"))
        await eventually(lambda: bus.of(OrderRejected, "b-0"), what="the oversized close")
        (refused,) = bus.of(OrderRejected, "b-0")
        assert refused.reason == "invalid_order" and "reduce_only" in refused.message
        await bus.pub("intent.bob.manual", CLOSE % ("b-1", "buy", "0.01", "59990"))
        await eventually(lambda: bus.of(OrderAccepted, "b-1"), what="the close accepted")
        await server.feed_trade("BTC_USDC_PERP", "59980", "0.5")
        await eventually(lambda: bus.of(OrderFilled, "b-1"), what="the close filled")
        assert server.positions(key) == {}
        assert [o.reduce_only for o in server.orders(key)] == [False, True]  # told the venue

        # realized 0.01 * (60010 - 59990) = 0.2, funding 0.06002, fees 2 bps of each side,
        # all in USDC
        venue = {a: b.total for a, b in server.balances(key).items() if b.total}
        fees = (D("600.1") + D("599.9")) * 2 / 10_000
        assert venue == {"USDC": D(10_000) + D("0.2") + D("0.06002") - fees}
        await eventually(
            lambda: _equals(database_url, venue),
            what="the ledger to equal the venue",
            detail=lambda: f"venue {venue}",
        )
        (report,) = (await reconcile_now(nats_url, database_url, stack.nc)).values()
        assert report.status == "ok", report


async def _funding(database_url: str) -> list[D]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT amount FROM journal WHERE account_id = 'bob-backpack' AND kind = 'funding'"
        )
    finally:
        await conn.close()
    return [D(r["amount"]) for r in rows]


async def _has(database_url: str, asset: str, amount: D) -> bool:
    return (await journal_totals(database_url, "bob-backpack")).get(asset) == amount


async def _equals(database_url: str, venue: dict[str, D]) -> bool:
    return await journal_totals(database_url, "bob-backpack") == venue

"""The local Backpack server's perpetual futures, through ccxt's ``backpack`` client: the
market as ccxt reads it, a short opened and closed reduce-only, its position, funding
paid into the quote balance, and the funding history (issue 18)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from tests.support.backpack.market import BTC_USDC_PERP
from tests.support.backpack.server import BackpackServer, Credentials

PERP = "BTC/USDC:USDC"


@pytest.fixture
async def server() -> AsyncIterator[BackpackServer]:
    async with BackpackServer((BTC_USDC_PERP,)) as s:
        yield s


@pytest.fixture
async def client(server: BackpackServer) -> AsyncIterator[tuple[ccxt.Exchange, Credentials]]:
    creds = server.add_account({"USDC": "10000"})
    ex = server.ccxt_client(creds, enableRateLimit=False)
    await ex.load_markets()
    try:
        yield ex, creds
    finally:
        await ex.close()


async def test_a_short_is_opened_funded_and_closed_reduce_only(
    server: BackpackServer, client: tuple[ccxt.Exchange, Credentials]
) -> None:
    ex, creds = client
    market = ex.market(PERP)
    assert (market["id"], market["type"], market["linear"], market["settle"]) == (
        "BTC_USDC_PERP",
        "swap",
        True,
        "USDC",
    )
    await server.feed_trade("BTC_USDC_PERP", "60000", "0.5")
    short = await ex.create_order(PERP, "limit", "sell", 0.01, 60010, {"clientOrderId": 1})
    # an open order locks its initial margin (notional * imf) in USDC
    assert server.balances(creds.api_key)["USDC"].locked == Decimal("60010") * Decimal(
        "0.01"
    ) * Decimal("0.02")
    await server.feed_trade("BTC_USDC_PERP", "60020", "0.5")  # prints above: the sell fills
    assert server.positions(creds.api_key) == {"BTC_USDC_PERP": Decimal("-0.01")}
    (position,) = await ex.fetch_positions([PERP])
    assert (position["side"], position["entryPrice"], position["info"]["netQuantity"]) == (
        "short",
        "60010",
        "-0.01",
    )
    assert float(position["liquidationPrice"]) > 60010
    assert short["id"] in {o["id"] for o in await ex.fetch_closed_orders(PERP)}

    # funding: a short receives a positive rate, at the mark (the last trade, 60020)
    (paid,) = server.apply_funding("BTC_USDC_PERP", "0.0001")
    assert paid.quantity == Decimal("0.01") * Decimal("60020") * Decimal("0.0001")
    (history,) = await ex.fetch_funding_history(PERP)
    assert (history["symbol"], history["info"]["quantity"]) == (PERP, "0.06002")

    # reduce-only: more than the position, or the wrong side, is refused
    with pytest.raises(ccxt.InvalidOrder, match="Reduce only"):
        await ex.create_order(PERP, "limit", "buy", 0.02, 59990, {"reduceOnly": True})
    with pytest.raises(ccxt.InvalidOrder, match="Reduce only"):
        await ex.create_order(PERP, "limit", "sell", 0.01, 60100, {"reduceOnly": True})
    close = await ex.create_order(PERP, "limit", "buy", 0.01, 59990, {"reduceOnly": True})
    assert close["reduceOnly"] is True
    await server.feed_trade("BTC_USDC_PERP", "59980", "0.5")  # prints below: the buy fills
    assert server.positions(creds.api_key) == {}
    assert await ex.fetch_positions() == []
    # USDC: - open fee + funding + realized (0.01 * (60010 - 59990)) - close fee, 2 bps maker
    fees = (Decimal("600.1") + Decimal("599.9")) * 2 / 10_000
    balance = server.balances(creds.api_key)["USDC"]
    assert balance.total == Decimal(10_000) + Decimal("0.06002") + Decimal("0.2") - fees
    assert balance.locked == 0
    assert "BTC" not in server.balances(creds.api_key)  # a perpetual holds no base asset
    fills = server.fills(creds.api_key)
    assert [(f.side, f.fee_symbol) for f in fills] == [("Ask", "USDC"), ("Bid", "USDC")]


async def test_the_position_stream_tells_ccxt_pro_of_the_position(server: BackpackServer) -> None:
    """``account.positionUpdate``: a fill that opens, grows or closes a position pushes
    ``positionOpened``/``positionAdjusted``/``positionClosed`` (ccxt.pro
    ``watch_positions``)."""
    creds = server.add_account({"USDC": "10000"})
    pro = server.ccxt_client(creds, pro=True, enableRateLimit=False)
    rest = server.ccxt_client(creds, enableRateLimit=False)
    try:
        await pro.load_markets()
        await rest.load_markets()
        await server.feed_trade("BTC_USDC_PERP", "60000", "0.5")
        watching = asyncio.create_task(pro.watch_positions([PERP]))
        await server.wait_subscribed("account.positionUpdate.BTC_USDC_PERP", creds.api_key)
        await rest.create_order(PERP, "limit", "sell", 0.01, 60010)
        await server.feed_trade("BTC_USDC_PERP", "60020", "0.5")
        (position,) = await asyncio.wait_for(watching, 5)
        assert (position["side"], position["contracts"], position["info"]["e"]) == (
            "short",
            "0.01",
            "positionOpened",
        )
        assert position["info"]["q"] == "-0.01"
        watching = asyncio.create_task(pro.watch_positions([PERP]))
        await asyncio.sleep(0)
        await rest.create_order(PERP, "limit", "buy", 0.01, 59990, {"reduceOnly": True})
        await server.feed_trade("BTC_USDC_PERP", "59980", "0.5")
        (position,) = await asyncio.wait_for(watching, 5)
        assert (position["info"]["e"], position["info"]["q"]) == ("positionClosed", "0")
    finally:
        await pro.close()
        await rest.close()

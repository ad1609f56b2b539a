"""The markets list: what bots can trade, with the increments the web page formats by."""

from __future__ import annotations

from decimal import Decimal

from tests.gateway.conftest import Gateway
from tradebus.common.markets import MarketCatalog, default_markets_path


async def test_markets_answer_the_catalog_with_exact_increments_to_signed_in_users(
    gateway: Gateway,
) -> None:
    anonymous = await gateway.client().get("/api/v1/markets")
    assert anonymous.status_code == 401

    alice = await gateway.person("alice")
    answer = await alice.get("/api/v1/markets")
    assert answer.status_code == 200, answer.text
    items = answer.json()
    catalog = MarketCatalog.load(default_markets_path())
    assert [(i["venue"], i["symbol"]) for i in items] == [
        (v, m.symbol) for v, m in catalog.all_markets()
    ]
    btc = next(i for i in items if (i["venue"], i["symbol"]) == ("binance", "BTCUSDT"))
    market = catalog.get("binance", "BTCUSDT")
    # decimal strings, exactly as configured (no float tails)
    assert isinstance(btc["tick_size"], str) and Decimal(btc["tick_size"]) == market.tick_size
    assert isinstance(btc["step_size"], str) and Decimal(btc["step_size"]) == market.step_size
    assert (btc["base"], btc["quote"], btc["kind"]) == (market.base, market.quote, market.kind)

    only = (await alice.get("/api/v1/markets", params={"venue": "backpack"})).json()
    assert only and {i["venue"] for i in only} == {"backpack"}
    assert (await alice.get("/api/v1/markets", params={"venue": "nowhere"})).json() == []

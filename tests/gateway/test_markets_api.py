"""The markets list: what bots can trade, with the increments the web page formats by."""

from __future__ import annotations

import time
from decimal import Decimal

from nats.aio.client import Client as NATS

from tests.gateway.conftest import Gateway
from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import BotStatus, BotStatusChanged

SEC = 1_000_000_000
T0 = 1_723_168_800 * SEC
"""2024-08-09T02:00:00Z, the recorded data's day."""


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


def priced(bot: str, symbol: str, price: str | None, at: int | None) -> BotStatus:
    """A ladder's status at ``price``, its tick at market time ``at``."""
    return BotStatus(
        bot=bot, user="alice", account="alice-paper", strategy="ladder", venue="binance",
        symbol=symbol, last_price=None if price is None else Decimal(price), price_ts=at,
    )  # fmt: skip


async def test_a_markets_prices_are_the_ones_its_bots_reported_in_market_time_order(
    gateway: Gateway, nc: NATS
) -> None:
    alice = await gateway.person("alice")
    reported = [
        priced("alice-a", "BTCUSDT", None, None),  # no price yet: nothing
        priced("alice-a", "BTCUSDT", "60000.10", T0),
        priced("alice-b", "BTCUSDT", "60000.10", T0),  # a second bot, same tick: once
        priced("alice-a", "BTCUSDT", "60001.20", T0 + SEC),
        priced("alice-b", "BTCUSDT", "59999.00", T0 + SEC // 2),  # older: not a new point
        priced("alice-a", "BTCUSDT", "60002.30", T0 + 2 * SEC),
        priced("alice-c", "ETHUSDT", "2500.01", T0 + SEC),
        priced("alice-d", "NOPE", "1", T0),  # not in the markets file: never kept
    ]
    for status in reported:
        changed = BotStatusChanged(status=status, ts_event=time.time_ns())
        await nc.publish(subjects.bot_status("alice", status.bot), encode(changed))
    await nc.flush()

    async def trail(symbol: str, **params: int) -> list[tuple[int, str]]:
        answer = await alice.get(f"/api/v1/markets/binance/{symbol}/prices", params=params)
        assert answer.status_code == 200, answer.text
        return [(p["ts"], p["price"]) for p in answer.json()["points"]]

    await eventually(lambda: trail("ETHUSDT"), what="the last status seen")
    assert await trail("BTCUSDT") == [
        (T0, "60000.10"), (T0 + SEC, "60001.20"), (T0 + 2 * SEC, "60002.30"),
    ]  # fmt: skip
    assert await trail("BTCUSDT", since=T0 + SEC) == [
        (T0 + SEC, "60001.20"), (T0 + 2 * SEC, "60002.30"),
    ]  # fmt: skip
    assert await trail("ETHUSDT") == [(T0 + SEC, "2500.01")]
    assert await trail("SOLUSDT") == []  # a market no bot runs on
    unknown = await alice.get("/api/v1/markets/binance/NOPE/prices")
    assert unknown.status_code == 404, unknown.text
    assert "binance:NOPE" in unknown.text
    anonymous = await gateway.client().get("/api/v1/markets/binance/BTCUSDT/prices")
    assert anonymous.status_code == 401

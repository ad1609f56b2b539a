"""Vetting decides what is a closing order from the venue, never from the intent.

A perpetual paper account at its ``max_open_orders`` limit holding a long:
a sell within the position less the account's other resting sells passes;
a sell beyond it, or a buy, is refused (:func:`tradebus.engine.risk.is_closing`).
"""

from __future__ import annotations

from decimal import Decimal as D

import msgspec

from tests.support import ticks
from tests.support.markets import BTCUSDT
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import PlaceOrder, Side
from tradebus.engine.accounts import AccountSpec, RiskLimits
from tradebus.engine.paper.exchange import PaperExchange, PaperVenue
from tradebus.engine.risk import Refusal
from tradebus.engine.venue import VenueOrder
from tradebus.engine.vetting import Vetting

PERP_ACCT, SPOT_ACCT = AccountId("p"), AccountId("s")
LIMIT = RiskLimits(max_open_orders=2)
PERP = AccountSpec(
    id=PERP_ACCT, user=UserId("u"), market_kind="perpetual", leverage=D(5), risk=LIMIT
)
SPOT = AccountSpec(id=SPOT_ACCT, user=UserId("u"), risk=LIMIT)
CATALOG = MarketCatalog({"binance": [BTCUSDT]})


class Clock:
    def now_ns(self) -> int:
        return 10**18


def order(cid: str, side: Side, qty: str, price: str) -> VenueOrder:
    return VenueOrder(
        client_order_id=cid,
        intent_id=IntentId(cid),
        symbol="BTCUSDT",
        side=side,
        order_type="limit",
        price=D(price),
        qty=D(qty),
        trigger_ts=None,
    )


def intent(side: str, qty: str, price: str = "60000", **kw: object) -> PlaceOrder:
    return PlaceOrder(
        intent_id=IntentId("x"),
        account=PERP_ACCT,
        symbol="BTCUSDT",
        side=side,  # type: ignore[arg-type]
        qty=D(qty),
        price=D(price),
        **kw,  # type: ignore[arg-type]
    )


def setup() -> tuple[PaperExchange, Vetting]:
    exchange = PaperExchange(CATALOG, "binance")
    exchange.open_account(PERP_ACCT, {"USDT": D(10000)}, D(0), D(0), "perpetual", D(5))
    exchange.open_account(SPOT_ACCT, {"USDT": D(10000), "BTC": D(1)}, D(0), D(0))
    exchange.on_trade(ticks.trade("60000", 1))
    exchange.place(PERP_ACCT, order("1", "buy", "0.05", "60000"))  # a long of 0.05
    exchange.on_trade(ticks.trade("60000", 2))
    exchange.on_trade(ticks.trade("60000", 3))
    assert exchange.positions(PERP_ACCT)["BTCUSDT"].qty == D("0.05")
    exchange.place(PERP_ACCT, order("2", "sell", "0.03", "61000"))  # a take-profit resting
    exchange.place(PERP_ACCT, order("3", "buy", "0.01", "59000"))  # and a buy: two open, the limit
    venues = {a: PaperVenue(exchange, a) for a in (PERP_ACCT, SPOT_ACCT)}
    vetting = Vetting(
        CATALOG,
        venues,  # type: ignore[arg-type]
        lambda account: len(exchange.open_orders(account)) if account == "p" else 2,
        lambda venue, symbol: exchange.last_trade(symbol),
        Clock(),
    )
    return exchange, vetting


def reason(vetted: PlaceOrder | Refusal) -> str | None:
    return vetted.reason if isinstance(vetted, Refusal) else None


async def test_a_perpetual_order_at_the_limit_passes_only_if_it_reduces_the_position() -> None:
    _, vetting = setup()
    assert reason(await vetting.vet(PERP, intent("sell", "0.02"))) is None  # 0.05 - 0.03 left
    assert reason(await vetting.vet(PERP, intent("sell", "0.02", order_type="market"))) is None
    for refused in (
        intent("sell", "0.03"),  # with the resting sell: 0.06 > 0.05, a flip
        intent("sell", "0.10"),
        intent("buy", "0.01"),  # grows the long
        intent("sell", "0.03", clamp_to_free=True),  # the flag proves nothing
    ):
        assert reason(await vetting.vet(PERP, refused)) == "risk_max_open_orders", refused


async def test_a_perpetual_order_of_a_flat_account_is_never_closing() -> None:
    exchange, vetting = setup()
    exchange.cancel("2")
    exchange.place(PERP_ACCT, order("4", "sell", "0.05", "60000"))
    exchange.on_trade(ticks.trade("60001", 4))
    exchange.on_trade(ticks.trade("60001", 5))
    assert exchange.positions(PERP_ACCT)["BTCUSDT"].qty == 0
    exchange.place(PERP_ACCT, order("5", "buy", "0.01", "58000"))  # two open again
    for side in ("buy", "sell"):
        refused = await vetting.vet(PERP, intent(side, "0.01"))
        assert reason(refused) == "risk_max_open_orders", side


async def test_a_spot_sell_at_the_limit_passes_and_a_buy_does_not() -> None:
    _, vetting = setup()
    sell = msgspec.structs.replace(intent("sell", "0.5"), account="s")
    assert reason(await vetting.vet(SPOT, sell)) is None
    refused = await vetting.vet(SPOT, msgspec.structs.replace(intent("buy", "0.01"), account="s"))
    assert reason(refused) == "risk_max_open_orders"

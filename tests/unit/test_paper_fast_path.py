"""The paper venue's per-event fast path fills exactly as the plain fill loop does.

:class:`PaperExchange` keeps the orders waiting to go live apart and screens a
trade against the best passive limits before it scans the live orders; with
``late_orders=False`` it does not record the recent events. :class:`Plain` is
the fill loop without any of that (every resting order looked at on every
event, as the module was first written). Random sessions (spot and
perpetual, two markets, two accounts, limit and market orders placed with and
without a trigger, cancels, quotes and trades) must give the same fills,
refusals, cancels, balances and resting orders on all three.
"""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest

from tests.support.markets import BTCUSDT, market
from tests.support.ticks import quote, trade
from tradebus.common.ids import AccountId, IntentId
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import QuoteTick, Side, TradeTick
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.engine.paper.rules import fill_price, is_marketable
from tradebus.engine.paper.state import PaperOrder
from tradebus.engine.venue import VenueFill, VenueOrder, VenueRejected

ETHUSDT = market("ETH", "USDT", step="0.0001")
A, B = AccountId("a"), AccountId("b")
SIDES: tuple[Side, ...] = ("buy", "sell")


class Plain(PaperExchange):
    """The fill loop with no fast path: every resting order is looked at on every event."""

    def _live(self, symbol: str, ts_recv: int) -> list[PaperOrder]:
        orders = self._orders.get(symbol)
        if not orders:
            return []
        last = self._last_trade.get(symbol)
        live = []
        for o in orders.values():
            if not o.live and (o.trigger_ts is None or ts_recv > o.trigger_ts):
                o.live = True
                o.marketable = is_marketable(o, last)
            if o.live:
                live.append(o)
        return live

    def on_quote(self, tick: QuoteTick) -> None:
        self._live(tick.symbol, tick.ts_recv)

    def on_trade(self, tick: TradeTick) -> list[VenueFill]:
        live = self._live(tick.symbol, tick.ts_recv)
        self._last_trade[tick.symbol] = tick.price
        fills = []
        for order in live:
            price = fill_price(order, tick.price)
            if price is not None:
                fills.append(self._fill(order, price, tick))
        return fills


def session(seed: int, kind: str) -> list[PaperExchange]:
    """The three exchanges after one random session (asserting they agreed all along)."""
    catalog = MarketCatalog({"binance": [BTCUSDT, ETHUSDT]})
    exchanges = [
        Plain(catalog, "binance"),
        PaperExchange(catalog, "binance"),
        PaperExchange(catalog, "binance", late_orders=False),
    ]
    for ex in exchanges:
        for account in (A, B):
            ex.open_account(
                account,
                {"USDT": D(100_000), "BTC": D(2), "ETH": D(20)},
                maker_fee_bps=D(1),
                taker_fee_bps=D(5),
                market_kind=kind,  # type: ignore[arg-type]
                leverage=D(3),
            )
    rng = random.Random(seed)
    prices = {"BTCUSDT": D(60_000), "ETHUSDT": D(3_000)}
    resting: list[str] = []
    n = 0
    for ts in range(1, 600):
        symbol = rng.choice(("BTCUSDT", "ETHUSDT"))
        step = prices[symbol] / 2000
        prices[symbol] = (prices[symbol] + step * rng.randint(-3, 3)).quantize(D("0.01"))
        p = prices[symbol]
        if rng.random() < 0.6:
            fills = [ex.on_trade(trade(p, ts, symbol=symbol)) for ex in exchanges]
            assert fills[0] == fills[1] == fills[2], (seed, ts)
        else:
            for ex in exchanges:
                ex.on_quote(quote(p - D("0.01"), p + D("0.01"), ts, symbol=symbol))
        for _ in range(rng.choice((0, 0, 0, 1, 2))):
            n += 1
            side = rng.choice(SIDES)
            is_market = rng.random() < 0.15
            limit = None if is_market else (p + step * rng.randint(-6, 6)).quantize(D("0.01"))
            order = VenueOrder(
                client_order_id=str(n),
                intent_id=IntentId(f"i{n}"),
                symbol=rng.choice(("BTCUSDT", "ETHUSDT")),
                side=side,
                order_type="market" if is_market else "limit",
                price=limit,
                qty=D(rng.choice(("0.01", "0.1", "0.5"))),
                trigger_ts=ts if rng.random() < 0.9 else None,
            )
            account = rng.choice((A, B))
            answers = []
            for ex in exchanges:
                try:
                    answers.append(ex.place(account, order))
                except VenueRejected as exc:
                    answers.append((exc.reason, exc.message))  # type: ignore[arg-type]
            assert answers[0] == answers[1] == answers[2], (seed, ts)
            resting.append(order.client_order_id)
        if resting and rng.random() < 0.2:
            cid = resting.pop(rng.randrange(len(resting)))
            assert len({ex.cancel(cid) for ex in exchanges}) == 1, (seed, ts)
    return exchanges


@pytest.mark.parametrize("kind", ["spot", "perpetual"])
@pytest.mark.parametrize("seed", range(6))
def test_the_fast_path_fills_as_the_plain_loop(seed: int, kind: str) -> None:
    exchanges = session(seed, kind)
    assert exchanges[0].fills_made > 10  # the sessions do fill
    for account in (A, B):
        states = [
            (ex.balances(account), ex.positions(account), ex.open_orders(account))
            for ex in exchanges
        ]
        assert states[0] == states[1] == states[2]
    assert exchanges[1].take_late_fills(A) == exchanges[2].take_late_fills(A) == []


def test_without_late_orders_a_quote_of_a_symbol_with_nothing_waiting_does_nothing() -> None:
    ex = PaperExchange(MarketCatalog({"binance": [BTCUSDT]}), "binance", late_orders=False)
    ex.open_account(A, {"USDT": D(1000)}, maker_fee_bps=D(1), taker_fee_bps=D(5))
    ex.on_trade(trade("100", 1))
    o = VenueOrder(
        client_order_id="1",
        intent_id=IntentId("i1"),
        symbol="BTCUSDT",
        side="buy",
        order_type="limit",
        price=D("99"),
        qty=D(1),
        trigger_ts=1,
    )
    ex.place(A, o)
    assert set(ex.waiting) == {"BTCUSDT"}
    ex.on_quote(quote("99", "101", 2))
    assert ex.waiting == {}  # live now
    resting = ex.find("1")
    assert resting is not None and resting.live and not resting.marketable
    (fill,) = ex.on_trade(trade("98", 3))
    assert (fill.price, fill.liquidity) == (D("99"), "maker")

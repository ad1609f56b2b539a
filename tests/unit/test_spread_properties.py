"""Invariants of the spread core (Hypothesis), and the core on real BTCUSDT/ETHUSDT trades.

The core is driven by :class:`FillLoop`, an immediate-fill venue written here
(the paper venue's perpetual support is being built elsewhere): every order
is accepted at once (or rejected, when a test says so), is live from the next
market event (STRATEGIES.md, paper fill model rule 1), and fills in full at
the next trade of its symbol if that price is within its limit (rule 3),
before the bot sees that trade (rule 5), with a taker fee in USDT.

* gross open notional (``sum |qty| * avg`` plus the open orders) never
  exceeds ``2 * leg_quote * (1 + sum(multipliers))`` beyond the marketable
  limit's 0.5 % slack;
* the legs never hold the same sign, and are both open and opposite whenever
  a round is open and quiet;
* the same inputs give the same intents, also across a snapshot/restore;
* realized P&L is the sum of the legs' realized P&L, and realized plus
  unrealized equals the cash flows of the fills plus the legs marked at ``p``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.data import BTC_RAW, ETH_RAW, parse_ticks
from tests.support.markets import BTCUSDT_PERP as BTC
from tests.support.markets import ETHUSDT_PERP as ETH
from tests.support.markets import bot_context
from tests.support.orders import OrderEvents
from tests.support.ticks import trade
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import (
    CancelOrder,
    Intent,
    OrderEvent,
    PlaceOrder,
    QuoteTick,
    TradeTick,
)
from tradebus.common.money import ZERO, floor_to
from tradebus.feeds.readers import merge_files
from tradebus.strategies.spread.bot import SpreadBot
from tradebus.strategies.spread.params import SpreadAdd, SpreadParams, SpreadTakeProfit

CTX = bot_context("bob-spread", "bob", "bob-paper", "spread", BTC, ETH)
EV = OrderEvents(CTX, reject_message="no margin")
TAKER_BPS = D(5)
SLACK = D("1.005")  # a marketable buy may fill up to 0.5 % above p


class FillLoop:
    """Immediate-fill venue for one spread bot (see the module docstring)."""

    def __init__(self, bot: SpreadBot, reject: Callable[[PlaceOrder], bool] = lambda p: False):
        self.bot = bot
        self.reject = reject
        self.live: list[PlaceOrder] = []  # accepted, live from this event on
        self.new: list[PlaceOrder] = []  # accepted during this event
        self.intents: list[Intent] = []
        self.fills: list = []

    def feed(self, tick: TradeTick | QuoteTick) -> None:
        if isinstance(tick, TradeTick):
            for order in list(self.live):
                limit = order.price
                assert limit is not None, "the bot places limit orders only"
                price_ok = tick.price <= limit if order.side == "buy" else tick.price >= limit
                if order.symbol == tick.symbol and price_ok:
                    self.live.remove(order)
                    fee = floor_to(order.qty * tick.price * TAKER_BPS / 10_000, D("0.00000001"))
                    fill = EV.filled(order, tick.price, fee)
                    self.fills.append(fill)
                    self._answer(fill)
            self._handle(self.bot.on_trade(tick))
        else:
            self._handle(self.bot.on_quote(tick))
        self.live += self.new
        self.new = []

    def _answer(self, event: OrderEvent) -> None:
        self._handle(self.bot.on_order_event(event))

    def _handle(self, intents: Iterable[Intent]) -> None:
        for intent in intents:
            self.intents.append(intent)
            if isinstance(intent, PlaceOrder):
                if self.reject(intent):
                    self._answer(EV.rejected(intent))
                else:
                    self.new.append(intent)
                    self._answer(EV.accepted(intent))
            elif isinstance(intent, CancelOrder):
                for queue in (self.live, self.new):
                    for order in queue:
                        if order.intent_id == intent.target_intent_id:
                            queue.remove(order)
                            self._answer(EV.canceled(order))
                            break

    def cash_flow(self) -> D:
        """Quote received minus paid over every fill, fees included."""
        return sum(
            (f.qty * f.price * (1 if f.side == "sell" else -1) - f.fee for f in self.fills), ZERO
        )


# --------------------------------------------------------------------------- checks
def gross_exposure(bot: SpreadBot) -> D:
    """Open notional of both legs plus the unfilled part of open entry/add orders (at limit)."""
    s = bot.state
    pending = sum(
        (
            (o.qty - o.filled) * (o.price or ZERO)
            for o in s.orders.open_orders()
            if "c" not in o.leg
        ),
        ZERO,
    )
    return abs(s.pos_a.open_cost) + abs(s.pos_b.open_cost) + pending


def check_invariants(bot: SpreadBot, loop: FillLoop) -> None:
    s, p = bot.state, bot.params
    budget = 2 * p.leg_quote * (1 + sum((a.multiplier for a in p.adds), ZERO)) * SLACK
    assert gross_exposure(bot) <= budget
    qa, qb = s.pos_a.qty, s.pos_b.qty
    assert qa * qb <= 0, "legs of one sign"
    if s.phase == "open" and not s.orders.open_orders() and not s.broken:
        assert qa * qb < 0
        assert (qa < 0) == (s.direction == "short_a")
    status = bot.status()
    assert status.realized_pnl == s.pos_a.realized_pnl + s.pos_b.realized_pnl
    marked = sum((q * s.prices.get(x, ZERO) for x, q in ((BTC.symbol, qa), (ETH.symbol, qb))), ZERO)
    total = status.realized_pnl + status.unrealized_pnl
    assert abs(total - (loop.cash_flow() + marked)) < D("1e-12")


# --------------------------------------------------------------------------- inputs
pct = st.decimals(min_value=D("0.05"), max_value=D("1"), places=2)


@st.composite
def spread_params(draw: st.DrawFn) -> SpreadParams:
    entry = draw(pct)
    gaps = draw(st.lists(pct, max_size=5))
    levels = list(itertools.accumulate(gaps, initial=entry))[1:]
    mults = st.decimals(min_value=D("0.1"), max_value=D("4"), places=1)
    adds = [SpreadAdd(spread_pct=lv, multiplier=draw(mults)) for lv in levels]
    if draw(st.booleans()):
        exit_pct = draw(st.decimals(min_value=D(0), max_value=entry - D("0.01"), places=2))
        tp = SpreadTakeProfit(mode="reversion", exit_spread_pct=exit_pct)
    else:
        profit = draw(st.decimals(min_value=D("0.01"), max_value=D("0.5"), places=2))
        tp = SpreadTakeProfit(mode="position", profit_pct=profit)
    return SpreadParams(
        symbol_a=BTC.symbol,
        symbol_b=ETH.symbol,
        leg_quote=draw(st.decimals(min_value=D(10), max_value=D(5000), places=2)),
        entry_spread_pct=entry,
        adds=adds,
        take_profit=tp,
        stop_loss_pct=draw(st.one_of(st.just(ZERO), pct)),
    )


# one step: which symbol trades, and its move in basis points (at most 0.4 %, inside the slack)
steps = st.lists(st.tuples(st.booleans(), st.integers(-40, 40)), min_size=20, max_size=200)


def walk(moves: list[tuple[bool, int]]) -> list[TradeTick]:
    prices = {BTC.symbol: D(60000), ETH.symbol: D(3000)}
    out = []
    for ts, (is_a, bps) in enumerate(moves, start=1):
        symbol = BTC.symbol if is_a else ETH.symbol
        prices[symbol] = floor_to(prices[symbol] * (1 + D(bps) / 10_000), D("0.01"))
        out.append(trade(prices[symbol], ts, symbol=symbol))
    return out


def run(params: SpreadParams, ticks: list[TradeTick], reject_every: int = 0) -> FillLoop:
    counter = itertools.count(1)

    def reject(p: PlaceOrder) -> bool:
        return bool(reject_every) and next(counter) % reject_every == 0

    loop = FillLoop(SpreadBot(CTX, params), reject)
    for tick in ticks:
        loop.feed(tick)
        check_invariants(loop.bot, loop)
    return loop


# --------------------------------------------------------------------------- properties
@given(params=spread_params(), moves=steps, reject_every=st.sampled_from([0, 0, 0, 5, 11]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_exposure_stays_in_budget_and_legs_stay_opposite(
    params: SpreadParams, moves: list[tuple[bool, int]], reject_every: int
) -> None:
    run(params, walk(moves), reject_every)


@given(params=spread_params(), moves=steps, cut=st.integers(0, 150))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_same_inputs_same_intents_also_after_restore(
    params: SpreadParams, moves: list[tuple[bool, int]], cut: int
) -> None:
    ticks = walk(moves)
    first, second = run(params, ticks), run(params, ticks)
    assert first.intents == second.intents
    # a copy restored from a snapshot part-way gives the same intents from there on
    loop = FillLoop(SpreadBot(CTX, params))
    for tick in ticks[:cut]:
        loop.feed(tick)
    copy = SpreadBot(CTX, params)
    copy.restore(loop.bot.snapshot())
    twin = FillLoop(copy)
    twin.live, twin.intents = list(loop.live), list(loop.intents)
    for tick in ticks[cut:]:
        loop.feed(tick)
        twin.feed(tick)
    assert twin.intents == loop.intents
    assert twin.bot.status() == loop.bot.status()


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def btc_eth_ticks(data_dir: Path) -> list[TradeTick | QuoteTick]:
    """Both recorded windows of BTCUSDT and ETHUSDT, merged by receive time (~11 minutes)."""
    windows = (merge_files([data_dir / BTC_RAW[w], data_dir / ETH_RAW[w]]) for w in range(2))
    return parse_ticks(
        itertools.chain.from_iterable(windows), MarketCatalog({"binance": [BTC, ETH]})
    )


REVERSION = SpreadParams(
    symbol_a=BTC.symbol,
    symbol_b=ETH.symbol,
    leg_quote=D(1000),
    entry_spread_pct=D("0.03"),
    adds=[
        SpreadAdd(spread_pct=D("0.06"), multiplier=D(1)),
        SpreadAdd(spread_pct=D("0.1"), multiplier=D(2)),
    ],
    take_profit=SpreadTakeProfit(mode="reversion", exit_spread_pct=D("0.015")),
    stop_loss_pct=D("0.5"),
)
POSITION = msgspec.structs.replace(
    REVERSION,
    adds=REVERSION.adds[:1],
    take_profit=SpreadTakeProfit(mode="position", profit_pct=D("0.02")),
    stop_loss_pct=D("0.05"),
)


@pytest.mark.parametrize(
    ("params", "min_rounds", "adds"), [(REVERSION, 3, True), (POSITION, 20, False)]
)
def test_spread_on_real_btc_eth_data_opens_and_closes_rounds(
    btc_eth_ticks: list, params: SpreadParams, min_rounds: int, adds: bool
) -> None:
    loop = FillLoop(SpreadBot(CTX, params))
    flat_checks, seen = 0, (0, 0)
    for i, tick in enumerate(btc_eth_ticks):
        loop.feed(tick)
        s = loop.bot.state
        now = (len(loop.fills), len(loop.intents))
        if now == seen and i % 100:
            continue  # nothing happened: check every 100th tick only
        seen = now
        check_invariants(loop.bot, loop)
        if s.pos_a.qty == 0 and s.pos_b.qty == 0 and loop.fills:
            # between rounds every fill belongs to a closed round: realized is their cash
            assert loop.bot.status().realized_pnl == loop.cash_flow()
            flat_checks += 1
    bot, status = loop.bot, loop.bot.status()
    places = [i for i in loop.intents if isinstance(i, PlaceOrder)]
    assert len({p.intent_id for p in places}) == len(places)  # ids never reused
    assert (status.orders_placed, status.orders_filled) == (len(places), len(loop.fills))
    assert status.cycles_completed >= min_rounds, status
    assert flat_checks >= status.cycles_completed
    assert any(p.intent_id.endswith(":a1") for p in places) == adds  # an add happened
    closes = {p.intent_id.rsplit(":", 1)[0] for p in places if p.intent_id.endswith(":ac1")}
    assert len(closes) >= status.cycles_completed  # every completed round closed its legs
    assert status.error is None and status.phase in ("watching", "open", "closing")
    check_invariants(bot, loop)
    details = msgspec.json.decode(msgspec.json.encode(status.details))
    assert details["ref_a"] is not None and D(details["spread_pct"]).is_finite()

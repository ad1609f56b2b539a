"""Invariants of the ladder (Hypothesis), alone and trading real recorded data on the paper venue.

* a cycle never commits more quote than ``total_quote``; every level is on
  the market's increments, below the reference price, above the minimum;
* the same inputs give the same intents;
* on spot, a bot's position never goes negative and always equals what the
  paper venue holds for it; the venue's balances never go negative;
* a bot that hears of its fills late (as over a bus) still never has more
  capital at the venue (open buys plus the cost of what it holds) than its
  ``total_quote``.
"""

from __future__ import annotations

import itertools
import random
from decimal import Decimal as D

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.markets import BTCUSDT_MIN as BTC
from tests.support.markets import bot_context
from tests.support.sim import Sim, committed_at_venue, paper_exchange
from tests.support.ticks import trade
from tradebus.common.ids import AccountId
from tradebus.common.messages import AssetBalance, PlaceOrder, QuoteTick, TradeTick
from tradebus.strategies.core import BotContext
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderError, LadderParams, plan_levels

money = st.decimals(min_value=D("0.01"), max_value=D("1000000"), places=2)
pct = st.decimals(min_value=D("0.01"), max_value=D("50"), places=2)
ladder_params = st.builds(
    LadderParams,
    total_quote=money,
    order_count=st.integers(1, 30),
    max_drop_pct=pct,
    increment_pct=st.one_of(st.just(D(0)), pct),
    take_profit_pct=pct,
    min_order_quote=st.decimals(min_value=D(0), max_value=D(50), places=2),
    stop_loss_pct=st.one_of(st.just(D(0)), pct),
    restart_after_stop_loss=st.booleans(),
    trailing_take_profit_pct=st.one_of(st.just(D(0)), pct),
)


@given(p0=st.decimals(min_value=D("0.5"), max_value=D("200000"), places=2), params=ladder_params)
@settings(max_examples=300, deadline=None)
def test_levels_never_commit_more_than_total_quote(p0: D, params: LadderParams) -> None:
    try:
        levels = plan_levels(p0, params, BTC)
    except LadderError:
        return
    assert sum(lv.price * lv.qty for lv in levels) <= params.total_quote
    for lv in levels:
        assert 0 < lv.price < p0
        assert lv.price % BTC.tick_size == 0 and lv.qty % BTC.step_size == 0
        assert lv.price * lv.qty >= params.min_order_quote
    prices = [lv.price for lv in levels]
    assert prices == sorted(prices, reverse=True)


def _ctx(bot: str = "b") -> BotContext:
    return bot_context(bot, "u", "acct", "ladder", BTC)


def _trades(prices: list[D]) -> list[TradeTick]:
    return [trade(p, i * 10**9) for i, p in enumerate(prices, start=1)]


walk = st.lists(
    st.decimals(min_value=D("-300"), max_value=D("300"), places=2), min_size=1, max_size=120
)


def _prices(steps: list[D]) -> list[D]:
    return [max(D(100), D(60000) + s) for s in itertools.accumulate(steps)]


@given(steps=walk, params=ladder_params)
@settings(max_examples=100, deadline=None)
def test_same_inputs_same_intents(steps: list[D], params: LadderParams) -> None:
    ticks = _trades(_prices(steps))
    a, b = LadderBot(_ctx(), params), LadderBot(_ctx(), params)
    assert [a.on_trade(t) for t in ticks] == [b.on_trade(t) for t in ticks]


def _run(ticks: list[TradeTick | QuoteTick], params: LadderParams, usdt: str) -> Sim:
    exchange = paper_exchange([BTC], {"USDT": D(usdt)}, "acct")
    bot = LadderBot(_ctx(), params)
    sim = Sim(exchange, [bot])
    for tick in ticks:
        sim.on_event(tick)
        held = {b.asset: b for b in exchange.balances(AccountId("acct"))}
        assert bot.status().position >= 0
        assert bot.status().position == held.get("BTC", _zero()).total
        assert all(b.total >= 0 and b.free >= 0 for b in held.values())
        committed = sum(
            o.price * o.qty
            for o in exchange.open_orders(AccountId("acct"))
            if o.side == "buy" and o.price
        )
        assert committed <= params.total_quote
    return sim


def _zero() -> AssetBalance:
    return AssetBalance(asset="BTC", total=D(0), free=D(0), locked=D(0))


@given(steps=walk, params=ladder_params)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_spot_position_never_negative_and_matches_the_venue(
    steps: list[D], params: LadderParams
) -> None:
    _run(_trades(_prices(steps)), params, usdt="10000000")  # type: ignore[arg-type]


def test_ladder_on_real_btc_data_trades_and_stays_consistent(btc_ticks: list) -> None:
    params = LadderParams(
        total_quote=D(2000),
        order_count=6,
        max_drop_pct=D("0.2"),
        increment_pct=D(20),
        take_profit_pct=D("0.05"),
        no_fill_restart_minutes=D(1),
    )
    sim = _run(btc_ticks, params, usdt="5000")
    bot = next(iter(sim.bots.values()))
    status = bot.status()
    places = [i for i in sim.intents if isinstance(i, PlaceOrder)]
    assert len(places) > 10 and len(sim.fills) > 0
    assert len({p.intent_id for p in places}) == len(places)  # ids never reused
    assert status.orders_placed == len(places)
    sim.stop()
    assert sim.exchange.open_orders(AccountId("acct")) == []


@given(
    steps=st.lists(
        st.decimals(min_value=D("-80"), max_value=D("80"), places=2), min_size=50, max_size=400
    ),
    params=ladder_params,
    lag=st.integers(0, 150),
    rnd=st.randoms(use_true_random=False),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_bot_that_hears_late_never_commits_more_than_its_budget(
    steps: list[D],
    params: LadderParams,
    lag: int,
    rnd: random.Random,
) -> None:
    params = msgspec.structs.replace(params, no_fill_restart_minutes=D(1))  # restarts happen
    exchange = paper_exchange([BTC], {"USDT": D(10**9)}, "acct")
    sim = Sim(exchange, [LadderBot(_ctx(), params)], lag=lambda: rnd.randint(0, lag))
    for tick in _trades(_prices(steps)):
        sim.on_event(tick)
        assert committed_at_venue(sim, "acct") <= params.total_quote


def test_a_lagging_bot_on_real_btc_data_stays_within_budget(btc_ticks: list) -> None:
    params = LadderParams(
        total_quote=D(2000),
        order_count=8,
        max_drop_pct=D("0.1"),
        take_profit_pct=D("0.03"),
        no_fill_restart_minutes=D(1),
    )
    exchange = paper_exchange([BTC], {"USDT": D(10**9)}, "acct")
    sim = Sim(exchange, [LadderBot(_ctx(), params)], lag=lambda: 2_000)
    for tick in btc_ticks:
        sim.on_event(tick)
        assert committed_at_venue(sim, "acct") <= params.total_quote
    assert sim.fills

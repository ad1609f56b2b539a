"""Invariants of the volume strategy (Hypothesis), on the paper venue and on recorded data.

* a bot never has more quote at the venue (its open buy plus the cost of the
  base it still holds) than ``single_trade_quote * max_open_sells`` (within
  the ``single_trade_quote * (max_open_sells + 1)`` of STRATEGIES.md §4's
  sells plus one buy), even when it hears of its orders late (as over a bus);
* on spot, a bot's position never goes negative and always equals what the
  paper venue holds for it; the venue's balances never go negative;
* the same inputs give the same intents;
* bots of one group told the group's volume after every event stop buying
  once it reaches the target, and overshoot it by less than one buy per bot.
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
from tests.support.sim import Sim, paper_exchange
from tests.support.ticks import quote, trade
from tradebus.common.ids import AccountId, cycle_of
from tradebus.common.messages import PlaceOrder, QuoteTick, TradeTick
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.strategies.core import BotContext
from tradebus.strategies.volume.bot import VolumeBot
from tradebus.strategies.volume.params import VolumeParams

SEC = 1_000_000_000


@st.composite
def volume_params(draw: st.DrawFn, single: D | None = None) -> VolumeParams:
    """Parameters whose target takes 1 to 12 buys of ``single_trade_quote``."""
    one = single or draw(st.decimals(min_value=D(10), max_value=D(5000), places=2))
    return VolumeParams(
        single_trade_quote=one,
        trade_interval_seconds=draw(st.sampled_from([D("0.5"), D(1), D("2.5"), D(10)])),
        buy_offset_pct=draw(st.decimals(min_value=D(0), max_value=D(1), places=2)),
        sell_profit_pct=draw(st.decimals(min_value=D("0.01"), max_value=D("0.5"), places=2)),
        target_volume=one * draw(st.integers(1, 12)),
        max_open_sells=draw(st.integers(1, 10)),
        min_order_quote=draw(st.decimals(min_value=D(0), max_value=D(10), places=2)),
    )


walk = st.lists(
    st.decimals(min_value=D("-150"), max_value=D("150"), places=2), min_size=10, max_size=300
)


def _ctx(bot: str = "b", user: str = "u") -> BotContext:
    return bot_context(bot, user, f"acct-{bot}", "volume", BTC, group="g")


def _ticks(steps: list[D]) -> list[TradeTick | QuoteTick]:
    """A price walk around 60000, one trade a second, a quote between two trades."""
    prices = [max(D(100), D(60000) + s) for s in itertools.accumulate(steps)]
    out: list[TradeTick | QuoteTick] = []
    for i, p in enumerate(prices, start=1):
        out.append(trade(p, i * SEC))
        out.append(quote(p - 1, p + 1, i * SEC + SEC // 2))
    return out


def _exchange(*accounts: str) -> PaperExchange:
    return paper_exchange([BTC], {"USDT": D(10**9)}, *accounts)


def _committed_at_venue(sim: Sim, account: str) -> D:
    """The account's open buy notional plus the cost of the base it holds, loop by loop.

    Each loop (intent ids ``<bot>:<run>.<cycle>:<leg>``) holds its bought cost
    times the share of its bought quantity not yet sold, as the venue filled it.
    """
    bought: dict[str, tuple[D, D]] = {}
    sold: dict[str, D] = {}
    for fill in sim.fills:
        if fill.account != account:
            continue
        loop = fill.intent_id.rsplit(":", 1)[0]
        if fill.side == "buy":
            qty, cost = bought.get(loop, (D(0), D(0)))
            bought[loop] = (qty + fill.qty, cost + fill.qty * fill.price)
        else:
            sold[loop] = sold.get(loop, D(0)) + fill.qty
    held = sum((cost * (qty - sold.get(k, D(0))) / qty for k, (qty, cost) in bought.items()), D(0))
    open_buys = sum(
        (
            o.price * o.qty
            for o in sim.exchange.open_orders(AccountId(account))
            if o.side == "buy" and o.price
        ),
        D(0),
    )
    return open_buys + held


def _budget(params: VolumeParams) -> D:
    """``single_trade_quote * max_open_sells``: a buy is placed only while fewer than
    ``max_open_sells`` loops hold base, so this is tighter than the
    ``single_trade_quote * (max_open_sells + 1)`` of held sells plus one buy."""
    return params.single_trade_quote * params.max_open_sells


@given(steps=walk, params=volume_params())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_position_matches_the_venue_and_capital_stays_bounded(
    steps: list[D], params: VolumeParams
) -> None:
    bot = VolumeBot(_ctx(), params)
    sim = Sim(_exchange("acct-b"), [bot])
    for tick in _ticks(steps):
        sim.on_event(tick)
        held = {b.asset: b for b in sim.exchange.balances(AccountId("acct-b"))}
        btc = held["BTC"].total if "BTC" in held else D(0)
        assert bot.status().position >= 0
        assert bot.status().position == btc
        assert all(b.total >= 0 and b.free >= 0 for b in held.values())
        assert _committed_at_venue(sim, "acct-b") <= _budget(params)
    status = bot.status()
    assert status.filled_quote == sum((f.qty * f.price for f in sim.fills if f.side == "buy"), D(0))
    if status.filled_quote >= params.target_volume:
        assert status.phase == "target_reached"
    sim.stop()
    assert sim.exchange.open_orders(AccountId("acct-b")) == []


@given(
    steps=st.lists(
        st.decimals(min_value=D("-80"), max_value=D("80"), places=2), min_size=20, max_size=200
    ),
    params=volume_params(),
    lag=st.integers(0, 40),
    rnd=st.randoms(use_true_random=False),
)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_bot_that_hears_late_never_commits_more_than_its_budget(
    steps: list[D],
    params: VolumeParams,
    lag: int,
    rnd: random.Random,
) -> None:
    bot = VolumeBot(_ctx(), params)
    sim = Sim(_exchange("acct-b"), [bot], lag=lambda: rnd.randint(0, lag))
    for tick in _ticks(steps):
        sim.on_event(tick)
        assert _committed_at_venue(sim, "acct-b") <= _budget(params)
    sim.stop()
    held = {b.asset: b.total for b in sim.exchange.balances(AccountId("acct-b"))}
    assert bot.status().position == held.get("BTC", D(0)) >= 0  # once it has heard everything


def _run_group(
    ticks: list[TradeTick | QuoteTick], params: list[VolumeParams], report_every: int = 1
) -> tuple[Sim, list[VolumeBot], int | None]:
    """Bots of one group; after every ``report_every`` events a host tells each the totals.

    Returns the sim, the bots and the number of intents published when the
    bots were first told that the target is reached (None if never).
    """
    bots = [VolumeBot(_ctx(f"b{i}", f"u{i}"), p) for i, p in enumerate(params)]
    sim = Sim(_exchange(*(b.ctx.account for b in bots)), list(bots))
    reached_at = None
    for n, tick in enumerate(ticks, start=1):
        sim.on_event(tick)
        if n % report_every:
            continue
        by_user: dict[str, D] = {b.ctx.user: b.own_volume() for b in bots}
        total = sum(by_user.values(), D(0))
        for b in bots:
            sim._execute(b, b.on_group_volume(total, by_user))  # the host publishes these
        if reached_at is None and total >= params[0].target_volume:
            reached_at = len(sim.intents)
    return sim, bots, reached_at


@given(steps=walk, params=volume_params(), report_every=st.integers(1, 5))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_same_inputs_same_intents(steps: list[D], params: VolumeParams, report_every: int) -> None:
    ticks = _ticks(steps)
    a, _, _ = _run_group(ticks, [params, params], report_every)
    b, _, _ = _run_group(ticks, [params, params], report_every)
    assert a.intents == b.intents
    assert a.fills == b.fills


@given(
    steps=walk,
    params=volume_params(single=D(100)),
    quotes=st.lists(
        st.decimals(min_value=D(10), max_value=D(500), places=2), min_size=3, max_size=3
    ),
    loops=st.integers(1, 20),
)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_group_stops_at_its_target_with_less_than_one_buy_per_bot_over(
    steps: list[D], params: VolumeParams, quotes: list[D], loops: int
) -> None:
    target = sum(quotes) * loops  # every bot's share: `loops` buys
    group = [
        msgspec.structs.replace(params, single_trade_quote=q, target_volume=target) for q in quotes
    ]
    sim, bots, reached_at = _run_group(_ticks(steps), group)
    total = sum(b.own_volume() for b in bots)
    assert total < target + sum(quotes)  # one buy per bot at most after the crossing event
    if reached_at is not None:
        later = [i for i in sim.intents[reached_at:] if isinstance(i, PlaceOrder)]
        assert all(i.side == "sell" for i in later)
        assert all(b.status().phase == "target_reached" for b in bots)
        assert {b.status().details["group_volume"] for b in bots} == {str(total)}


# ------------------------------------------------------------ recorded data
def test_a_group_on_real_btc_data_trades_to_its_target(btc_ticks: list) -> None:
    def p(quote: int) -> VolumeParams:
        return VolumeParams(
            single_trade_quote=D(quote),
            trade_interval_seconds=D(1),
            buy_offset_pct=D("0.01"),
            sell_profit_pct=D("0.01"),
            target_volume=D(800),
            max_open_sells=5,
        )

    sim, bots, reached_at = _run_group(btc_ticks, [p(50), p(30), p(20)], report_every=10)
    total = sum(b.own_volume() for b in bots)
    assert reached_at is not None and D(800) <= total < D(800) + 2 * 100
    assert all(b.status().phase == "target_reached" for b in bots)
    assert all(b.status().cycles_completed > 0 for b in bots)
    for b in bots:
        assert _committed_at_venue(sim, b.ctx.account) <= _budget(b.params)
    places = [i for i in sim.intents if isinstance(i, PlaceOrder)]
    assert len({i.intent_id for i in places}) == len(places)  # ids never reused
    sim.stop()
    for b in bots:
        assert sim.exchange.open_orders(b.ctx.account) == []


@given(steps=walk, params=volume_params())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_realized_pnl_is_the_sum_of_the_closed_loops(steps: list[D], params: VolumeParams) -> None:
    """STRATEGIES.md §4, rule 6: the bot's realized P&L is, exactly, the sum over its
    closed loops of that loop's sell proceeds - buy cost - both fees (from the venue's
    fills, grouped by the loop of their intent ids)."""
    bot = VolumeBot(_ctx(), params)
    sim = Sim(_exchange("acct-b"), [bot])
    for tick in _ticks(steps):
        sim.on_event(tick)
    loops: dict[str, dict[str, D]] = {}
    for f in sim.fills:
        loop = loops.setdefault(cycle_of(f.intent_id), {"buy": D(0), "sell": D(0), "fees": D(0)})
        loop[f.side] += f.qty * f.price
        loop["fees"] += f.fee
        loop[f"{f.side}_qty"] = loop.get(f"{f.side}_qty", D(0)) + f.qty
    closed = [v for v in loops.values() if v.get("sell_qty") == v.get("buy_qty")]
    assert bot.status().realized_pnl == sum(
        (v["sell"] - v["buy"] - v["fees"] for v in closed), D(0)
    )
    assert bot.status().cycles_completed == len(closed)


@given(steps=walk, params=volume_params(), limit=st.integers(1, 3))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_more_than_max_concurrent_users_ever_buy_at_once(
    steps: list[D], params: VolumeParams, limit: int
) -> None:
    """Four users, ``max_concurrent_users`` 1 to 3, a host reporting every bot's turn after
    every event: at no time do more than ``limit`` users hold a turn, and only holders
    place buys; the first turns go by name."""
    params = msgspec.structs.replace(params, max_concurrent_users=limit, target_volume=D(10**9))
    bots = [VolumeBot(_ctx(f"b{i}", f"u{i}"), params) for i in (3, 1, 0, 2)]
    sim = Sim(_exchange(*(b.ctx.account for b in bots)), list(bots))
    buyers: set[str] = set()
    for tick in _ticks(steps):
        before = len(sim.intents)
        sim.on_event(tick)
        buyers |= {
            i.account.removeprefix("acct-b")
            for i in sim.intents[before:]
            if isinstance(i, PlaceOrder) and i.side == "buy"
        }
        view: dict[str, bool] = {b.ctx.user: t for b in bots if (t := b.group_turn()) is not None}
        for b in bots:
            sim._execute(b, b.on_group_volume(D(0), {}, view))  # the host publishes these
        holders = {b.ctx.user for b in bots if b.group_turn()}
        assert holders == {f"u{i}" for i in range(limit)}  # from the first report on, by name
    assert buyers <= {str(i) for i in range(limit)}  # the others never buy

"""A ladder exits exactly when docs/strategies.md's rules say, on random prices (Hypothesis).

A ladder with a drawn stop-loss and trailing take-profit trades a random walk
on the paper venue (tests.support.sim: fills first, then the bot sees the
trade). Beside it runs a model of the rules, fed only what the rules name
(the trade price, the average price and position the bot holds when it sees
the trade, its buy fills, its cycle): on every trade seen while ``buying``
or ``restarting`` with a position,

1. stop-loss: ``S > 0`` and ``p <= avg * (1 - S/100)`` sells;
2. take-profit ``(p - avg) / avg * 100 >= T``: sells at once when ``Tr = 0``;
   with ``Tr > 0`` arms ``peak = p``; armed: ``p > peak`` raises it,
   ``p <= peak * (1 - Tr/100)`` sells; a buy fill or a new cycle disarms.

The bot must place an exit sell on exactly the trades the model says, for
the reason it says.
"""

from __future__ import annotations

import itertools
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.markets import BTCUSDT_MIN as BTC
from tests.support.markets import bot_context
from tests.support.sim import Sim, paper_exchange
from tests.support.ticks import trade
from tradebus.common.messages import Intent, PlaceOrder, TradeTick
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderParams

HUNDRED = D(100)


class Probe(LadderBot):
    """A ladder that notes what it holds when it sees a trade (after that event's fills)."""

    seen: tuple[str, D, D | None, int] = ("waiting", D(0), None, 0)

    def on_trade(self, tick: TradeTick) -> list[Intent]:
        s = self.state
        self.seen = (s.phase, s.position.qty, s.position.avg_price, s.cycle)
        return super().on_trade(tick)


def pct(high: str) -> st.SearchStrategy[D]:
    return st.decimals(min_value=D("0.05"), max_value=D(high), places=2)


exit_params = st.builds(
    LadderParams,
    total_quote=st.sampled_from([D(1000), D(5000)]),
    order_count=st.integers(1, 6),
    max_drop_pct=st.sampled_from([D("0.3"), D(1), D(3)]),
    take_profit_pct=pct("1"),
    min_order_quote=st.just(D(5)),
    no_fill_restart_minutes=st.sampled_from([D(0), D(1)]),
    stop_loss_pct=st.one_of(st.just(D(0)), pct("3")),
    restart_after_stop_loss=st.just(True),
    trailing_take_profit_pct=st.one_of(st.just(D(0)), pct("5")),
)


@given(
    steps=st.lists(st.integers(-400, 400), min_size=50, max_size=300),
    params=exit_params,
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_ladder_exits_exactly_where_the_rules_say(
    steps: list[int], params: LadderParams
) -> None:
    bot = Probe(bot_context("b", "u", "acct", "ladder", BTC), params)
    sim = Sim(paper_exchange([BTC], {"USDT": D(10**9)}, "acct"), [bot])
    s, t, tr = params.stop_loss_pct, params.take_profit_pct, params.trailing_take_profit_pct
    peak: D | None = None
    peak_cycle = 0
    prices = (max(D(1000), D(60000) + x) for x in itertools.accumulate(steps))
    for i, p in enumerate(prices, start=1):
        fills, intents = len(sim.fills), len(sim.intents)
        sim.on_event(trade(p, i * 10**9))
        phase, qty, avg, cycle = bot.seen
        if cycle != peak_cycle or any(f.side == "buy" for f in sim.fills[fills:]):
            peak, peak_cycle = None, cycle  # a new cycle, or a buy moved the average
        sold = [x for x in sim.intents[intents:] if isinstance(x, PlaceOrder) and x.side == "sell"]
        if phase not in ("buying", "restarting") or qty <= 0 or avg is None:
            assert not sold
            continue
        expected = None
        if s and p <= avg * (1 - s / HUNDRED):
            expected = "stop_loss"
        elif peak is None and (p - avg) / avg * HUNDRED >= t:
            if tr:
                peak = p
            else:
                expected = "take_profit"
        elif peak is not None and p > peak:
            peak = p
        elif peak is not None and p <= peak * (1 - tr / HUNDRED):
            expected = "take_profit"
        assert bool(sold) == (expected is not None), (i, p, avg, peak)
        if expected is not None:
            assert bot.state.exit == expected
            assert bot.state.phase == "closing"
            peak = None
    sim.stop()

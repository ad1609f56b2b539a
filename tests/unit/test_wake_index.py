"""The host's wake index skips ticks exactly: same intents, states and statuses as without it.

Two :class:`~tradebus.strategy.host.Dispatcher` s get the same ticks, order
events, pauses and status reads. In one, ladder bots are parked under their
:meth:`~tradebus.strategy.ladder.LadderBot.wake` (skipping the ticks it says
cannot make them act); in the other every core is wrapped to answer None
(every tick, the host's behaviour before the index). Each is wired to its
own paper venue (answers at once, fills on trades), so any difference in one
bot's intents would change fills, events and everything after. Both must
publish the same intents in the same order, and leave the same snapshots.
"""

from __future__ import annotations

import itertools
from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from tests.support.markets import BTCUSDT_MIN as BTC
from tests.support.markets import bot_context
from tests.support.sim import Sim, paper_exchange
from tests.support.sinks import Capture
from tests.support.ticks import quote, trade
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.strategies.core import Wake
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderParams
from tradebus.strategies.registry import BotSpec
from tradebus.strategy.host import BotRunner, Dispatcher
from tradebus.strategy.host_metrics import HostMetrics

S = 1_000_000_000


class EveryTick(LadderBot):
    """A ladder core seen by a host that cannot skip ticks: ``wake()`` is always None."""

    def wake(self) -> Wake | None:
        return None


class Host:
    """A dispatcher, its paper venue, and the bus between them.

    The venue acts on an intent at once; its order events reach the bots at
    once, or, with ``lag``, only at the next :meth:`deliver` (as over a busy bus).
    """

    def __init__(self, params: list[LadderParams], indexed: bool) -> None:
        accounts = [f"a{i}" for i in range(len(params))]
        kind = LadderBot if indexed else EveryTick
        cores = [
            kind(bot_context(f"b{i}", f"u{i}", f"a{i}", "ladder", BTC), p)
            for i, p in enumerate(params)
        ]
        balances = {"USDT": D(10**9), "BTC": D(0)}
        self.venue = Sim(paper_exchange([BTC], balances, *accounts), list(cores))
        self.cores: dict[str, LadderBot] = {c.ctx.bot: c for c in cores}
        self.sink = Capture()
        self.dispatcher = Dispatcher(self.sink, HostMetrics(CollectorRegistry()))
        self._seq = itertools.count(1)
        self._done = 0
        self.lag = False
        self._held: list[tuple[str, Any]] = []
        for core in cores:
            spec = BotSpec(id=core.ctx.bot, user=core.ctx.user, account=core.ctx.account,
                           strategy="ladder", venue="binance", symbol="BTCUSDT")  # fmt: skip
            self.dispatcher.add(BotRunner(core, spec))

    def _event(self, bot: str, event: Any) -> None:
        if self.lag:
            self._held.append((bot, event))
        else:
            self.dispatcher.on_order_event(self.cores[bot].ctx.user, bot, next(self._seq), event)

    def deliver(self, count: int | None = None) -> None:
        """Hand the bots the first ``count`` order events held back (default all)."""
        count = len(self._held) if count is None else count
        held, self._held = self._held[:count], self._held[count:]
        for bot, event in held:
            self.dispatcher.on_order_event(self.cores[bot].ctx.user, bot, next(self._seq), event)
        self._drain()

    def _drain(self) -> None:
        """Answer every intent published so far (and those the answers cause)."""
        while self._done < len(self.sink.intents):
            subject, intent = self.sink.intents[self._done]
            self._done += 1
            bot = subject.rsplit(".", 1)[1]
            for event in self.venue.desk.execute(self.cores[bot].ctx.user, bot, intent):
                self._event(bot, event)

    def tick(self, tick: TradeTick | QuoteTick) -> None:
        """Fills at the venue first (paper fill model), then the tick to the bots."""
        self.venue.clock.now = tick.ts_recv
        if isinstance(tick, TradeTick):
            for event in self.venue.desk.on_trade(tick):
                self._event(event.source, event)  # type: ignore[attr-defined]
        else:
            self.venue.desk.on_quote(tick)
        self._drain()
        self.dispatcher.on_tick(tick)
        self._drain()

    def pause(self, bot: str) -> None:
        self.dispatcher.pause(self.dispatcher.runners[bot])

    def resume(self, bot: str) -> None:
        self.dispatcher.resume(self.dispatcher.runners[bot])
        self._drain()

    def snapshots(self) -> dict[str, bytes]:
        """Every bot's state as of the last tick (read through the host, which catches up)."""
        statuses = self.dispatcher.statuses()
        assert len(statuses) == len(self.cores)
        return {bot: core.snapshot() for bot, core in self.cores.items()}


ladder_params = st.builds(
    LadderParams,
    total_quote=st.sampled_from([D(100), D(1000), D(5000)]),
    order_count=st.integers(1, 8),
    max_drop_pct=st.sampled_from([D("0.5"), D(2), D(6)]),
    increment_pct=st.sampled_from([D(0), D(10)]),
    take_profit_pct=st.sampled_from([D("0.05"), D("0.3"), D(1)]),
    min_order_quote=st.just(D(5)),
    no_fill_restart_minutes=st.sampled_from([D(0), D(1), D("2.5")]),
    restart_after_take_profit=st.booleans(),
    stop_loss_pct=st.sampled_from([D(0), D(0), D("0.05"), D("0.3")]),
    restart_after_stop_loss=st.booleans(),
    trailing_take_profit_pct=st.sampled_from([D(0), D(0), D("0.02"), D("0.1")]),
)
step = st.tuples(
    st.sampled_from(["trade", "trade", "trade", "quote", "pause", "resume", "status", "events"]),
    st.integers(-60, 60),  # price move, in dollars
    st.integers(0, 40),  # seconds since the last event
    st.integers(0, 5),  # which bot (pause, resume)
)


@given(
    params=st.lists(ladder_params, min_size=1, max_size=6),
    steps=st.lists(step, max_size=300),
    lag=st.booleans(),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parked_bots_act_exactly_as_bots_that_see_every_tick(
    params: list[LadderParams], steps: list[tuple[str, int, int, int]], lag: bool
) -> None:
    hosts = [Host(params, indexed=True), Host(params, indexed=False)]
    for host in hosts:
        host.lag = lag
    price, ts = D(60000), 1_700_000_000 * S
    for kind, move, seconds, who in steps:
        ts += seconds * S
        bot = f"b{who % len(params)}"
        for host in hosts:
            if kind == "trade":
                host.tick(trade(price + move, ts))
            elif kind == "quote":
                host.tick(quote(price + move - 1, price + move + 1, ts))
            elif kind == "pause":
                host.pause(bot)
            elif kind == "resume":
                host.resume(bot)
            elif kind == "events":
                host.deliver(1 + who)
        if kind == "trade":
            price += move
        if kind == "status":
            assert hosts[0].snapshots() == hosts[1].snapshots()
    for host in hosts:
        host.lag = False
        host.deliver()
    indexed, every = hosts
    assert [i for _, i in indexed.sink.intents] == [i for _, i in every.sink.intents]
    assert indexed.snapshots() == every.snapshots()
    assert indexed.sink.states.keys() == every.sink.states.keys()


def test_recorded_btcusdt_through_200_bots_gives_the_same_intents_with_and_without_the_index(
    btc_ticks: list[TradeTick | QuoteTick],
) -> None:
    """15,000 recorded BTCUSDT ticks, 200 ladder bots of varied parameters."""
    params = [
        LadderParams(
            total_quote=D(500 + 50 * (i % 7)),
            order_count=1 + i % 9,
            max_drop_pct=D("0.05") * (1 + i % 5),
            take_profit_pct=D("0.01") * (1 + i % 4),
            no_fill_restart_minutes=D(i % 3),
            stop_loss_pct=D("0.02") * (i % 4),  # 0, 0.02, 0.04, 0.06 %
            restart_after_stop_loss=i % 8 < 6,
            trailing_take_profit_pct=D("0.01") * (i % 3),  # 0, 0.01, 0.02 %
        )
        for i in range(200)
    ]
    indexed, every = Host(params, indexed=True), Host(params, indexed=False)
    for tick in btc_ticks:
        indexed.tick(tick)
        every.tick(tick)
    assert len(every.sink.intents) > 1000  # cycles, take-profits and restarts happened
    assert [i for _, i in indexed.sink.intents] == [i for _, i in every.sink.intents]
    assert indexed.snapshots() == every.snapshots()
    parked = sum(r.parked for r in indexed.dispatcher.runners.values())
    assert parked > 100  # most bots skip most ticks
    cores = every.cores.values()
    assert sum(c.state.stop_losses for c in cores) > 10  # stop-losses happened
    sold_trailing = [
        c
        for c in cores
        if c.params.trailing_take_profit_pct and c.state.cycles_completed > c.state.stop_losses
    ]
    assert len(sold_trailing) > 10  # and trailing take-profits


def test_a_restarting_bot_that_hears_of_a_late_fill_takes_profit_on_the_next_trade() -> None:
    """The ``restarting`` phase with a position (a buy filled before its cancel): still woken."""
    params = [
        LadderParams(
            total_quote=D(1000),
            order_count=2,
            max_drop_pct=D(2),
            take_profit_pct=D("0.3"),
            no_fill_restart_minutes=D(1),
        )
    ]
    hosts = [Host(params, indexed=True), Host(params, indexed=False)]
    t0 = 1_700_000_000 * S
    for host in hosts:
        host.lag = True
        host.tick(trade("60000", t0))  # a cycle: buys at 59400 and 58800
        host.deliver()
        host.tick(trade("59300", t0 + 10 * S))  # fills the first buy; the bot hears later
        host.tick(quote("59399", "59401", t0 + 70 * S))  # no fill heard for 1 min: cancels
        host.deliver(1)  # the fill arrives; the other buy's cancel is not confirmed yet
        assert host.cores["b0"].state.phase == "restarting"
        host.tick(trade("59700", t0 + 71 * S))  # 0.5 % above the fill: take profit
    indexed, every = hosts
    sells = [i for _, i in every.sink.intents if getattr(i, "side", None) == "sell"]
    assert len(sells) == 1
    assert [i for _, i in indexed.sink.intents] == [i for _, i in every.sink.intents]

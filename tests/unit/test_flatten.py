"""Force exit (``flatten``) of every core, on the paper venue through the execution core.

docs/strategies.md, "Force exit": the bot cancels every open order; once none
is open it closes its position with market orders (legs ``f<n>``: a spot sell
clamped to the free balance, reduce-only on a perpetual); once they are done
and nothing is left to close, the phase is ``stopped``; with nothing to close,
at once. Each test runs the core against :class:`tests.support.sim.Sim` (the
engine on a paper venue), so the cancels, the market orders and their fills
are the ones execution makes.
"""

from __future__ import annotations

from decimal import Decimal as D

import msgspec

from tests.support.markets import SOLUSDC, bot_context, market
from tests.support.sim import Sim, paper_exchange
from tests.support.ticks import trade
from tradebus.common.ids import AccountId
from tradebus.common.messages import CancelOrder, PlaceOrder
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderParams
from tradebus.strategies.martingale.bot import MartingaleBot
from tradebus.strategies.martingale.params import MartingaleParams
from tradebus.strategies.spread.bot import SpreadBot
from tradebus.strategies.spread.params import SpreadParams
from tradebus.strategies.volume.bot import VolumeBot
from tradebus.strategies.volume.params import VolumeParams

SEC = 1_000_000_000
SOL = SOLUSDC.symbol
FUNDS = {"USDC": D(100_000)}


def _sol(exchange: object, account: str) -> D:
    balances = exchange.accounts[AccountId(account)].balances  # type: ignore[attr-defined]
    held = balances.get("SOL")
    return held.total if held is not None else D(0)


def _closes(sim: Sim) -> list[PlaceOrder]:
    return [i for i in sim.intents if isinstance(i, PlaceOrder) and i.intent_id.endswith(":f1")]


def _ladder() -> tuple[Sim, LadderBot]:
    ctx = bot_context("al", "alice", "alice-paper", "ladder", SOLUSDC)
    params = LadderParams(
        total_quote=D(1000), order_count=5, max_drop_pct=D(10), take_profit_pct=D(2)
    )
    bot = LadderBot(ctx, params)
    return Sim(paper_exchange([SOLUSDC], FUNDS, "alice-paper"), [bot]), bot


def test_ladder_flatten_cancels_then_sells_at_market_then_stops() -> None:
    sim, bot = _ladder()
    sim.on_event(trade("100", 1 * SEC, SOL))  # levels 98, 96, 94, 92, 90
    sim.on_event(trade("97.50", 2 * SEC, SOL))  # fills b0: 2.040 at 98
    assert bot.state.position.qty == D("2.040")
    before = len(sim.intents)
    sim.flatten("al")
    out = sim.intents[before:]
    # the four resting buys are cancelled first; the close waits for their answers
    assert [type(i) for i in out] == [CancelOrder] * 4 + [PlaceOrder]
    (close,) = _closes(sim)
    assert (close.side, close.qty, close.order_type, close.price) == (
        "sell",
        D("2.040"),
        "market",
        None,
    )
    assert close.clamp_to_free and close.intent_id == "al:1.1:f1"
    assert bot.state.phase == "flattening"
    assert bot.status().phase == "flattening"
    sim.on_event(trade("99", 3 * SEC, SOL))  # a rising price does not restart anything
    assert bot.state.phase == "stopped"
    assert bot.state.position.qty == 0 and _sol(sim.exchange, "alice-paper") == 0
    assert sim.exchange.open_orders(AccountId("alice-paper")) == []
    # sold at 99 after buying at 98, both fees in quote (maker 1 bps, taker 5 bps)
    assert bot.state.position.realized_pnl == D("2.040") * (99 - 98) - D("2.040") * 98 * D(
        "0.0001"
    ) - D("2.040") * 99 * D("0.0005")
    sim.on_event(trade("80", 4 * SEC, SOL))  # stopped: no new cycle, nothing placed
    assert len(sim.intents) == before + 5


def test_ladder_flatten_without_position_just_stops() -> None:
    sim, bot = _ladder()
    sim.on_event(trade("100", 1 * SEC, SOL))
    sim.flatten("al")
    assert bot.state.phase == "stopped"
    assert _closes(sim) == []
    assert sim.exchange.open_orders(AccountId("alice-paper")) == []


def test_flatten_state_survives_a_snapshot_and_old_snapshots_load() -> None:
    sim, bot = _ladder()
    sim.on_event(trade("100", 1 * SEC, SOL))
    sim.on_event(trade("97.50", 2 * SEC, SOL))
    sim.flatten("al")
    again = LadderBot(bot.ctx, bot.params)
    again.restore(bot.snapshot())
    assert again.state.phase == "flattening" and again.state.flattens == 1
    old = msgspec.json.decode(bot.snapshot())
    del old["flattens"]  # a snapshot from before force exit existed
    again.restore(msgspec.json.encode(old))
    assert again.state.flattens == 0


def test_ladder_restarted_after_flatten_opens_a_new_cycle() -> None:
    sim, bot = _ladder()
    sim.on_event(trade("100", 1 * SEC, SOL))
    sim.on_event(trade("97.50", 2 * SEC, SOL))
    sim.flatten("al")
    sim.on_event(trade("99", 3 * SEC, SOL))
    assert bot.state.phase == "stopped"
    bot.on_restart()
    sim.on_event(trade("99", 4 * SEC, SOL))
    assert bot.state.phase == "buying" and bot.state.cycle == 2


def test_martingale_flatten_cancels_take_profit_and_safeties_then_sells() -> None:
    ctx = bot_context("mg", "bob", "bob-paper", "martingale", SOLUSDC)
    params = MartingaleParams(
        base_quote=D(100),
        safety_quote=D(100),
        max_safety_orders=3,
        price_deviation_pct=D(1),
        take_profit_pct=D(2),
    )
    bot = MartingaleBot(ctx, params)
    sim = Sim(paper_exchange([SOLUSDC], FUNDS, "bob-paper"), [bot])
    sim.poll_balances("mg")
    sim.on_event(trade("100", 1 * SEC, SOL))  # base order at 100.50
    sim.on_event(trade("100", 2 * SEC, SOL))  # fills at 100: safeties rest, take-profit rests
    held = bot.state.position.qty
    assert held > 0 and len(sim.exchange.open_orders(AccountId("bob-paper"))) == 4
    sim.flatten("mg")
    (close,) = _closes(sim)
    assert (close.side, close.qty, close.order_type) == ("sell", held, "market")
    sim.on_event(trade("99", 3 * SEC, SOL))
    assert bot.state.phase == "stopped" and bot.state.position.qty == 0
    assert _sol(sim.exchange, "bob-paper") == 0
    assert sim.exchange.open_orders(AccountId("bob-paper")) == []
    sim.on_event(trade("99", 60 * SEC, SOL))  # no new cycle while stopped
    assert bot.state.cycle == 1
    bot.on_restart()
    assert bot.state.phase == "waiting"


A = market("AAA", "USDT", step="0.001", kind="perpetual")
B = market("BBB", "USDT", step="0.01", kind="perpetual")


def test_spread_flatten_closes_both_legs_reduce_only_and_stops() -> None:
    ctx = bot_context("sp", "carol", "carol-perp", "spread", A, B)
    params = msgspec.convert(
        {
            "symbol_a": A.symbol,
            "symbol_b": B.symbol,
            "leg_quote": "1000",
            "entry_spread_pct": "2",
            "take_profit": {"mode": "reversion", "exit_spread_pct": "0.5"},
        },
        SpreadParams,
        strict=False,
    )
    bot = SpreadBot(ctx, params)
    exchange = paper_exchange([A, B], {"USDT": D(100_000)}, "carol-perp", market_kind="perpetual")
    sim = Sim(exchange, [bot])
    sim.on_event(trade("100", 1 * SEC, A.symbol))
    sim.on_event(trade("50", 2 * SEC, B.symbol))  # references 100 / 50
    sim.on_event(trade("103", 3 * SEC, A.symbol))  # spread 3 >= 2: short A, long B
    sim.on_event(trade("50", 4 * SEC, B.symbol))  # the legs fill
    sim.on_event(trade("103", 5 * SEC, A.symbol))
    assert bot.state.pos_a.qty < 0 < bot.state.pos_b.qty
    short_a, long_b = -bot.state.pos_a.qty, bot.state.pos_b.qty
    before = len(sim.intents)
    sim.flatten("sp")
    closes = sim.intents[before:]
    assert [(c.symbol, c.side, c.qty, c.order_type, c.reduce_only) for c in closes] == [  # type: ignore[union-attr]
        (A.symbol, "buy", short_a, "market", True),
        (B.symbol, "sell", long_b, "market", True),
    ]
    sim.on_event(trade("104", 6 * SEC, A.symbol))
    assert bot.state.phase == "flattening"  # B's close is not filled yet
    sim.on_event(trade("49", 7 * SEC, B.symbol))
    assert bot.state.phase == "stopped"
    assert bot.state.pos_a.qty == 0 and bot.state.pos_b.qty == 0
    held = exchange.positions(AccountId("carol-perp"))
    assert all(p.qty == 0 for p in held.values()), held  # the venue holds nothing either
    sim.on_event(trade("120", 8 * SEC, A.symbol))  # a wide spread: stopped, no entry
    assert len(sim.intents) == before + 2


def test_volume_flatten_cancels_buys_and_sells_every_loop() -> None:
    ctx = bot_context("vo", "dave", "dave-paper", "volume", SOLUSDC, group="g")
    params = VolumeParams(
        single_trade_quote=D(100),
        trade_interval_seconds=D(5),
        buy_offset_pct=D(0),
        sell_profit_pct=D(5),
        target_volume=D(100_000),
        max_open_sells=5,
    )
    bot = VolumeBot(ctx, params)
    sim = Sim(paper_exchange([SOLUSDC], FUNDS, "dave-paper"), [bot])
    sim.on_event(trade("100", 0, SOL))  # loop 1 buys 1.000 at 100
    sim.on_event(trade("99", 1 * SEC, SOL))  # fills; its sell rests at 105
    sim.on_event(trade("99", 5 * SEC, SOL))  # loop 2 buys 1.010 at 99
    sim.on_event(trade("98", 6 * SEC, SOL))  # fills; its sell rests at 103.95
    sim.on_event(trade("98", 10 * SEC, SOL))  # loop 3 buys 1.020 at 98: rests unfilled
    assert len(bot.state.loops) == 3
    sim.flatten("vo")
    closes = [i for i in sim.intents if isinstance(i, PlaceOrder) and ":f" in i.intent_id]
    # one market sell per loop that holds base, in the loop's own cycle; the open buy is gone
    assert [(c.intent_id, c.qty, c.order_type) for c in closes] == [
        ("vo:1.1:f1", D("1.000"), "market"),
        ("vo:1.2:f2", D("1.010"), "market"),
    ]
    sim.on_event(trade("97", 11 * SEC, SOL))
    assert bot.state.phase == "stopped"
    assert bot.state.loops == [] and bot.state.cycles_completed == 2
    assert _sol(sim.exchange, "dave-paper") == 0
    assert sim.exchange.open_orders(AccountId("dave-paper")) == []
    sim.on_event(trade("97", 20 * SEC, SOL))  # no more intervals
    assert bot.state.loop == 3

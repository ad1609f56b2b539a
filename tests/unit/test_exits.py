"""Stop-loss and trailing take-profit of the ladder and the martingale, by hand.

The rules are those of docs/strategies.md ("Stop-loss and trailing
take-profit"). Every price and quantity below was worked out by hand.

Ladder (the reference bot of tests/unit/test_ladder.py): ``total_quote``
1000, 5 levels, ``max_drop_pct`` 10, ``take_profit_pct`` 2 on a market with
tick 0.01 and step 0.001; the cycle starts at 100 and its levels are 98.00
(2.040), 96.00 (2.083), 94.00 (2.127), 92.00 (2.173), 90.00 (2.222). Level 0
fills at 98: avg 98, take-profit level ``98 * 1.02 = 99.96``.

Martingale (the reference bot of tests/unit/test_martingale.py): base order
0.995 at 100.50 filled at 100 (fee 0.02); safety orders 98.00, 95.00, 90.50;
take-profit price ``floor_tick(100 * 1.015) = 101.50``.
"""

from __future__ import annotations

from decimal import Decimal as D
from functools import partial
from pathlib import Path

import msgspec

from tests.support import ticks
from tests.support.markets import SOLUSDC as UNIT
from tests.support.markets import bot_context
from tests.support.orders import OrderEvents
from tests.unit import test_martingale as mg
from tests.unit.test_botfile import LADDER, problems
from tradebus.common.messages import CancelOrder, Intent, PlaceOrder
from tradebus.strategies.core import Wake
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderParams
from tradebus.strategies.martingale.bot import MartingaleBot

CTX = bot_context("alice-ladder", "alice", "alice-paper", "ladder", UNIT)
trade = partial(ticks.trade, symbol=UNIT.symbol)
EV = OrderEvents(CTX, liquidity="maker")
accepted, filled, canceled, rejected = EV.accepted, EV.filled, EV.canceled, EV.rejected


def ladder(**kw: object) -> tuple[LadderBot, list[PlaceOrder]]:
    """A ladder whose level 0 (2.040 at 98) filled; levels 1-4 rest."""
    base: dict[str, object] = {
        "total_quote": D(1000),
        "order_count": 5,
        "max_drop_pct": D(10),
        "take_profit_pct": D(2),
    }
    base.update(kw)
    bot = LadderBot(CTX, LadderParams(**base))  # type: ignore[arg-type]
    buys = places(bot.on_trade(trade("100", 1_000)))
    for b in buys:
        bot.on_order_event(accepted(b))
    bot.on_order_event(filled(buys[0], "98", "0"))
    return bot, buys


def places(intents: list[Intent]) -> list[PlaceOrder]:
    return [i for i in intents if isinstance(i, PlaceOrder)]


def cancels(intents: list[Intent]) -> list[str]:
    """The intent ids the cancels among ``intents`` target."""
    return [i.target_intent_id for i in intents if isinstance(i, CancelOrder)]


def sell_of(intents: list[Intent]) -> PlaceOrder:
    (sell,) = [p for p in places(intents) if p.side == "sell"]
    return sell


def close(bot: LadderBot, buys: list[PlaceOrder], sell: PlaceOrder, price: str, fee: str) -> None:
    """The cycle's buys 1-4 confirmed canceled, then its sell filled."""
    bot.on_order_event(accepted(sell))
    for b in buys[1:]:
        assert bot.on_order_event(canceled(b)) == []
    assert bot.on_order_event(filled(sell, price, fee)) == []


# --------------------------------------------------------------- ladder: settings
def test_ladder_exit_settings_default_to_off_and_are_validated() -> None:
    p = LadderParams(total_quote=D(1), order_count=1, max_drop_pct=D(1), take_profit_pct=D(1))
    assert (p.stop_loss_pct, p.trailing_take_profit_pct, p.restart_after_stop_loss) == (
        0,
        0,
        False,
    )
    bad = msgspec.structs.replace(p, stop_loss_pct=D(100), trailing_take_profit_pct=D(-1))
    assert dict(bad.problems()) == {
        "stop_loss_pct": "must be >= 0 and < 100 (0 = off), not 100",
        "trailing_take_profit_pct": "must be >= 0 and < 100 (0 = off), not -1",
    }
    nan = msgspec.structs.replace(p, stop_loss_pct=D("NaN"))
    assert dict(nan.problems()) == {"stop_loss_pct": "must be >= 0 and < 100 (0 = off), not NaN"}


def test_a_bad_exit_setting_in_a_bot_file_is_named_at_its_path(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        f"""
        defaults: {{venue: binance, take_profit_pct: "0.5"}}
        strategies:
          ladder: {{{LADDER}, stop_loss_pct: "5"}}
          mg: {{strategy: martingale, symbol: BTCUSDT, base_quote: "100", safety_quote: "50",
                max_safety_orders: 2, price_deviation_pct: "1"}}
        users:
          - user: alice
            account: alice-paper
            strategies:
              ladder: {{trailing_take_profit_pct: "100", restart_after_stop_loss: true}}
              mg: {{trailing_take_profit_pct: "-0.5"}}
        """,
    )
    assert lines == [
        "users[0].strategies.ladder.trailing_take_profit_pct: must be >= 0 and < 100 (0 = off),"
        " not 100",
        "users[0].strategies.mg.trailing_take_profit_pct: must be >= 0 and < 100 (0 = off),"
        " not -0.5",
    ]


# ------------------------------------------------------------ ladder: stop-loss
def test_ladder_stop_loss_sells_marketably_books_the_loss_and_stops() -> None:
    bot, buys = ladder(stop_loss_pct=D(5))
    # trigger 98 * 0.95 = 93.1
    assert bot.status().details["stop_loss_price"] == "93.10"
    assert bot.on_trade(trade("93.11", 2_000)) == []
    out = bot.on_trade(trade("93.10", 3_000))
    assert cancels(out) == [b.intent_id for b in buys[1:]]
    sell = sell_of(out)
    # floor_tick(93.10 * 0.995) = floor_tick(92.6345) = 92.63, the whole position
    assert (sell.intent_id, str(sell.price), sell.qty, sell.clamp_to_free) == (
        "alice-ladder:1.1:s1",
        "92.63",
        D("2.040"),
        True,
    )
    assert bot.status().phase == "closing"
    close(bot, buys, sell, "93.10", "0.1")
    status = bot.status()
    # proceeds 2.040 * 93.10 = 189.924; cost 2.040 * 98 = 199.92; fee 0.1
    assert status.realized_pnl == D("189.924") - D("199.92") - D("0.1") == D("-10.096")
    assert (status.phase, status.cycles_completed, status.details["stop_losses"]) == (
        "stopped",
        1,
        1,
    )
    assert bot.on_trade(trade("93", 4_000)) == []  # stopped: no new cycle


def test_ladder_restarts_after_a_stop_loss_when_asked() -> None:
    bot, buys = ladder(stop_loss_pct=D(5), restart_after_stop_loss=True)
    sell = sell_of(bot.on_trade(trade("93", 2_000)))
    close(bot, buys, sell, "93", "0")
    assert bot.status().phase == "waiting"
    restart = places(bot.on_trade(trade("93", 3_000)))
    # new cycle at 93: lowest 83.7, step 1.86 -> 91.14
    assert (restart[0].intent_id, str(restart[0].price)) == ("alice-ladder:1.2:b0", "91.14")


def test_ladder_take_profit_does_not_follow_the_stop_loss_restart_setting() -> None:
    bot, buys = ladder(stop_loss_pct=D(5), restart_after_take_profit=True)
    sell = sell_of(bot.on_trade(trade("99.96", 2_000)))
    close(bot, buys, sell, "99.96", "0")
    assert (bot.status().phase, bot.status().details["stop_losses"]) == ("waiting", 0)


def test_ladder_without_stop_loss_holds_through_any_drop() -> None:
    bot, _ = ladder()
    assert bot.on_trade(trade("1", 2_000)) == []
    assert bot.status().details["stop_loss_price"] is None


def test_ladder_stop_loss_in_the_restarting_phase() -> None:
    """A buy filled before its no-fill cancel: the position is protected while restarting."""
    bot = LadderBot(
        CTX,
        LadderParams(
            total_quote=D(1000),
            order_count=5,
            max_drop_pct=D(10),
            take_profit_pct=D(2),
            stop_loss_pct=D(5),
            no_fill_restart_minutes=D(1),
        ),
    )
    buys = places(bot.on_trade(trade("100", 1_000)))
    bot.on_trade(trade("99", 1_000 + 60_000_000_000))  # restart: cancels sent
    bot.on_order_event(filled(buys[0], "98", "0"))  # ...but b0 had filled
    assert bot.status().phase == "restarting"
    assert sell_of(bot.on_trade(trade("93.1", 1_000 + 60_000_000_001))).qty == D("2.040")


# ---------------------------------------------------- ladder: trailing take-profit
def test_ladder_trailing_take_profit_follows_the_peak_and_sells_on_the_fall_back() -> None:
    bot, buys = ladder(trailing_take_profit_pct=D(1))
    assert bot.on_trade(trade("99.95", 2_000)) == []
    assert bot.status().details["trailing_peak"] is None
    assert bot.on_trade(trade("99.96", 3_000)) == []  # take-profit level reached: armed
    d = bot.status().details
    assert (d["trailing_peak"], d["trailing_stop_price"]) == ("99.96", "98.9604")
    assert bot.on_trade(trade("101", 4_000)) == []  # a new peak: stop 101 * 0.99 = 99.99
    assert bot.status().details["trailing_stop_price"] == "99.99"
    assert bot.on_trade(trade("100.5", 5_000)) == []  # a lower price keeps the peak
    assert bot.on_trade(trade("100.00", 6_000)) == []  # 100.00 > 99.99
    out = bot.on_trade(trade("99.99", 7_000))
    assert cancels(out) == [b.intent_id for b in buys[1:]]
    sell = sell_of(out)
    assert (str(sell.price), sell.qty) == ("99.49", D("2.040"))  # floor_tick(99.99 * 0.995)
    close(bot, buys, sell, "99.99", "0")
    status = bot.status()
    assert status.realized_pnl == D("2.040") * (D("99.99") - 98) == D("4.05960")
    assert (status.phase, status.details["trailing_peak"]) == ("waiting", None)


def test_ladder_trailing_sells_below_the_take_profit_level_when_it_falls_back_that_far() -> None:
    bot, _ = ladder(trailing_take_profit_pct=D(1))
    bot.on_trade(trade("99.96", 2_000))  # armed at 99.96: stop 98.9604
    assert bot.on_trade(trade("98.97", 3_000)) == []
    sell = sell_of(bot.on_trade(trade("98.96", 4_000)))  # below 99.96, above avg 98
    assert str(sell.price) == "98.46"  # floor_tick(98.96 * 0.995 = 98.4652)


def test_ladder_stop_loss_has_priority_over_the_trailing_take_profit() -> None:
    # armed at 99.96: trailing stop 99.96 * 0.955 = 95.4618; stop-loss 98 * 0.97 = 95.06
    bot, buys = ladder(trailing_take_profit_pct=D("4.5"), stop_loss_pct=D(3))
    bot.on_trade(trade("99.96", 2_000))
    sell = sell_of(bot.on_trade(trade("95", 3_000)))  # both reached: the stop-loss acts
    close(bot, buys, sell, "95", "0")
    assert (bot.status().phase, bot.status().details["stop_losses"]) == ("stopped", 1)


def test_ladder_trailing_re_arms_at_the_new_level_when_a_buy_fills() -> None:
    bot, buys = ladder(trailing_take_profit_pct=D(1))
    bot.on_trade(trade("99.96", 2_000))  # armed at 99.96
    bot.on_order_event(filled(buys[1], "96", "0"))  # a late fill: avg 96.98965...
    assert bot.status().details["trailing_peak"] is None
    # (2.040 * 98 + 2.083 * 96) / 4.123 = 96.989570...; level * 1.02 = 98.92936...
    assert bot.on_trade(trade("97", 3_000)) == []  # below the old trailing stop: no sale
    assert bot.on_trade(trade("98.92", 4_000)) == []
    assert bot.on_trade(trade("98.93", 5_000)) == []  # armed again at 98.93
    assert bot.status().details["trailing_peak"] == "98.93"
    assert str(sell_of(bot.on_trade(trade("97.94", 6_000))).price) == "97.45"  # <= 97.9407


def test_ladder_wake_covers_the_stop_loss_and_the_trailing_thresholds() -> None:
    bot, _ = ladder(trailing_take_profit_pct=D(1), stop_loss_pct=D(5))
    # take-profit screen a hair below 99.96; stop-loss 93.1
    wake = bot.wake()
    assert wake is not None and wake.trade_at_or_below == D("93.100") and wake.at_ns is None
    assert D("99.96") * (1 - D("1e-19")) < wake.trade_at_or_above <= D("99.96")  # type: ignore[operator]
    bot.on_trade(trade("101", 2_000))  # armed at 101: wake on a new peak or the fall-back
    assert bot.wake() == Wake(trade_at_or_above=D(101), trade_at_or_below=D("99.99"))


def test_ladder_without_trailing_sells_as_soon_as_the_take_profit_is_reached() -> None:
    bot, _ = ladder()
    assert str(sell_of(bot.on_trade(trade("99.96", 2_000))).price) == "99.46"


# ------------------------------------------ ladder: a real position of zero skips
def test_ladder_take_profit_skipped_when_the_account_holds_nothing() -> None:
    bot, buys = ladder(restart_after_take_profit=False)
    sell = sell_of(bot.on_trade(trade("99.96", 2_000)))
    for b in buys[1:]:
        bot.on_order_event(canceled(b))
    message = "clamp_to_free: free SOL balance is 0, less than one step (0.001); nothing to sell"
    assert bot.on_order_event(rejected(sell, "insufficient_balance", message=message)) == []
    status = bot.status()
    assert (status.phase, status.position, status.realized_pnl) == ("stopped", 0, 0)
    assert status.error == (
        "take-profit skipped: the account holds less than one step of the bot's 2.040 SOL "
        f"({message}); the bot's 2.040 SOL is written off and the cycle closed"
    )
    assert status.cycles_completed == 1


def test_ladder_stop_loss_skipped_when_the_account_holds_nothing() -> None:
    bot, buys = ladder(stop_loss_pct=D(5), restart_after_stop_loss=True)
    sell = sell_of(bot.on_trade(trade("93", 2_000)))
    for b in buys[1:]:
        bot.on_order_event(canceled(b))
    bot.on_order_event(rejected(sell, "insufficient_balance", message="free SOL is 0"))
    status = bot.status()
    assert (status.phase, status.position, status.details["stop_losses"]) == ("waiting", 0, 1)
    assert (status.error or "").startswith("stop-loss skipped: the account holds less than")


def test_ladder_snapshot_without_the_exit_fields_loads() -> None:
    bot, _ = ladder(trailing_take_profit_pct=D(1))
    old = msgspec.json.decode(bot.snapshot())
    for key in ("exit", "trail_peak", "stop_losses"):
        del old[key]
    copy = LadderBot(bot.ctx, bot.params)
    copy.restore(msgspec.json.encode(old))
    defaults = {"exit": "take_profit", "trail_peak": None, "stop_losses": 0}
    assert msgspec.json.decode(copy.snapshot()) == old | defaults
    for price, ts in (("99.96", 2_000), ("101", 3_000), ("99.99", 4_000)):
        assert copy.on_trade(trade(price, ts)) == bot.on_trade(trade(price, ts))


# --------------------------------------------------- martingale: trailing take-profit
def mg_in_cycle(**kw: object) -> tuple[MartingaleBot, PlaceOrder, list[PlaceOrder]]:
    """A martingale whose base order filled at 100 (fee 0.02), s1..s3 accepted."""
    bot = mg.new_bot(**kw)
    (base,) = places(bot.on_trade(mg.trade("100", 1 * mg.SECOND)))
    mg.tell(bot, mg.accepted(base))
    assert mg.tell(bot, mg.filled(base, "100", "0.02")) == []  # no resting take-profit
    safeties = places(bot.on_trade(mg.trade("100", 2 * mg.SECOND)))
    mg.tell(bot, *[mg.accepted(s) for s in safeties])
    return bot, base, safeties


def test_martingale_trailing_take_profit_rests_no_sell_and_sells_on_the_fall_back() -> None:
    bot, _, safeties = mg_in_cycle(trailing_take_profit_pct=D(1))
    assert [s.side for s in safeties] == ["buy"] * 3
    assert bot.on_trade(mg.trade("101.49", 3 * mg.SECOND)) == []  # below 101.50
    assert bot.status().details["trailing_peak"] is None
    assert bot.on_trade(mg.trade("101.50", 4 * mg.SECOND)) == []  # armed
    assert bot.status().details["trailing_stop_price"] == "100.4850"  # 101.50 * 0.99
    assert bot.on_trade(mg.trade("103", 5 * mg.SECOND)) == []  # peak 103: stop 101.97
    assert bot.on_trade(mg.trade("101.98", 6 * mg.SECOND)) == []
    out = bot.on_trade(mg.trade("101.97", 7 * mg.SECOND))
    assert mg.cancels(out) == [s.intent_id for s in safeties]
    # floor_tick(101.97 * 0.995) = floor_tick(101.46015)
    assert mg.brief(out) == [("tt", "sell", "101.46", "0.995")]
    assert bot.status().phase == "trailing_exit"
    (tt,) = places(out)
    assert tt.clamp_to_free
    mg.tell(bot, mg.accepted(tt), mg.filled(tt, "101.97", "0.05"))
    mg.tell(bot, *[mg.canceled(s) for s in safeties])
    status = bot.status()
    # proceeds 0.995 * 101.97 = 101.46015; cost 99.5; fees 0.02 + 0.05
    assert status.realized_pnl == D("101.46015") - D("99.5") - D("0.07") == D("1.89015")
    assert (status.phase, status.cycles_completed, status.position) == ("cooldown", 1, 0)
    assert status.details["trailing_peak"] is None  # disarmed with the cycle


def test_martingale_trailing_re_arms_at_the_new_level_when_a_safety_order_fills() -> None:
    bot, _, safeties = mg_in_cycle(trailing_take_profit_pct=D(5))
    bot.on_trade(mg.trade("101.50", 3 * mg.SECOND))  # armed: stop 96.425
    assert mg.tell(bot, mg.filled(safeties[0], "98")) == []  # still no resting sell
    # avg 99.32226 (0.995 at 100, 0.510 at 98): disarmed; the level is now 100.81
    assert bot.status().details["trailing_peak"] is None
    assert bot.on_trade(mg.trade("96.42", 4 * mg.SECOND)) == []  # not armed: no sale
    assert bot.on_trade(mg.trade("100.80", 5 * mg.SECOND)) == []
    assert bot.on_trade(mg.trade("100.81", 6 * mg.SECOND)) == []  # armed again
    assert bot.status().details["trailing_stop_price"] == "95.7695"  # 100.81 * 0.95
    out = bot.on_trade(mg.trade("95.76", 7 * mg.SECOND))
    assert mg.brief(out) == [("tt", "sell", "95.28", "1.505")]  # floor_tick(95.2812)


def test_martingale_stop_loss_has_priority_over_the_trailing_take_profit() -> None:
    # armed at 101.50: trailing stop 101.50 * 0.94 = 95.41; stop-loss 100 * 0.95 = 95
    bot, _, _ = mg_in_cycle(trailing_take_profit_pct=D(6), stop_loss_pct=D(5))
    bot.on_trade(mg.trade("101.50", 3 * mg.SECOND))
    out = bot.on_trade(mg.trade("95", 4 * mg.SECOND))  # both reached
    assert bot.status().phase == "stop_loss"
    assert mg.brief(out) == [("sl", "sell", "94.52", "0.995")]


def test_martingale_without_trailing_keeps_its_resting_take_profit() -> None:
    c = mg.in_cycle()
    assert mg.brief([c.tp1]) == [("tp1", "sell", "101.50", "0.995")]
    assert c.bot.on_trade(mg.trade("103", 3 * mg.SECOND)) == []
    assert c.bot.status().details["trailing_peak"] is None


def test_martingale_sell_skipped_for_a_zero_balance_says_why() -> None:
    bot, _, safeties = mg_in_cycle(trailing_take_profit_pct=D(1), max_safety_orders=3)
    bot.on_trade(mg.trade("101.50", 3 * mg.SECOND))
    (tt,) = places(bot.on_trade(mg.trade("100", 4 * mg.SECOND)))
    mg.tell(bot, mg.rejected(tt, "insufficient_balance"), *[mg.canceled(s) for s in safeties])
    status = bot.status()
    assert (status.phase, status.position) == ("cooldown", 0)
    assert (status.error or "").startswith(
        "sell tt skipped: the account holds less than one step of the bot's 0.995 SOL"
    )


def test_martingale_snapshot_without_the_trailing_fields_loads() -> None:
    bot, _, _ = mg_in_cycle(trailing_take_profit_pct=D(1))
    bot.on_trade(mg.trade("101.50", 3 * mg.SECOND))
    old = msgspec.json.decode(bot.snapshot())
    del old["trail_peak"], old["tt_count"]
    copy = MartingaleBot(bot.ctx, bot.params)
    copy.restore(msgspec.json.encode(old))
    assert msgspec.json.decode(copy.snapshot()) == old | {"trail_peak": None, "tt_count": 0}
    assert copy.state.trail_peak is None  # an old snapshot: re-armed by the next price
    assert copy.on_trade(mg.trade("101.50", 4 * mg.SECOND)) == []
    assert copy.state.trail_peak == D("101.50")

"""The spread strategy against hand-computed cases of shared/STRATEGIES.md §3 (seed 003).

Market A (``AAAUSDT``: tick 0.01, step 0.001) and B (``BBBUSDT``: tick 0.01,
step 0.01), both perpetual. References ``ref_a = 100``, ``ref_b = 50``;
``leg_quote = 1000``, ``E = 2``, adds at 3 % (x1) and 5 % (x2), reversion exit
at 0.5. ``chg_x = (p_x/ref_x - 1)*100``, ``spread = chg_a - chg_b``; a leg is
``qty = floor_step(quote / p)``, bought at ``floor_tick(p*1.005)`` or sold at
``floor_tick(p*0.995)``.
"""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from tests.support import ticks
from tests.support.markets import bot_context, market
from tests.support.orders import OrderEvents
from tradebus.common.messages import CancelOrder, Intent, PlaceOrder, QuoteTick, TradeTick
from tradebus.strategies.spread.bot import SpreadBot
from tradebus.strategies.spread.params import SpreadParams

A = market("AAA", "USDT", step="0.001", kind="perpetual")
B = market("BBB", "USDT", step="0.01", kind="perpetual")
CTX = bot_context("bob-spread", "bob", "bob-paper", "spread", A, B)


def params(**kw: object) -> SpreadParams:
    base: dict[str, object] = {
        "symbol_a": A.symbol,
        "symbol_b": B.symbol,
        "leg_quote": "1000",
        "entry_spread_pct": "2",
        "adds": [{"spread_pct": "3", "multiplier": "1"}, {"spread_pct": "5", "multiplier": "2"}],
        "take_profit": {"mode": "reversion", "exit_spread_pct": "0.5"},
    }
    base.update(kw)
    return msgspec.convert(base, SpreadParams, strict=False)


# ------------------------------------------------------------------ event helpers
def trade(symbol: str, price: str, ts: int) -> TradeTick:
    return ticks.trade(price, ts, symbol=symbol)


def quote(symbol: str, bid: str, ask: str, ts: int) -> QuoteTick:
    return ticks.quote(bid, ask, ts, symbol=symbol)


EV = OrderEvents(CTX, reject_message="no margin")
accepted, filled, canceled, rejected = EV.accepted, EV.filled, EV.canceled, EV.rejected


def places(intents: list[Intent]) -> list[PlaceOrder]:
    assert all(isinstance(i, PlaceOrder) for i in intents)
    return intents  # type: ignore[return-value]


def summary(intents: list[Intent]) -> list[tuple[str, str, str, str, str]]:
    """``(id, symbol, side, qty, price)`` of each place."""
    return [(p.intent_id, p.symbol, p.side, str(p.qty), str(p.price)) for p in places(intents)]


def start(**kw: object) -> SpreadBot:
    """A bot with references ``ref_a = 100``, ``ref_b = 50`` (round 1)."""
    bot = SpreadBot(CTX, params(**kw))
    assert bot.on_trade(trade(A.symbol, "100", 1)) == []
    assert bot.on_trade(trade(B.symbol, "50", 2)) == []
    return bot


def fill_all(bot: SpreadBot, orders: list[PlaceOrder], *prices: str, fee: str = "0") -> list:
    out: list[Intent] = []
    for order in orders:
        assert bot.on_order_event(accepted(order)) == []
    for order, price in zip(orders, prices, strict=True):
        out += bot.on_order_event(filled(order, price, fee))
    return out


def entered(**kw: object) -> tuple[SpreadBot, list[PlaceOrder]]:
    """Short A / long B entered at p_a = 102 (spread 2) and filled at 102 and 50."""
    bot = start(**kw)
    legs = places(bot.on_trade(trade(A.symbol, "102", 3)))
    assert fill_all(bot, legs, "102", "50") == []
    return bot, legs


# ------------------------------------------------------------------ parameters
def test_valid_params_have_no_problems_and_name_their_symbols() -> None:
    p = params()
    assert p.problems() == []
    assert p.symbols() == ["AAAUSDT", "BBBUSDT"]


def test_problems_name_nested_fields() -> None:
    bad = params(
        symbol_b="AAAUSDT",
        leg_quote="0",
        entry_spread_pct="4",
        adds=[
            {"spread_pct": "3", "multiplier": "1"},
            {"spread_pct": "3", "multiplier": "0"},
        ],
        take_profit={"mode": "reversion"},
        stop_loss_pct="-1",
    )
    assert bad.problems() == [
        ("symbol_b", "must differ from symbol_a"),
        ("leg_quote", "must be > 0"),
        ("adds[0].spread_pct", "must be > entry_spread_pct"),
        ("adds[1].spread_pct", "must be greater than adds[0].spread_pct"),
        ("adds[1].multiplier", "must be > 0"),
        ("take_profit.exit_spread_pct", "required for mode reversion"),
        ("stop_loss_pct", "must be >= 0 (0 = none)"),
    ]


def test_take_profit_problems_per_mode() -> None:
    assert params(take_profit={"mode": "position"}).problems() == [
        ("take_profit.profit_pct", "required for mode position")
    ]
    assert params(take_profit={"mode": "position", "profit_pct": "0"}).problems() == [
        ("take_profit.profit_pct", "must be > 0")
    ]
    assert params(take_profit={"mode": "reversion", "exit_spread_pct": "2"}).problems() == [
        ("take_profit.exit_spread_pct", "must be >= 0 and < entry_spread_pct")
    ]
    many = [{"spread_pct": str(3 + k), "multiplier": "1"} for k in range(21)]
    assert params(adds=many).problems() == [("adds", "at most 20 entries")]
    assert params(leg_quote="5").problems() == [("leg_quote", "must be >= min_order_quote (10)")]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        params(take_profit={"mode": "reversion", "exit_spread_pct": "0.5", "x": 1})


# ------------------------------------------------------------------ references and entry
def test_references_wait_for_both_symbols() -> None:
    bot = SpreadBot(CTX, params())
    assert bot.on_trade(trade(A.symbol, "100", 1)) == []
    assert bot.status().phase == "waiting" and bot.status().cycle == 0
    assert bot.on_trade(trade(B.symbol, "50", 2)) == []
    s = bot.status()
    assert (s.phase, s.cycle, s.details["ref_a"], s.details["ref_b"]) == (
        "watching",
        1,
        "100",
        "50",
    )
    assert s.details["spread_pct"] == "0"


def test_quote_mid_is_the_price_until_the_first_trade() -> None:
    bot = SpreadBot(CTX, params())
    bot.on_quote(quote(A.symbol, "99.99", "100.01", 1))
    bot.on_quote(quote(B.symbol, "49.99", "50.01", 2))
    assert (bot.status().details["ref_a"], bot.status().details["ref_b"]) == ("100.00", "50.00")
    bot.on_trade(trade(A.symbol, "101", 3))
    assert bot.on_quote(quote(A.symbol, "150", "151", 4)) == []  # a quote no longer moves p_a
    assert D(bot.status().details["chg_a_pct"]) == 1  # type: ignore[arg-type]


def test_ticks_of_other_symbols_are_ignored() -> None:
    bot = start()
    assert bot.on_trade(trade("XYZUSDT", "1", 3)) == []
    assert bot.on_quote(quote("XYZUSDT", "1", "2", 3)) == []


def test_entry_short_a_long_b() -> None:
    bot = start()
    assert bot.on_trade(trade(A.symbol, "101.99", 3)) == []  # spread 1.99 < 2
    out = bot.on_trade(trade(A.symbol, "102", 4))  # spread 2: A led, short it
    assert summary(out) == [
        # 1000/102 = 9.8039 -> 9.803; floor_tick(102*0.995 = 101.49)
        ("bob-spread:1.1:a0", "AAAUSDT", "sell", "9.803", "101.49"),
        # 1000/50 = 20 -> 20.00; floor_tick(50*1.005 = 50.25)
        ("bob-spread:1.1:b0", "BBBUSDT", "buy", "20.00", "50.25"),
    ]
    legs = places(out)
    assert all(p.trigger_ts == 4 and p.ts_init == 4 for p in legs)  # live from the next event
    assert all(not p.clamp_to_free and p.order_type == "limit" for p in legs)
    assert all(p.account == "bob-paper" for p in legs)
    s = bot.status()
    assert (s.phase, s.details["direction"], s.open_orders) == ("open", "short_a", 2)


def test_entry_long_a_short_b() -> None:
    bot = start()
    out = bot.on_trade(trade(B.symbol, "51", 3))  # chg_b 2: spread -2, B led
    assert summary(out) == [
        # 1000/100 = 10 -> 10.000 at floor_tick(100.5)
        ("bob-spread:1.1:a0", "AAAUSDT", "buy", "10.000", "100.50"),
        # 1000/51 = 19.6078 -> 19.60 at floor_tick(51*0.995 = 50.745)
        ("bob-spread:1.1:b0", "BBBUSDT", "sell", "19.60", "50.74"),
    ]
    assert bot.status().details["direction"] == "long_a"


def test_an_entry_with_a_leg_under_the_minimum_fails_the_bot_clearly() -> None:
    # leg_quote 10: B 10/50 = 0.20 -> 10.00 is fine, A 10/102 = 0.098 -> 9.996 < 10.
    # STRATEGIES.md §3: such an entry fails the bot with a clear error (it waited forever)
    bot = start(leg_quote="10", adds=[])
    assert bot.on_trade(trade(A.symbol, "102", 3)) == []
    s = bot.status()
    assert s.phase == "failed" and s.error is not None
    assert "AAAUSDT leg of 10 at 102 is 0.098 (9.996)" in s.error
    assert "min_order_quote=10" in s.error and "raise leg_quote" in s.error
    assert bot.on_trade(trade(A.symbol, "125", 4)) == []  # failed: nothing more


def test_leg_quote_below_min_order_quote_fails_clearly() -> None:
    bot = start(leg_quote="5")
    s = bot.status()
    assert s.phase == "failed"
    assert s.error is not None and "leg_quote=5" in s.error and "min_order_quote=10" in s.error
    assert bot.on_trade(trade(A.symbol, "110", 3)) == []


# ------------------------------------------------------------------ adds
def test_no_add_while_the_entry_is_unanswered_then_adds_in_order() -> None:
    bot = start()
    legs = places(bot.on_trade(trade(A.symbol, "102", 3)))
    assert bot.on_trade(trade(A.symbol, "106", 4)) == []  # entry legs not even accepted
    bot.on_order_event(accepted(legs[0]))
    bot.on_order_event(accepted(legs[1]))
    bot.on_order_event(filled(legs[0], "102"))
    assert bot.on_trade(trade(A.symbol, "106", 5)) == []  # leg B still open
    assert bot.on_order_event(filled(legs[1], "50")) == []  # no capital on order events
    # spread 6 is past both adds: add 0 first (1000 a leg)
    add0 = bot.on_trade(trade(A.symbol, "106", 6))
    assert summary(add0) == [
        ("bob-spread:1.1:a1", "AAAUSDT", "sell", "9.433", "105.47"),  # 1000/106 = 9.4339
        ("bob-spread:1.1:b1", "BBBUSDT", "buy", "20.00", "50.25"),
    ]
    assert bot.on_trade(trade(A.symbol, "106", 7)) == []  # waits for add 0's fills
    fill_all(bot, places(add0), "106", "50")
    add1 = bot.on_trade(trade(A.symbol, "106", 8))  # then add 1: 2000 a leg
    assert summary(add1) == [
        ("bob-spread:1.1:a2", "AAAUSDT", "sell", "18.867", "105.47"),  # 2000/106 = 18.8679
        ("bob-spread:1.1:b2", "BBBUSDT", "buy", "40.00", "50.25"),
    ]
    fill_all(bot, places(add1), "106", "50")
    assert bot.on_trade(trade(A.symbol, "110", 9)) == []  # no adds left
    s = bot.status()
    assert s.details["adds_done"] == 2
    assert s.details["AAAUSDT.position"] == str(-(D("9.803") + D("9.433") + D("18.867")))
    assert s.details["BBBUSDT.position"] == "80.00"


def test_adds_only_in_the_direction_of_the_round() -> None:
    bot, _ = entered()  # short A: adds need spread >= 3
    assert bot.on_trade(trade(B.symbol, "53", 4)) == []  # spread 2 - 6 = -4: the other side
    assert bot.on_trade(trade(B.symbol, "50", 5)) == []
    assert bot.on_trade(trade(A.symbol, "102.99", 6)) == []  # spread 2.99
    assert len(bot.on_trade(trade(A.symbol, "103", 7))) == 2  # spread 3.00


def test_an_add_with_a_leg_under_the_minimum_is_skipped_and_the_next_follows() -> None:
    # add 0 is 10.05 a leg: A at 106 floors to 0.094 (9.964 < 10). STRATEGIES.md §3: that
    # add is skipped (it blocked every later add), and add 1 (spread 5, 1000 a leg) is
    # placed at the same decision
    adds = [{"spread_pct": "3", "multiplier": "0.01005"}, {"spread_pct": "5", "multiplier": "1"}]
    bot, _ = entered(adds=adds)
    add = bot.on_trade(trade(A.symbol, "106", 4))  # spread 6: past both thresholds
    assert [p.intent_id for p in places(add)] == ["bob-spread:1.1:a2", "bob-spread:1.1:b2"]
    assert bot.status().details["adds_done"] == 2


def test_an_add_that_can_never_reach_the_minimum_is_skipped() -> None:
    # leg_quote * 0.001 = 1 < 10: add 0 is skipped, add 1 still works
    adds = [{"spread_pct": "3", "multiplier": "0.001"}, {"spread_pct": "5", "multiplier": "1"}]
    bot, _ = entered(adds=adds)
    assert bot.on_trade(trade(A.symbol, "103", 4)) == []
    assert bot.status().details["adds_done"] == 1
    assert [p.intent_id for p in places(bot.on_trade(trade(A.symbol, "105", 5)))] == [
        "bob-spread:1.1:a2",
        "bob-spread:1.1:b2",
    ]


# ------------------------------------------------------------------ exits
def test_reversion_exit_closes_both_legs_and_books_the_round() -> None:
    bot = start()
    legs = places(bot.on_trade(trade(A.symbol, "102", 3)))
    fill_all(bot, legs, "102", "50", fee="0.1")
    assert bot.on_trade(trade(A.symbol, "100.51", 4)) == []  # spread 0.51 > 0.5
    close = bot.on_trade(trade(A.symbol, "100.5", 5))  # spread 0.5: reverted
    assert summary(close) == [
        # buy back 9.803 A at floor_tick(100.5*1.005 = 101.0025); sell 20 B at 49.75
        ("bob-spread:1.1:ac1", "AAAUSDT", "buy", "9.803", "101.00"),
        ("bob-spread:1.1:bc1", "BBBUSDT", "sell", "20.00", "49.75"),
    ]
    # closes of a perpetual leg are reduce-only; entries are not
    assert [p.reduce_only for p in places(close)] == [True, True]
    assert [p.reduce_only for p in legs] == [False, False]
    assert bot.status().phase == "closing"
    assert fill_all(bot, places(close), "100.5", "50", fee="0.1") == []
    s = bot.status()
    # A: 9.803 * (102 - 100.5) - 0.2 fees = 14.5045; B: 20 * (50 - 50) - 0.2 = -0.2
    assert s.details["AAAUSDT.realized_pnl"] == "14.5045"
    assert D(s.details["BBBUSDT.realized_pnl"]) == D("-0.2")  # type: ignore[arg-type]
    assert s.realized_pnl == D("14.3045")
    assert (s.phase, s.cycles_completed, s.unrealized_pnl) == ("waiting", 1, 0)
    assert (s.details["AAAUSDT.position"], s.details["BBBUSDT.position"]) == ("0.000", "0.00")


def test_a_new_round_takes_new_references_at_the_next_prices() -> None:
    bot, _ = entered()
    close = places(bot.on_trade(trade(A.symbol, "100.5", 4)))
    fill_all(bot, close, "100.5", "50")
    assert bot.status().details["ref_a"] is None
    assert bot.on_trade(trade(B.symbol, "50.5", 5)) == []  # refs (100.5, 50.5), round 2
    s = bot.status()
    assert (s.phase, s.cycle, s.details["ref_a"], s.details["ref_b"]) == (
        "watching",
        2,
        "100.5",
        "50.5",
    )
    assert bot.on_trade(trade(A.symbol, "102.5", 6)) == []  # chg_a 1.99
    out = bot.on_trade(trade(A.symbol, "102.51", 7))  # 102.51 / 100.5 = 1.02 exactly
    assert summary(out) == [
        ("bob-spread:1.2:a0", "AAAUSDT", "sell", "9.755", "101.99"),  # 1000/102.51 = 9.7551
        ("bob-spread:1.2:b0", "BBBUSDT", "buy", "19.80", "50.75"),  # 1000/50.5 = 19.8019
    ]


def test_position_mode_exit_at_profit_pct_of_open_notional() -> None:
    bot, _ = entered(take_profit={"mode": "position", "profit_pct": "1"})
    # open notional 9.803*102 + 20*50 = 1999.906 -> target 19.99906
    assert bot.on_trade(trade(A.symbol, "99.96", 4)) == []  # 9.803 * 2.04 = 19.99812
    assert bot.status().unrealized_pnl == D("19.99812")
    assert bot.status().details["open_notional"] == "1999.906"
    close = bot.on_trade(trade(A.symbol, "99.95", 5))  # 9.803 * 2.05 = 20.09615
    assert [p.intent_id for p in places(close)] == ["bob-spread:1.1:ac1", "bob-spread:1.1:bc1"]


def test_stop_loss_on_the_open_notional() -> None:
    bot, _ = entered(adds=[], stop_loss_pct="2")
    # threshold -2 % of 1999.906 = -39.99812
    assert bot.on_trade(trade(A.symbol, "106.08", 4)) == []  # -9.803 * 4.08 = -39.99624
    close = bot.on_trade(trade(A.symbol, "106.09", 5))  # -9.803 * 4.09 = -40.09427
    assert summary(close) == [
        ("bob-spread:1.1:ac1", "AAAUSDT", "buy", "9.803", "106.62"),  # floor(106.62045)
        ("bob-spread:1.1:bc1", "BBBUSDT", "sell", "20.00", "49.75"),
    ]


def test_an_add_passed_meanwhile_is_placed_only_if_its_threshold_still_holds() -> None:
    """§3: the strategy decides once the round's last open leg fills; an add whose
    threshold was passed while a leg was open is placed only if it still holds then."""
    bot = start()
    legs = places(bot.on_trade(trade(A.symbol, "102", 3)))
    for leg in legs:
        bot.on_order_event(accepted(leg))
    bot.on_order_event(filled(legs[0], "102"))
    assert bot.on_trade(trade(A.symbol, "104", 4)) == []  # spread 4 > 3, but leg B is open
    assert bot.on_trade(trade(A.symbol, "102.5", 5)) == []  # back to 2.5
    assert bot.on_order_event(filled(legs[1], "50")) == []
    assert bot.on_trade(trade(A.symbol, "102.5", 6)) == []  # 2.5 < 3: no add
    assert bot.status().details["adds_done"] == 0
    assert [p.intent_id for p in places(bot.on_trade(trade(A.symbol, "103", 7)))] == [
        "bob-spread:1.1:a1",
        "bob-spread:1.1:b1",
    ]


def test_an_event_reaching_both_the_stop_loss_and_an_add_closes_the_round() -> None:
    """§3: on an event where both an exit and the next add are reached, the round is closed
    and the add is not placed."""
    bot, _ = entered(stop_loss_pct="2")  # adds at 3 % and 5 % stay
    close = bot.on_trade(trade(A.symbol, "106.09", 5))  # spread 6.09 and -40.09 of P&L
    assert [p.intent_id for p in places(close)] == ["bob-spread:1.1:ac1", "bob-spread:1.1:bc1"]
    assert (bot.status().phase, bot.status().details["adds_done"]) == ("closing", 0)


def test_the_round_pnl_counts_the_fees_paid_so_far() -> None:
    """§3: a round's P&L is sum(qty * (p - avg)) - fees paid; the position exit fires on it."""
    bot = start(take_profit={"mode": "position", "profit_pct": "1"})
    legs = places(bot.on_trade(trade(A.symbol, "102", 3)))
    fill_all(bot, legs, "102", "50", fee="0.5")  # 1 of fees
    # target 19.99906 (1 % of 1999.906): 9.803 * 2.05 - 1 = 19.09615 is not enough
    assert bot.on_trade(trade(A.symbol, "99.95", 4)) == []
    assert bot.status().unrealized_pnl == D("9.803") * D("2.05") - 1
    close = bot.on_trade(trade(A.symbol, "99.85", 5))  # 9.803 * 2.15 - 1 = 20.07645
    assert [p.intent_id for p in places(close)] == ["bob-spread:1.1:ac1", "bob-spread:1.1:bc1"]


def test_no_exit_while_an_add_is_unanswered() -> None:
    bot, _ = entered()
    assert len(bot.on_trade(trade(A.symbol, "103", 4))) == 2  # add 0 out
    assert bot.on_trade(trade(A.symbol, "100", 5)) == []  # spread 0, but add 0 is open


def test_a_partly_filled_close_is_finished_before_the_round_ends() -> None:
    bot, _ = entered()
    close = places(bot.on_trade(trade(A.symbol, "100.5", 4)))
    for c in close:
        bot.on_order_event(accepted(c))
    bot.on_order_event(filled(close[0], "100.5", qty=D("5")))
    bot.on_order_event(filled(close[1], "50"))
    rest = bot.on_order_event(canceled(close[0], D("5")))  # 4.803 A still short
    assert summary(rest) == [("bob-spread:1.1:ac2", "AAAUSDT", "buy", "4.803", "101.00")]
    assert bot.status().phase == "closing"
    fill_all(bot, places(rest), "100.6")
    assert (bot.status().phase, bot.status().cycles_completed) == ("waiting", 1)


# ------------------------------------------------------------------ broken hedges
def test_a_rejected_leg_closes_the_other_and_fails_the_bot() -> None:
    bot = start()
    legs = places(bot.on_trade(trade(A.symbol, "102", 3)))
    assert bot.on_order_event(rejected(legs[0])) == []  # leg B still open: wait
    bot.on_order_event(accepted(legs[1]))
    close = bot.on_order_event(filled(legs[1], "50"))  # managing exposure: allowed here
    assert summary(close) == [("bob-spread:1.1:bc1", "BBBUSDT", "sell", "20.00", "49.75")]
    assert bot.on_trade(trade(A.symbol, "110", 4)) == []  # no adds while closing
    assert fill_all(bot, places(close), "50") == []
    s = bot.status()
    assert s.phase == "failed"
    assert s.error is not None and "AAAUSDT" in s.error and "insufficient_balance" in s.error
    assert bot.on_trade(trade(A.symbol, "120", 5)) == []


def test_an_entry_leg_canceled_unfilled_closes_the_round_without_failing() -> None:
    bot = start()
    legs = places(bot.on_trade(trade(A.symbol, "102", 3)))
    bot.on_order_event(accepted(legs[0]))
    bot.on_order_event(accepted(legs[1]))
    bot.on_order_event(filled(legs[0], "102"))
    close = bot.on_order_event(canceled(legs[1]))  # canceled by hand before it filled
    assert summary(close) == [("bob-spread:1.1:ac1", "AAAUSDT", "buy", "9.803", "102.51")]
    fill_all(bot, places(close), "102")
    assert (bot.status().phase, bot.status().error) == ("waiting", None)


def test_a_rejected_close_fails_the_bot_and_keeps_the_position() -> None:
    bot, _ = entered()
    close = places(bot.on_trade(trade(A.symbol, "100.5", 4)))
    bot.on_order_event(rejected(close[0], "venue_error"))
    s = bot.status()
    assert s.phase == "failed" and "close of AAAUSDT rejected" in (s.error or "")
    assert s.details["AAAUSDT.position"] == "-9.803"


def test_a_spot_long_leg_is_closed_with_clamp_to_free() -> None:
    spot_b = msgspec.structs.replace(B, kind="spot")
    ctx = msgspec.structs.replace(CTX, markets=(A, spot_b))
    bot = SpreadBot(ctx, params())
    bot.on_trade(trade(A.symbol, "100", 1))
    bot.on_trade(trade(B.symbol, "50", 2))
    legs = places(bot.on_trade(trade(A.symbol, "102", 3)))
    assert [p.clamp_to_free for p in legs] == [False, False]  # entries never clamp
    fill_all(bot, legs, "102", "50")
    close = places(bot.on_trade(trade(A.symbol, "100.5", 4)))
    assert [p.clamp_to_free for p in close] == [False, True]
    bot.on_order_event(accepted(close[1], D("15")))  # 5 B were sold by hand
    assert bot.status().details["BBBUSDT.position"] == "15.00"


# ------------------------------------------------------------------ lifecycle
def test_stop_cancels_per_cancel_on_exit_and_restart_goes_on() -> None:
    bot = start()
    legs = places(bot.on_trade(trade(A.symbol, "102", 3)))
    for p in legs:
        bot.on_order_event(accepted(p))
    bot.on_order_event(filled(legs[0], "102"))
    out = bot.on_stop()
    assert [(type(c), c.intent_id, c.target_intent_id) for c in out] == [  # type: ignore[union-attr]
        (CancelOrder, "bob-spread:1.1:b0:x", "bob-spread:1.1:b0")
    ]
    assert bot.status().phase == "stopped"
    assert bot.on_order_event(canceled(legs[1])) == []  # stopped: positions are not closed
    assert bot.status().details["AAAUSDT.position"] == "-9.803"
    assert bot.on_restart() == []
    assert bot.status().phase == "open"
    close = bot.on_trade(trade(A.symbol, "103", 4))  # the broken round is closed
    assert summary(close) == [("bob-spread:1.1:ac1", "AAAUSDT", "buy", "9.803", "103.51")]

    keep = start(cancel_on_exit=False)
    keep.on_trade(trade(A.symbol, "102", 3))
    assert keep.on_stop() == []
    assert keep.status().open_orders == 2


def test_snapshot_restore_gives_the_same_future() -> None:
    bot, _ = entered()
    add0 = places(bot.on_trade(trade(A.symbol, "103", 4)))
    bot.on_order_event(accepted(add0[0]))
    bot.on_order_event(filled(add0[0], "103", "0.05"))
    copy = SpreadBot(CTX, params())
    copy.restore(bot.snapshot())
    assert copy.status() == bot.status()

    def future(b: SpreadBot) -> list[list[Intent]]:  # the same events for both
        return [
            b.on_order_event(accepted(add0[1])),
            b.on_order_event(filled(add0[1], "50", "0.05")),
            b.on_trade(trade(A.symbol, "105.2", 5)),  # add 1
            b.on_trade(trade(A.symbol, "100.4", 6)),  # add 1 still open: nothing
        ]

    original = future(bot)
    assert future(copy) == original
    assert [len(out) for out in original] == [0, 0, 2, 0]
    assert copy.status() == bot.status()


def test_resend_repeats_unanswered_places_and_cancels() -> None:
    bot = start()
    legs = bot.on_trade(trade(A.symbol, "102", 3))
    assert bot.resend() == legs  # nothing heard yet: the same intents again
    bot.on_order_event(accepted(legs[0]))
    assert bot.resend() == legs[1:]
    cancels = bot.on_stop()
    assert bot.resend() == [cancels[0], legs[1], cancels[1]]  # in placement order


def test_status_block() -> None:
    bot, _ = entered(adds=[])
    bot.on_trade(trade(B.symbol, "49.5", 4))  # chg_b -1: spread 2 + 1 = 3
    bot.on_trade(trade(A.symbol, "103", 5))  # chg_a 3: spread 4
    s = bot.status()
    assert (s.symbol, s.phase, s.run, s.cycle) == ("AAAUSDT/BBBUSDT", "open", 1, 1)
    assert (s.orders_placed, s.orders_filled, s.open_orders) == (2, 2, 0)
    d = s.details
    assert (D(d["spread_pct"]), D(d["chg_a_pct"]), D(d["chg_b_pct"])) == (4, 3, -1)  # type: ignore[arg-type]
    assert (d["ref_a"], d["ref_b"], d["direction"], d["adds_done"]) == ("100", "50", "short_a", 0)
    # A: -9.803 * (103 - 102) = -9.803; B: 20 * (49.5 - 50) = -10
    assert (d["AAAUSDT.unrealized_pnl"], d["BBBUSDT.unrealized_pnl"]) == ("-9.803", "-10.000")
    assert (d["AAAUSDT.avg_price"], d["BBBUSDT.avg_price"]) == ("102", "50")
    assert d["open_notional"] == "1999.906"
    assert s.unrealized_pnl == D("-19.803")
    assert s.unrealized_pct == D("-19.803") / D("1999.906") * 100
    assert s.position_value == D("9.803") * 103 + 20 * D("49.5")
    assert all(v is None or isinstance(v, str | int | bool) for v in d.values())
    msgspec.json.encode(s)  # JSON-safe

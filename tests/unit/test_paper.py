"""The paper venue's fill model, rule by rule (shared/STRATEGIES.md, "Paper fill model"),
and its balances: locks, fees, refusals."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.support import ticks
from tests.support.markets import BTCUSDT
from tests.support.orders import venue_order as order
from tests.support.sim import paper_exchange
from tests.support.ticks import trade
from tradebus.common.ids import AccountId
from tradebus.common.messages import QuoteTick, Side
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.engine.venue import VenueRejected

ACCT = AccountId("a")


def exchange(usdt: str = "100000", btc: str = "0") -> PaperExchange:
    return paper_exchange([BTCUSDT], {"USDT": D(usdt), "BTC": D(btc)}, "a")


def quote(ts: int) -> QuoteTick:
    return ticks.quote("99", "101", ts)


def balances(ex: PaperExchange) -> dict[str, tuple[D, D]]:
    return {b.asset: (b.total, b.locked) for b in ex.balances(ACCT)}


# ------------------------------------------------------------- rule 1: liveness
def test_an_order_is_not_live_on_the_event_that_caused_it() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "99", trigger=2))  # caused by the event at ts 2
    assert ex.on_trade(trade("98", 2)) == []  # the causing event itself (or a tie)
    assert len(ex.on_trade(trade("98", 3))) == 1  # the first event after it


def test_a_quote_makes_an_order_live_but_fills_nothing() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    o = order("buy", "99", trigger=1)
    ex.place(ACCT, o)
    ex.on_quote(quote(2))
    resting = ex.find(o.client_order_id)
    assert resting is not None and resting.live
    assert balances(ex)["BTC"] == (D(0), D(0))  # nothing bought


def test_a_manual_order_is_live_from_the_first_event_after_it_arrives() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "99"))  # no trigger
    assert len(ex.on_trade(trade("98", 1))) == 1  # even an event with an old timestamp


# ---------------------------------------------------------------- rule 2: passive
def test_passive_buy_fills_only_when_a_trade_prints_strictly_below() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "99", trigger=1))
    assert ex.on_trade(trade("99", 2)) == []  # at the limit: no fill
    (fill,) = ex.on_trade(trade("98.5", 3))
    assert (fill.price, fill.qty, fill.liquidity) == (D("99"), D("0.1"), "maker")


def test_passive_sell_fills_only_when_a_trade_prints_strictly_above() -> None:
    ex = exchange(btc="1")
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("sell", "101", trigger=1))
    assert ex.on_trade(trade("101", 2)) == []
    (fill,) = ex.on_trade(trade("102", 3))
    assert (fill.price, fill.liquidity) == (D("101"), "maker")


# ------------------------------------------------------------- rule 3: marketable
def test_marketable_buy_fills_at_the_next_trade_price_within_its_limit() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "100.5", trigger=1))  # limit >= last trade: marketable
    assert ex.on_trade(trade("100.6", 2)) == []  # outside the limit
    (fill,) = ex.on_trade(trade("100.2", 3))
    assert (fill.price, fill.liquidity) == (D("100.2"), "taker")


def test_marketable_sell_at_or_below_the_last_trade() -> None:
    ex = exchange(btc="1")
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("sell", "99.5", trigger=1))
    (fill,) = ex.on_trade(trade("99.9", 2))
    assert (fill.price, fill.liquidity) == (D("99.9"), "taker")


@pytest.mark.parametrize(
    ("side", "limit", "beyond", "within"),
    [("sell", "99.5", "99.4", "99.6"), ("buy", "100.5", "100.6", "100.4")],
)
def test_a_marketable_order_that_misses_its_limit_stays_open_and_fills_in_full_later(
    side: Side, limit: str, beyond: str, within: str
) -> None:
    """Rule 3: a marketable order whose next trade is beyond its limit stays open and fills
    in full, as taker, at the first later trade within its limit."""
    ex = exchange(btc="1")
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order(side, limit, qty="0.5", trigger=1))  # marketable against 100
    assert ex.on_trade(trade(beyond, 2, size="0.001")) == []  # beyond its limit
    assert ex.on_trade(trade(beyond, 3, size="0.001")) == []
    assert len(ex.open_orders(ACCT)) == 1
    (fill,) = ex.on_trade(trade(within, 4, size="0.001"))  # a tiny trade: still in full
    assert (fill.side, fill.price, fill.qty, fill.liquidity) == (side, D(within), D("0.5"), "taker")
    assert ex.open_orders(ACCT) == []


def test_market_order_fills_at_the_next_trade() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", None, order_type="market", trigger=1))
    (fill,) = ex.on_trade(trade("103", 2))
    assert fill.price == D("103") and fill.liquidity == "taker"


def test_marketability_is_judged_against_the_price_when_the_order_goes_live() -> None:
    # execution may receive the order before it has seen the trade that caused it
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "99.5", trigger=2))  # the strategy saw a trade at 99 (ts 2)
    ex.on_trade(trade("99", 2))  # the causing event arrives: last trade is now 99
    (fill,) = ex.on_trade(trade("99.2", 3))  # 99.5 >= 99: marketable, fills at 99.2
    assert (fill.price, fill.liquidity) == (D("99.2"), "taker")


# ------------------------------------------------------------------ rule 4: fees
def test_fees_in_quote_maker_and_taker() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "99", qty="1", trigger=1))
    ex.place(ACCT, order("buy", "101", qty="1", trigger=1))
    passive, marketable = ex.on_trade(trade("98", 2))
    assert passive.fee == D("99") * D(1) / D(10_000)  # 1 bps
    assert marketable.fee == D("98") * D(5) / D(10_000)  # 5 bps at the fill price
    assert passive.fee_asset == marketable.fee_asset == "USDT"


# --------------------------------------------------------- rule 5: placement order
def test_within_one_event_orders_fill_in_placement_order() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    first = order("buy", "97", trigger=1)
    second = order("buy", "99", trigger=1)
    ex.place(ACCT, first)
    ex.place(ACCT, second)
    fills = ex.on_trade(trade("96", 2))
    assert [f.client_order_id for f in fills] == [first.client_order_id, second.client_order_id]


# -------------------------------------------------------------------- balances
def test_buy_locks_notional_plus_worst_fee_and_fill_settles_it() -> None:
    ex = exchange(usdt="1000")
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "99", qty="1", trigger=1))
    assert balances(ex)["USDT"] == (D(1000), D(99) + D(99) * 5 / 10_000)
    (fill,) = ex.on_trade(trade("98", 2))
    assert balances(ex) == {"BTC": (D(1), D(0)), "USDT": (D(1000) - 99 - fill.fee, D(0))}


def test_sell_locks_base_and_fill_credits_quote_minus_fee() -> None:
    ex = exchange(usdt="0", btc="2")
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("sell", "101", qty="0.5", trigger=1))
    assert balances(ex)["BTC"] == (D(2), D("0.5"))
    (fill,) = ex.on_trade(trade("102", 2))
    assert balances(ex) == {"BTC": (D("1.5"), D(0)), "USDT": (D("50.5") - fill.fee, D(0))}


def test_cancel_releases_the_lock_and_a_canceled_order_cannot_fill() -> None:
    ex = exchange(usdt="1000")
    ex.on_trade(trade("100", 1))
    o = order("buy", "99", qty="1", trigger=1)
    ex.place(ACCT, o)
    assert ex.cancel(o.client_order_id) is True
    assert ex.cancel(o.client_order_id) is False
    assert balances(ex)["USDT"] == (D(1000), D(0))
    assert ex.on_trade(trade("90", 2)) == []


def test_refusals() -> None:
    ex = exchange(usdt="50")
    with pytest.raises(VenueRejected) as exc:
        ex.place(ACCT, order("buy", None, order_type="market"))
    assert exc.value.reason == "no_market_price"
    ex.on_trade(trade("100", 1))
    with pytest.raises(VenueRejected) as exc:
        ex.place(ACCT, order("buy", "99", qty="1"))
    assert exc.value.reason == "insufficient_balance"
    with pytest.raises(VenueRejected) as exc:
        ex.place(ACCT, order("sell", "99", qty="1"))
    assert exc.value.reason == "insufficient_balance"
    dup = order("buy", "1", qty="0.1")
    ex.place(ACCT, dup)
    with pytest.raises(VenueRejected) as exc:
        ex.place(ACCT, dup)
    assert exc.value.reason == "duplicate_client_order_id"


def test_moving_a_balance_by_hand() -> None:
    ex = exchange(usdt="100")
    ex.adjust(ACCT, "USDT", D("-40"))
    assert balances(ex)["USDT"] == (D(60), D(0))


# ---------------------------------------------- late orders: the same fills as in time
@pytest.mark.parametrize(
    ("side", "limit", "path"),
    [
        ("buy", "99.5", ["99", "98"]),  # passive: filled at its limit by the first trade below
        ("buy", "101", ["99", "98"]),  # marketable: at the next trade's price
        ("sell", "100.5", ["101", "102"]),  # passive sell
        ("buy", "95", ["99", "98"]),  # never filled by these trades
    ],
)
def test_an_order_that_arrives_late_fills_as_if_it_had_arrived_in_time(
    side: str, limit: str, path: list[str]
) -> None:
    """Execution may see an order after later market events (it lags the feed); the
    order still goes live on the event right after its trigger and fills on the trade
    that would have filled it, not on a later one."""
    in_time, late = exchange(btc="1"), exchange(btc="1")
    for ex in (in_time, late):
        ex.on_trade(trade("100", 1))
    o = order(side, limit, trigger=1)  # type: ignore[arg-type]
    in_time.place(ACCT, o)
    fills_in_time = [f for ts, p in enumerate(path, 2) for f in in_time.on_trade(trade(p, ts))]
    for ts, p in enumerate(path, 2):
        late.on_trade(trade(p, ts))
    late.place(ACCT, o)
    fills_late = late.take_late_fills(ACCT)
    assert fills_late == fills_in_time
    assert late.take_late_fills(ACCT) == []  # handed out once
    assert balances(late) == balances(in_time)

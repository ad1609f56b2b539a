"""Perpetual positions on the paper venue (tradebus.engine.perp, paper_perp, paper).

Hand-computed throughout. The account has 10000 USDT, leverage 2, maker 1 bps,
taker 5 bps; an open order locks ``increasing_qty * price / 2`` plus 5 bps of
its notional (the worst-case fee); a position locks ``|open cost| / 2``. The
fill rules are the spot ones (STRATEGIES.md, paper fill model).
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.markets import BTCUSDT as MARKET
from tests.support.markets import ETHUSDT_PERP as PERP_MARKET
from tests.support.orders import venue_order as order
from tests.support.sim import paper_exchange
from tests.support.ticks import trade
from tradebus.common.config import ConfigError
from tradebus.common.ids import AccountId
from tradebus.engine.accounts import load_accounts
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.engine.perp import PerpPosition, apply_fill, increasing_qty
from tradebus.engine.venue import VenueFill, VenueRejected
from tradebus.ledger.entries import (
    PerpFillFacts,
    deposit_entries,
    perp_fill_entries,
    sum_balances,
)

ACCT = AccountId("p")


def exchange(usdt: str = "10000", kind: str = "perpetual", leverage: str = "2") -> PaperExchange:
    markets = [MARKET, PERP_MARKET]
    return paper_exchange(markets, {"USDT": D(usdt)}, "p", market_kind=kind, leverage=D(leverage))


def held(ex: PaperExchange) -> dict[str, tuple[D, D, D]]:
    """``asset -> (total, free, locked)``."""
    return {b.asset: (b.total, b.free, b.locked) for b in ex.balances(ACCT)}


def journal_of(fills: list[VenueFill], usdt: str = "10000") -> dict[str, D]:
    """What the ledger would hold after ``fills`` (the entries execution books)."""
    entries = deposit_entries(ACCT, {"USDT": D(usdt)}, "initial")
    for f in fills:
        entries += perp_fill_entries(
            PerpFillFacts(
                account=ACCT,
                symbol=f.symbol,
                quote="USDT",
                side=f.side,
                qty=f.qty,
                realized_pnl=f.realized_pnl or D(0),
                fee=f.fee,
                fee_asset=f.fee_asset,
                ref=f.trade_id,
            )
        )
    return {asset: total for (_, asset), total in sum_balances(entries).items()}


# ------------------------------------------------------------------- opening
def test_open_long_locks_margin_and_needs_no_base_asset() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "100", "10", trigger=1))  # at the last trade: marketable
    # 10 * 100 / 2 = 500 margin, + 5 bps of 1000 = 0.5 worst-case fee
    assert held(ex)["USDT"] == (D(10000), D("9499.5"), D("500.5"))
    (fill,) = ex.on_trade(trade("99", 2))
    assert (fill.price, fill.liquidity, fill.fee) == (D(99), "taker", D("0.495"))  # 990 * 5 bps
    assert (fill.market_kind, fill.realized_pnl) == ("perpetual", D(0))
    assert held(ex) == {
        "BTCUSDT-PERP": (D(10), D(10), D(0)),
        "USDT": (D("9999.505"), D("9504.505"), D(495)),  # position margin 990 / 2
    }
    (position,) = ex.positions(ACCT).values()
    assert (position.qty, position.avg_price, position.margin) == (D(10), D(99), D(495))


def test_a_sell_when_flat_opens_a_short() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("sell", "99", "1", trigger=1))  # 99 <= 100: marketable
    assert held(ex)["USDT"][2] == D("49.5") + D("0.0495")
    (fill,) = ex.on_trade(trade("99.5", 2))
    assert (fill.side, fill.price, fill.fee, fill.realized_pnl) == (
        "sell",
        D("99.5"),
        D("0.04975"),
        D(0),
    )
    assert held(ex) == {
        "BTCUSDT-PERP": (D(-1), D(-1), D(0)),
        "USDT": (D("9999.95025"), D("9950.20025"), D("49.75")),
    }
    position = ex.positions(ACCT)["BTCUSDT"]
    assert position.avg_price == D("99.5")
    assert position.unrealized_pnl(D(90)) == D("9.5")  # short 1 from 99.5, marked at 90
    assert position.unrealized_pnl(D(100)) == D("-0.5")


# ------------------------------------------------ add, partial close, flip, close
def test_add_partial_close_flip_and_close_book_realized_pnl_and_fees() -> None:
    ex = exchange()
    fills: list[VenueFill] = []
    ex.on_trade(trade("100", 1))
    # open: buy 2 @ 99 passive, fills at 99 (maker 0.0198)
    ex.place(ACCT, order("buy", "99", "2", trigger=1))
    assert held(ex)["USDT"][2] == D("99.099")  # 2 * 99 / 2 + 5 bps of 198
    fills += ex.on_trade(trade("98", 2))
    assert held(ex)["USDT"] == (D("9999.9802"), D("9900.9802"), D(99))
    # add: buy 1 @ 96 passive -> 3 @ avg 98, margin 147
    ex.place(ACCT, order("buy", "96", "1", trigger=3))
    fills += ex.on_trade(trade("95", 4))
    position = ex.positions(ACCT)["BTCUSDT"]
    assert (position.qty, position.avg_price, position.margin) == (D(3), D(98), D(147))
    assert held(ex)["USDT"] == (D("9999.9706"), D("9852.9706"), D(147))
    # partial close: sell 2 @ 101 passive; reducing, so it locks only the fee 0.101
    ex.place(ACCT, order("sell", "101", "2", trigger=5))
    assert held(ex)["USDT"][2] == D("147.101")
    (close,) = ex.on_trade(trade("102", 6))
    fills.append(close)
    # realized = 2 * 101 - 294 * 2/3 = 202 - 196 = 6; fee 202 * 1 bps = 0.0202
    assert (close.realized_pnl, close.fee) == (D(6), D("0.0202"))
    assert held(ex) == {
        "BTCUSDT-PERP": (D(1), D(1), D(0)),
        "USDT": (D("10005.9504"), D("9956.9504"), D(49)),
    }
    # flip: sell 3 @ 100 (marketable): 1 reduces, 2 open a short -> lock 2*100/2 + 0.15
    ex.place(ACCT, order("sell", "100", "3", trigger=7))
    assert held(ex)["USDT"][2] == D(49) + D("100.15")
    (flip,) = ex.on_trade(trade("100.5", 8))
    fills.append(flip)
    # closes 1 from 98 at 100.5 (+2.5), opens short 2 @ 100.5; taker fee 301.5 * 5 bps
    assert (flip.realized_pnl, flip.fee, flip.liquidity) == (D("2.5"), D("0.15075"), "taker")
    position = ex.positions(ACCT)["BTCUSDT"]
    assert (position.qty, position.avg_price, position.margin) == (D(-2), D("100.5"), D("100.5"))
    assert held(ex)["USDT"] == (D("10008.29965"), D("9907.79965"), D("100.5"))
    # close the short: buy 2 @ 99 passive: +3 (2 * (100.5 - 99)); maker fee 0.0198
    ex.place(ACCT, order("buy", "99", "2", trigger=9))
    assert held(ex)["USDT"][2] == D("100.5") + D("0.099")  # reducing: the fee only
    (last,) = ex.on_trade(trade("98", 10))
    fills.append(last)
    assert last.realized_pnl == D(3)
    # 10000 + (6 + 2.5 + 3) - (0.0198 + 0.0096 + 0.0202 + 0.15075 + 0.0198)
    assert held(ex) == {
        "BTCUSDT-PERP": (D(0), D(0), D(0)),
        "USDT": (D("10011.27985"), D("10011.27985"), D(0)),
    }
    assert ex.positions(ACCT)["BTCUSDT"].realized_pnl == D("11.5")
    # the ledger's journal of these fills says exactly what the venue says
    assert journal_of(fills) == {a: t for a, (t, _, _) in held(ex).items()}


def test_partial_closes_round_the_cost_share_to_the_notional_quantum() -> None:
    ex = exchange()
    fills: list[VenueFill] = []
    ex.on_trade(trade("100", 1))
    for n, price in enumerate(("100", "100.01", "100.01")):  # 3 @ avg 100.00666...
        ex.place(ACCT, order("buy", price, "1", trigger=2 * n + 1))
        fills += ex.on_trade(trade(price, 2 * n + 2))  # marketable: fills at the trade
    ex.place(ACCT, order("sell", "101", "1", trigger=6))
    (close,) = ex.on_trade(trade("101.01", 7))
    fills.append(close)
    # cost share 300.02 / 3 = 100.0066666... rounded half-even to 7 places (0.01 * 0.00001)
    assert close.realized_pnl == D(101) - D("100.0066667")
    position = ex.positions(ACCT)["BTCUSDT"]
    assert position.open_cost == D("200.0133333")
    ex.place(ACCT, order("sell", "101", "2", trigger=8))  # 101 <= 101.01: marketable
    (final,) = ex.on_trade(trade("101.01", 9))
    fills.append(final)
    assert final.realized_pnl == D("202.02") - D("200.0133333")  # a full close books the rest
    assert close.realized_pnl + final.realized_pnl == D(101) + D("202.02") - D("300.02")
    assert journal_of(fills) == {a: t for a, (t, _, _) in held(ex).items()}


# -------------------------------------------------------------------- margin
def test_margin_rejects_and_reducing_orders_lock_only_fees() -> None:
    ex = exchange(usdt="100")
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "99", "1", trigger=1))
    ex.on_trade(trade("98", 2))  # long 1 @ 99, margin 49.5, fee 0.0099
    assert held(ex)["USDT"] == (D("99.9901"), D("50.4901"), D("49.5"))
    with pytest.raises(VenueRejected) as exc:  # 1.1 * 98 / 2 + 0.0539 = 53.9539 > 50.4901
        ex.place(ACCT, order("buy", "98", "1.1"))
    assert exc.value.reason == "insufficient_balance"
    assert "53.9539" in exc.value.message and "50.4901" in exc.value.message
    ex.place(ACCT, order("sell", "120", "1"))  # closes the long: 5 bps of 120 only
    assert held(ex)["USDT"][1] == D("50.4301")
    # a second sell of 1 finds the long already claimed: it would open a short
    with pytest.raises(VenueRejected) as exc:  # 1 * 121 / 2 + 0.0605 = 60.5605
        ex.place(ACCT, order("sell", "121", "1"))
    assert exc.value.reason == "insufficient_balance"
    ex.place(ACCT, order("sell", "121", "0.5"))  # 30.25 + 0.03025
    assert held(ex)["USDT"][1] == D("20.14985")


def test_cancel_re_margins_the_orders_behind_it() -> None:
    ex = exchange(usdt="100")
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "99", "1", trigger=1))
    ex.on_trade(trade("98", 2))  # long 1, margin 49.5
    first = order("sell", "120", "1")
    ex.place(ACCT, first)  # reducing: 0.06
    ex.place(ACCT, order("sell", "121", "0.5"))  # behind it, opening: 30.28025
    assert held(ex)["USDT"][2] == D("49.5") + D("0.06") + D("30.28025")
    assert ex.cancel(first.client_order_id)
    assert held(ex)["USDT"][2] == D("49.5") + D("0.03025")  # now it reduces: the fee only


def test_a_fill_re_margins_a_reducing_order_that_now_opens() -> None:
    ex = exchange()
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("buy", "100", "1", trigger=1))
    ex.on_trade(trade("100", 2))  # long 1 @ 100 (taker 0.05), margin 50
    ex.place(ACCT, order("sell", "105", "1", trigger=2))  # A: reducing, 0.0525
    ex.place(ACCT, order("sell", "101", "1", trigger=2))  # B: behind A, opening: 50.5 + 0.0505
    assert held(ex)["USDT"][2] == D(50) + D("0.0525") + D("50.5505")
    (fill,) = ex.on_trade(trade("102", 3))  # B fills at 101 and closes the long
    assert fill.realized_pnl == D(1)
    # flat; A would now open a short of 1 @ 105: 52.5 + 0.0525
    assert held(ex)["USDT"] == (
        D(10000) - D("0.05") + 1 - D("0.0101"),
        D(10000) - D("0.05") + 1 - D("0.0101") - D("52.5525"),
        D("52.5525"),
    )


def test_leverage_one_locks_the_full_notional() -> None:
    ex = exchange(usdt="100", leverage="1")
    ex.on_trade(trade("100", 1))
    with pytest.raises(VenueRejected):
        ex.place(ACCT, order("sell", "100", "1"))  # 100 + 0.05 > 100
    ex.place(ACCT, order("sell", "100", "0.99"))  # 99 + 0.0495
    assert held(ex)["USDT"][2] == D("99.0495")


# -------------------------------------------------------------- edges, kinds
def test_market_orders_lock_at_a_margin_over_the_last_trade_and_need_one() -> None:
    ex = exchange()
    for side in ("buy", "sell"):
        with pytest.raises(VenueRejected) as exc:
            ex.place(ACCT, order(side, None, "1", order_type="market"))
        assert exc.value.reason == "no_market_price"
    ex.on_trade(trade("100", 1))
    ex.place(ACCT, order("sell", None, "1", order_type="market"))
    assert held(ex)["USDT"][2] == D("52.5") + D("0.0525")  # at 105: 105 / 2 + 5 bps


def test_a_perpetual_market_is_perpetual_for_a_spot_account() -> None:
    ex = exchange(kind="spot")
    ex.on_trade(trade("2000", 1, symbol="ETHUSDT"))
    ex.place(ACCT, order("sell", "2000", "1", trigger=1, symbol="ETHUSDT"))  # no ETH needed
    (fill,) = ex.on_trade(trade("2001", 2, symbol="ETHUSDT"))
    assert fill.market_kind == "perpetual"
    assert held(ex)["ETHUSDT-PERP"] == (D(-1), D(-1), D(0))
    # and a spot market stays spot: a sell needs BTC
    with pytest.raises(VenueRejected) as exc:
        ex.place(ACCT, order("sell", "100", "1"))
    assert exc.value.reason == "insufficient_balance" and "BTC" in exc.value.message


def test_positions_move_only_by_fills_and_leverage_is_at_least_one() -> None:
    ex = exchange()
    with pytest.raises(ValueError, match="position"):
        ex.adjust(ACCT, "BTCUSDT-PERP", D(1))
    with pytest.raises(ValueError, match="leverage"):
        exchange(leverage="0.5")


# --------------------------------------------------------------- pure arithmetic
@pytest.mark.parametrize(
    ("position", "side", "qty", "claimed", "grows"),
    [
        ("0", "buy", "2", "0", "2"),  # flat: all of it opens
        ("3", "buy", "2", "0", "2"),  # same side: adds
        ("3", "sell", "2", "0", "0"),  # reduces
        ("3", "sell", "5", "0", "2"),  # flips: 3 close, 2 open
        ("3", "sell", "2", "2", "1"),  # 2 already claimed by earlier sells
        ("-3", "buy", "4", "3", "4"),  # all claimed
        ("-3", "sell", "1", "9", "1"),  # claims on the same side as the position do not matter
    ],
)
def test_increasing_qty(position: str, side: str, qty: str, claimed: str, grows: str) -> None:
    assert increasing_qty(D(position), side, D(qty), D(claimed)) == D(grows)  # type: ignore[arg-type]


def test_apply_fill_short_side_and_flip_back() -> None:
    q = D("0.0000001")
    p = PerpPosition()
    assert apply_fill(p, "sell", D(2), D(100), q) == 0
    assert apply_fill(p, "sell", D(2), D(110), q) == 0  # short 4 @ 105
    assert apply_fill(p, "buy", D(1), D(100), q) == D(5)  # short gains when price falls
    assert apply_fill(p, "buy", D(5), D(120), q) == D(-45)  # closes 3 @ 120 from 105
    assert (p.qty, p.open_cost, p.realized_pnl) == (D(2), D(240), D(-40))


def test_accounts_file_market_kind_and_leverage(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(
        "accounts:\n"
        "  - {id: dave-perp, user: dave, market_kind: perpetual, leverage: '5'}\n"
        "  - {id: alice-paper, user: alice}\n"
    )
    dave, alice = load_accounts(path)
    assert (dave.market_kind, dave.leverage) == ("perpetual", D(5))
    assert (alice.market_kind, alice.leverage) == ("spot", D(1))
    path.write_text(
        "accounts:\n  - {id: x, user: x, leverage: '0.5'}\n  - {id: y, user: y, leverage: '200'}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_accounts(path)
    assert "accounts[0].leverage" in str(exc.value) and "accounts[1].leverage" in str(exc.value)


# ---------------------------------------------------------------- invariants
fill_steps = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.decimals(min_value=D("0.00001"), max_value=D(3), places=5),
        st.decimals(min_value=D("0.01"), max_value=D(100000), places=2),
    ),
    min_size=1,
    max_size=25,
)


@given(fill_steps, st.sampled_from(["1", "3", "7.5"]))
@settings(max_examples=150, deadline=None)
def test_venue_equals_journal_and_pnl_adds_up(steps: list, leverage: str) -> None:
    """After any fills: venue totals equal the journal's sums exactly; realized plus
    unrealized P&L equals the fills' cash flows plus the position marked at the last
    price (rounding of cost shares cancels); with no open orders, locked is the margin."""
    ex = exchange(usdt="1000000000", leverage=leverage)
    ex.on_trade(trade("100", 0))
    fills: list[VenueFill] = []
    for ts, (side, qty, price) in enumerate(steps, start=1):
        ex.place(ACCT, order(side, None, str(qty), trigger=ts - 1, order_type="market"))
        (fill,) = ex.on_trade(trade(price, ts))  # a market order fills at the next trade
        fills.append(fill)
        totals = {a: t for a, (t, _, _) in held(ex).items()}
        assert journal_of(fills, usdt="1000000000") == totals
        position = ex.positions(ACCT)["BTCUSDT"]
        cash = sum(((-f.qty if f.side == "buy" else f.qty) * f.price for f in fills), D(0))
        assert position.realized_pnl + position.unrealized_pnl(price) == cash + position.qty * price
        assert totals["BTCUSDT-PERP"] == position.qty
        assert held(ex)["USDT"][2] == position.margin >= abs(position.open_cost) / D(leverage)

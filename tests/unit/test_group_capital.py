"""A strategy group's shared ``total_capital`` (docs/strategies.md, "Group capital cap"):
the arithmetic of what a group commits, the check, the membership, and the bot file."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from textwrap import dedent

import pytest

from tradebus.common.config import ConfigError
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import PlaceOrder
from tradebus.common.order_status import OrderStatus
from tradebus.engine.group_capital import GroupCaps, GroupMember, committed_quote
from tradebus.engine.risk import check_group_capital
from tradebus.engine.risk_state import RiskState
from tradebus.ledger.rows import OrderRow
from tradebus.strategies.botfile import load_specs

CATALOG = MarketCatalog.load(default_markets_path())
BTC = CATALOG.get("binance", "BTCUSDT")
ALICE, PAPER = UserId("alice"), AccountId("alice-paper")


def row(source: str, side: str, price: str | None, qty: str, filled: str = "0") -> OrderRow:
    return OrderRow(
        user_id=ALICE, intent_id=IntentId(f"{source}:{side}:{price}"), account_id=PAPER,
        source=source, client_order_id=1, venue_order_id=None, symbol="BTCUSDT", side=side,
        order_type="limit" if price else "market", price=None if price is None else D(price),
        qty=D(qty), filled_qty=D(filled), status=OrderStatus.ACCEPTED, reason=None,
        trigger_ts=None,
    )  # fmt: skip


def buy(price: str | None, qty: str, side: str = "buy") -> PlaceOrder:
    return PlaceOrder(
        intent_id=IntentId("x"), account=PAPER, symbol="BTCUSDT", side=side,  # type: ignore[arg-type]
        qty=D(qty), price=None if price is None else D(price),
        order_type="limit" if price else "market",
    )  # fmt: skip


def test_committed_is_open_buys_remaining_notional_plus_the_bots_positions_cost() -> None:
    risk = RiskState()
    risk.on_fill(PAPER, BTC, False, ("buy", D("0.01"), D(60000), D("0.6"), "USDT"), 0, "s1")
    risk.on_fill(PAPER, BTC, False, ("buy", D("0.01"), D(58000), D("0.58"), "USDT"), 0, "s2")
    risk.on_fill(PAPER, BTC, False, ("sell", D("0.005"), D(61000), D("0.3"), "USDT"), 0, "s2")
    risk.on_fill(PAPER, BTC, False, ("buy", D("1"), D(60000), D(0), "USDT"), 0, "manual")
    bots = frozenset({"s1", "s2"})
    positions = risk.source_positions(PAPER, bots)
    assert sorted(p.open_cost for p in positions) == [D(290), D(600)]
    rows = [
        row("s1", "buy", "59000", "0.01", filled="0.004"),  # 354 still open
        row("s2", "buy", None, "0.01"),  # a market buy: at the last price, 600
        row("s2", "sell", "62000", "0.005"),  # sells commit nothing
        row("other", "buy", "50000", "1"),  # not the group's
    ]
    assert committed_quote(rows, positions, bots, lambda s: D(60000)) == D(354 + 600 + 290 + 600)
    assert committed_quote(rows, positions, bots, lambda s: None) == D(354 + 290 + 600)


def test_a_buy_that_would_cross_total_capital_is_refused_sells_pass() -> None:
    assert check_group_capital(buy("50000", "0.002"), "dual", D(1000), D(900), None) is None
    refused = check_group_capital(buy("50000", "0.00201"), "dual", D(1000), D(900), None)
    assert refused is not None and refused.reason == "group_capital"
    assert refused.message == (
        "group dual commits 900 of its total_capital 1000; this buy of 100.50000 would take"
        " it to 1000.50000"
    )
    assert check_group_capital(buy("50000", "1", "sell"), "dual", D(1000), D(5000), None) is None
    market = check_group_capital(buy(None, "0.001"), "dual", D(1000), D(900), D(60000))
    assert market is None
    unknown = check_group_capital(buy(None, "0.001"), "dual", D(1000), D(900), None)
    assert unknown is not None and "no last trade price" in unknown.message


def test_membership_is_per_user_account_and_group_and_the_lowest_cap_wins() -> None:
    caps = GroupCaps()
    member = GroupMember(user=ALICE, account=PAPER, group="dual", total_capital=D(1000))
    caps.set("s1", member)
    caps.set("s2", GroupMember(user=ALICE, account=PAPER, group="dual", total_capital=D(900)))
    caps.set(
        "other", GroupMember(user=ALICE, account=AccountId("x"), group="dual", total_capital=D(5))
    )
    group = caps.of(ALICE, PAPER, "s1")
    assert group is not None
    assert (group.group, group.total_capital, group.bots) == ("dual", D(900), {"s1", "s2"})
    assert caps.of(ALICE, PAPER, "manual") is None
    assert caps.of(UserId("bob"), PAPER, "s1") is None  # bob's intents are never alice's bot
    caps.set("s2", None)
    again = caps.of(ALICE, PAPER, "s1")
    assert again is not None and (again.total_capital, again.bots) == (D(1000), {"s1"})


def test_total_capital_is_a_group_setting_of_the_bot_file(tmp_path: Path) -> None:
    path = tmp_path / "bots.yaml"
    ladder = (
        'strategy: ladder, symbol: BTCUSDT, total_quote: "600", order_count: 3,'
        ' max_drop_pct: "3", take_profit_pct: "1"'
    )
    path.write_text(
        dedent(f"""
        defaults: {{venue: binance}}
        strategies:
          dual: {{{ladder}, total_capital: "1000"}}
        users:
          - {{user: alice, account: alice-paper, strategies: {{dual: [{{name: a}}, {{name: b}}]}}}}
        """)
    )
    specs = load_specs(path, CATALOG)
    assert [(s.id, s.group, s.total_capital) for s in specs] == [
        ("alice-dual-a", "dual", D(1000)),
        ("alice-dual-b", "dual", D(1000)),
    ]
    path.write_text(
        dedent(f"""
        defaults: {{venue: binance, total_capital: "5"}}
        strategies:
          dual: {{{ladder}, total_capital: "-1"}}
        users:
          - {{user: alice, account: alice-paper, strategies: {{dual: {{total_capital: "9"}}}}}}
        """)
    )
    with pytest.raises(ConfigError) as bad:
        load_specs(path, CATALOG)
    lines = [line.strip() for line in str(bad.value).splitlines()[1:]]
    assert lines == [  # in the order of the file's lines, each at its line
        f"{path}:2: defaults.total_capital: a strategy group's setting: set it under"
        " strategies.<group>",
        f"{path}:4: strategies.dual.total_capital: must be > 0 (got -1)",
        f"{path}:6: users[0].strategies.dual.total_capital: a strategy group's setting: set it"
        " under strategies.<group>",
    ]

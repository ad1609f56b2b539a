"""The arithmetic of an account's sweep at start (docs/strategies.md, "Sweep leftover
assets at start"): what is sold, and what is left and why."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from tradebus.common.config import ConfigError
from tradebus.common.ids import AccountId
from tradebus.common.markets import Market
from tradebus.common.messages import AssetBalance
from tradebus.engine.accounts import AtStart, load_accounts
from tradebus.execution.account_start import bot_holdings, plan_sweep
from tradebus.ledger.rows import BookedFill

SOL = Market(
    symbol="SOL_USDC",
    base="SOL",
    quote="USDC",
    tick_size=D("0.01"),
    step_size=D("0.01"),
    min_qty=D("0.01"),
)
BTC = Market(
    symbol="BTC_USDC",
    base="BTC",
    quote="USDC",
    tick_size=D("0.1"),
    step_size=D("0.00001"),
    min_qty=D("0.00001"),
)
ETH = Market(
    symbol="ETH_USDC",
    base="ETH",
    quote="USDC",
    tick_size=D("0.01"),
    step_size=D("0.0001"),
    min_notional=D("5"),
)
MARKETS = {"SOL": SOL, "BTC": BTC, "ETH": ETH}


def bal(asset: str, free: str) -> AssetBalance:
    return AssetBalance(asset=asset, total=D(free), free=D(free), locked=D(0))


def fill(source: str, symbol: str, side: str, qty: str, fee: str, fee_asset: str) -> BookedFill:
    return BookedFill(
        account_id=AccountId("a"), symbol=symbol, side=side, price=D(1), qty=D(qty), fee=D(fee),
        fee_asset=fee_asset, recorded_ns=0, source=source,
    )  # fmt: skip


def test_bot_holdings_count_bots_fills_net_of_base_fees_and_not_manual_ones() -> None:
    fills = [
        fill("bot-a", "BTC_USDC", "buy", "0.002", "0.000002", "BTC"),
        fill("bot-b", "BTC_USDC", "buy", "0.001", "0.06", "USDC"),
        fill("bot-a", "BTC_USDC", "sell", "0.0005", "0.03", "USDC"),
        fill("manual", "SOL_USDC", "buy", "3", "0.003", "SOL"),
        fill("bot-a", "XYZ_USDC", "buy", "1", "0", "USDC"),  # no such market: left out
    ]
    by_symbol = {m.symbol: m for m in MARKETS.values()}
    assert bot_holdings(fills, by_symbol.get) == {"BTC": D("0.002498")}


def test_sweep_sells_what_no_bot_holds_above_the_minimum_and_says_why_it_leaves_the_rest() -> None:
    balances = [
        bal("USDC", "1000"),
        bal("SOL", "5.129"),  # floored to 5.12: 768 USDC
        bal("BTC", "0.003"),  # a bot holds 0.0025: 0.0005 left, 30 USDC
        bal("ETH", "0.0015"),  # 4.5 USDC, under 10
        bal("DOGE", "100"),  # no DOGE_USDC market
        bal("ADA", "0"),
    ]
    prices = {"SOL": D(150), "BTC": D(60000), "ETH": D(3000)}
    lines = plan_sweep(balances, {"BTC": D("0.0025")}, MARKETS, prices, AtStart(sweep_assets=True))
    assert [(x.asset, x.verdict, x.qty, x.value) for x in lines] == [
        ("SOL", "sell", D("5.12"), D("768.00")),
        ("BTC", "sell", D("0.0005"), D("30.0000")),
        ("ETH", "below_minimum", D(0), D("4.5")),
        ("DOGE", "no_market", D(0), D(0)),
    ]
    # every BTC is the bots'; a higher minimum leaves SOL; no price: left
    tight = AtStart(sweep_assets=True, sweep_min_value=D(800))
    lines = plan_sweep(balances[:3], {"BTC": D("0.004")}, MARKETS, {"SOL": D(150)}, tight)
    assert [(x.asset, x.verdict) for x in lines] == [
        ("SOL", "below_minimum"),
        ("BTC", "held_by_bots"),
    ]
    lines = plan_sweep(balances[1:2], {}, MARKETS, {}, AtStart(sweep_assets=True))
    assert [(x.asset, x.verdict) for x in lines] == [("SOL", "no_price")]
    # the market's own minimum notional wins over a lower sweep_min_value
    low = AtStart(sweep_assets=True, sweep_min_value=D(1))
    lines = plan_sweep([bal("ETH", "0.0015")], {}, MARKETS, {"ETH": D(3000)}, low)
    assert [(x.asset, x.verdict) for x in lines] == [("ETH", "below_minimum")]


def test_bad_at_start_and_reconciliation_settings_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(
        "accounts:\n  - {id: a, user: u, at_start: {sweep_min_value: '-1', sweep_quote: 'U SD'}}\n"
    )
    with pytest.raises(ConfigError) as bad:
        load_accounts(path)
    assert "accounts[0].at_start.sweep_min_value: must be >= 0 (got -1)" in str(bad.value)
    assert "accounts[0].at_start.sweep_quote: must match" in str(bad.value)
    path.write_text(
        "accounts:\n  - {id: a, user: u, market_kind: perpetual, at_start: {sweep_assets: true}}\n"
    )
    with pytest.raises(ConfigError, match=r"accounts\[0\].at_start.sweep_assets: only for spot"):
        load_accounts(path)
    path.write_text("accounts:\n  - {id: a, user: u, at_start: {cancel_open_orders: some}}\n")
    with pytest.raises(ConfigError, match=r"at_start.cancel_open_orders"):
        load_accounts(path)
    path.write_text("accounts:\n  - {id: a, user: u, reconciliation: {enabled: 'no way'}}\n")
    with pytest.raises(ConfigError, match=r"reconciliation.enabled"):
        load_accounts(path)

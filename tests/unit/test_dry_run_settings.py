"""The dry-run settings of a bot (``execute_trades``, ``dry_run_wallet``): bot-level
fields of the bot file at any layer, validated with the field named; a change of
either restarts the bot fresh (its simulated venue starts anew)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from textwrap import dedent

import msgspec
import pytest

from tradebus.common.config import ConfigError
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.strategies.botfile import load_specs
from tradebus.strategies.registry import BotSpec, spec_problems
from tradebus.strategy.supervisor import identity

CATALOG = MarketCatalog.load(default_markets_path())
LADDER = 'symbol: BTCUSDT, total_quote: "1000", order_count: 5, max_drop_pct: "1"'


def load(tmp_path: Path, text: str) -> list[BotSpec]:
    path = tmp_path / "bots.yaml"
    path.write_text(dedent(text))
    return load_specs(path, CATALOG)


def test_execute_trades_defaults_to_true_and_is_set_at_any_layer(tmp_path: Path) -> None:
    specs = load(
        tmp_path,
        f"""
        defaults: {{venue: binance, take_profit_pct: "1"}}
        strategies:
          btc: {{strategy: ladder, {LADDER}}}
        users:
          - {{user: alice, account: alice-paper, strategies: {{btc: {{}}}}}}
          - {{user: bob, account: bob-paper, execute_trades: false, strategies: {{btc: {{}}}}}}
          - user: carol
            account: carol-paper
            strategies: {{btc: {{execute_trades: false, dry_run_wallet: {{USDT: "500"}}}}}}
        """,
    )
    got = {s.user: (s.execute_trades, s.dry_run_wallet) for s in specs}
    assert got == {
        "alice": (True, {}),
        "bob": (False, {}),
        "carol": (False, {"USDT": Decimal(500)}),
    }
    assert all("execute_trades" not in s.params for s in specs)  # a bot field, not a param


def test_bad_dry_run_settings_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(
            tmp_path,
            f"""
            defaults: {{venue: binance, take_profit_pct: "1"}}
            strategies:
              btc: {{strategy: ladder, {LADDER}}}
            users:
              - {{user: alice, account: alice-paper,
                  strategies: {{btc: {{execute_trades: "maybe"}}}}}}
            """,
        )
    assert "users[0].strategies.btc.execute_trades: Expected `bool`" in str(err.value)
    spec = BotSpec(
        id=BotId("alice-btc"),
        user=UserId("alice"),
        account=AccountId("alice-paper"),
        strategy="ladder",
        venue="binance",
        symbol="BTCUSDT",
        params={
            "total_quote": "1000",
            "order_count": 5,
            "max_drop_pct": "1",
            "take_profit_pct": "1",
        },
        execute_trades=False,
        dry_run_wallet={"USDT": Decimal(-1), "bad.asset": Decimal(1)},
    )
    assert spec_problems(spec, CATALOG) == [
        ("dry_run_wallet.USDT", "must be a finite amount >= 0 (got -1)"),
        ("dry_run_wallet", "asset must match ^[A-Za-z0-9_-]{1,64}$ (got 'bad.asset')"),
    ]
    live = msgspec.structs.replace(spec, execute_trades=True, dry_run_wallet={"USDT": Decimal(1)})
    assert spec_problems(live, CATALOG) == [
        ("dry_run_wallet", "only for a dry run: set execute_trades: false")
    ]


def test_switching_dry_run_restarts_the_bot_fresh() -> None:
    spec = BotSpec(
        id=BotId("a"),
        user=UserId("alice"),
        account=AccountId("alice-paper"),
        strategy="ladder",
        venue="binance",
    )
    dry = msgspec.structs.replace(spec, execute_trades=False)
    funded = msgspec.structs.replace(dry, dry_run_wallet={"USDT": Decimal(5)})
    assert len({identity(spec), identity(dry), identity(funded)}) == 3

"""The strategy catalogue: strategies come from entry points of ``tradebus.strategies``.

The built-in four are declared by ``tradebus-strategies`` and the grid bot by
``examples/grid-bot``, both installed; plug-ins installed for a test
(:mod:`tests.support.plugins`) show every rule checked at load, each refusal
naming the package and the entry point, and that a broken plug-in leaves the
other strategies usable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.plugins import broken_plugins, fresh_catalog, install_plugin
from tradebus.backtest.setup import SetupError, make_setup
from tradebus.common.config import ConfigError
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.strategies.botfile import load_specs
from tradebus.strategies.builtin import LADDER, SPREAD
from tradebus.strategies.catalog import StrategyCatalog, StrategyKind, kind_problems
from tradebus.strategies.core import BotBase
from tradebus.strategies.registry import BotSpec, build_bot, spec_problems
from tradebus_grid import GRID
from tradebus_grid.params import GridParams
from tradebus_grid.state import GridState

MARKETS = MarketCatalog.load(default_markets_path())
BROKEN = "of package tradebus-broken 0.1"


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StrategyCatalog]:
    """The installed strategies plus ``tradebus-broken``'s."""
    monkeypatch.syspath_prepend(str(broken_plugins(tmp_path / "site")))
    with fresh_catalog() as catalog:
        yield catalog


def test_the_built_ins_and_the_grid_come_from_their_packages_entry_points() -> None:
    with fresh_catalog() as catalog:
        assert catalog.names() == ["grid", "ladder", "martingale", "spread", "volume"]
        assert catalog.builtin == {"ladder", "martingale", "spread", "volume"}
        assert catalog.get("grid") is GRID and catalog.get("ladder") is LADDER
        assert catalog.broken == {} and catalog.problems == ()


def test_each_broken_plugin_is_named_and_kept_out(broken: StrategyCatalog) -> None:
    assert broken.names() == ["badstatus", "grid", "ladder", "martingale", "spread", "volume"]
    assert set(broken.broken) == {"missing", "raises", "notakind", "loose", "needsfield",
                                  "nanstate"}  # fmt: skip
    for name, message in broken.broken.items():
        assert message.startswith(f"strategy plug-in {name!r} (entry point {name} = "), message
        assert BROKEN in message, message
    assert broken.unknown("missing").endswith(
        "failed to load: ModuleNotFoundError: No module named 'tradebus_no_such_module'"
    )
    assert broken.unknown("raises").endswith(
        "failed to load: RuntimeError: no API key in the environment"
    )
    assert broken.unknown("notakind").endswith(
        "breaks the rules of a strategy: is a dict, not a tradebus.strategies.catalog.StrategyKind"
    )
    assert broken.unknown("loose").endswith(
        "params: LooseParams must be frozen (msgspec.Struct, frozen=True)"
    )
    assert broken.unknown("needsfield").endswith(
        "bot: NeedsFieldBot.state_type (NeedsField): every field needs a default (a snapshot "
        "taken before it was added must load); none for counter"
    )
    assert broken.unknown("nanstate").endswith(
        "bot: NaNBot.state_type (NaNState) restores unequal to its snapshot"
    )
    assert broken.unknown("nobody") == (
        "unknown strategy 'nobody' (known: badstatus, grid, ladder, martingale, spread, volume)"
    )


def test_a_name_clash_keeps_the_built_in_and_refuses_a_second_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = install_plugin(
        tmp_path / "site",
        "tradebus-clash",
        {"ladder": "tradebus_grid:GRID", "grid": "tradebus_grid:GRID"},
        {},
    )
    monkeypatch.syspath_prepend(str(site))
    with fresh_catalog() as catalog:
        assert catalog.get("ladder") is LADDER  # the built-in wins
        assert "grid" not in catalog  # two packages declare it: neither is taken
        assert catalog.names() == ["ladder", "martingale", "spread", "volume"]
        clash = "strategy plug-in 'ladder' (entry point ladder = tradebus_grid:GRID of package "
        assert f"{clash}tradebus-clash 0.1): 'ladder' is a built-in strategy; rename it" in (
            catalog.problems
        )
        assert "also declared by entry point grid = tradebus_grid:GRID of package" in (
            catalog.unknown("grid")
        )


def test_kind_problems_of_a_core_that_is_not_a_bot() -> None:
    class Half(BotBase[GridParams, GridState]):  # no on_trade, on_quote...
        state_type = GridState

    assert kind_problems(StrategyKind(GridParams, Half)) == [  # type: ignore[type-abstract]
        "bot: test_kind_problems_of_a_core_that_is_not_a_bot.<locals>.Half does not implement "
        "flatten, on_order_event, on_quote, on_stop, on_trade, status"
    ]
    assert kind_problems(StrategyKind(dict, GRID.bot, "BTCUSDT")) == [  # type: ignore[arg-type]
        "params: <class 'dict'> is not a msgspec.Struct class",
        "symbols: 'BTCUSDT' is not callable",
    ]
    assert kind_problems(StrategyKind(GridParams, int)) == [  # type: ignore[arg-type]
        "bot: <class 'int'> is not a subclass of tradebus.strategies.core.BotBase"
    ]


def test_a_bot_of_a_broken_plugin_is_a_problem_at_its_yaml_path(
    broken: StrategyCatalog, tmp_path: Path
) -> None:
    path = tmp_path / "bots.yaml"
    path.write_text(
        "defaults: {venue: binance, symbol: BTCUSDT}\n"
        "strategies:\n  mine: {strategy: raises}\n"
        "users:\n  - {user: alice, account: alice-paper, strategies: {mine: {}}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_specs(path, MARKETS)
    assert str(err.value).splitlines()[1:] == [
        f"  {path}:3: strategies.mine.strategy: strategy plug-in 'raises' (entry point raises = "
        f"tradebus_raises:KIND {BROKEN}) failed to load: RuntimeError: no API key in the "
        "environment"
    ]
    spec = BotSpec(
        id=BotId("a"),
        user=UserId("alice"),
        account=AccountId("alice-paper"),
        strategy="raises",
        venue="binance",
        symbol="BTCUSDT",
    )
    assert spec_problems(spec, MARKETS) == [("strategy", broken.broken["raises"])]
    with pytest.raises(ValueError, match="strategy: strategy plug-in 'raises'"):
        build_bot(spec, MARKETS)  # the host logs this bot and starts the others
    with pytest.raises(SetupError) as setup:
        make_setup("raises", {"symbol": "BTCUSDT"})
    assert setup.value.problems == [("strategy", broken.broken["raises"])]


def test_the_backtest_trades_the_symbols_a_plugin_names() -> None:
    """A two-market plug-in (here the spread core under another name) backtests on the
    symbols its ``symbols()`` gives, as a built-in spread does."""
    catalog = StrategyCatalog(kinds={"pair": SPREAD})
    raw = {
        "symbol_a": "BTCUSDT",
        "symbol_b": "ETHUSDT",
        "leg_quote": "1000",
        "entry_spread_pct": "0.03",
        "take_profit": {"mode": "reversion", "exit_spread_pct": "0.015"},
        "tick_size": "0.01",
        "step_size": "0.0001",
        "balances": {"USDT": "10000"},
    }
    setup = make_setup("pair", raw, catalog)
    assert setup.symbols == ("BTCUSDT", "ETHUSDT")
    assert [m.symbol for m in setup.markets] == ["BTCUSDT", "ETHUSDT"]


class _Touchy(GridParams, frozen=True, kw_only=True, forbid_unknown_fields=True):
    def problems(self) -> list[tuple[str, str]]:
        raise RuntimeError("bug in the plug-in")


def test_a_plugin_whose_validation_raises_is_a_problem_not_a_crash() -> None:
    catalog = StrategyCatalog(kinds={"touchy": StrategyKind(_Touchy, GRID.bot)})
    spec = BotSpec(
        id=BotId("a"),
        user=UserId("alice"),
        account=AccountId("alice-paper"),
        strategy="touchy",
        venue="binance",
        symbol="BTCUSDT",
        params={"lower_price": "1", "upper_price": "2", "grid_levels": 2, "quote_per_level": "9"},
    )
    assert spec_problems(spec, MARKETS, catalog) == [
        ("params", "touchy: checking the parameters raised RuntimeError('bug in the plug-in')")
    ]

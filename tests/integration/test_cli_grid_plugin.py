"""``tradebus bots apply --dry-run`` validates bots of a strategy users wrote themselves.

The grid bot of ``examples/grid-bot`` is installed as a plug-in: a good file
applies, each bad grid parameter is named at the YAML path that set it (as
for the built-ins), and a bot naming a broken plug-in is named with the
package and entry point that failed, with no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import tradebus
from tests.support.plugins import broken_plugins, fresh_catalog
from tradebus.strategies.catalog import StrategyCatalog

GRID_BOTS = """
defaults: {{venue: binance}}
strategies:
  grid:
    symbol: BTCUSDT
    lower_price: "60000"
    upper_price: "{upper}"
    grid_levels: {levels}
    quote_per_level: "50"
users:
  - user: alice
    account: alice-paper
    strategies: {{grid: {{quote_per_level: "{quote}"}}}}
"""


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StrategyCatalog]:
    """The installed strategies plus ``tradebus-broken``'s (tests/support/plugins.py)."""
    monkeypatch.syspath_prepend(str(broken_plugins(tmp_path / "site")))
    with fresh_catalog() as catalog:
        yield catalog


async def test_a_grid_bot_file_is_validated_with_the_path_of_each_bad_parameter(
    nats_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ("--nats-url", nats_url)
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GRID_BOTS.format(upper="62000", levels=11, quote="60"))
    bad.write_text(GRID_BOTS.format(upper="59000", levels=1, quote="-5"))
    code, out, _ = await tradebus(capsys, "bots", "apply", "-f", str(good), "--dry-run", *url)
    assert code == 0, out
    assert out.splitlines()[-1] == f"would apply {good}: 1 added, 0 changed, 0 removed, 0 unchanged"
    code, out, err = await tradebus(capsys, "bots", "apply", "-f", str(bad), "--dry-run", *url)
    assert code == 2 and out == ""
    assert err.splitlines()[1:] == [
        f"  {bad}:7: strategies.grid.upper_price: must be above lower_price 60000 (got 59000)",
        f"  {bad}:8: strategies.grid.grid_levels: must be between 2 and 200 (got 1)",
        f"  {bad}:13: users[0].strategies.grid.quote_per_level: must be > 0 (got -5)",
    ]


async def test_a_bot_of_a_broken_plugin_is_named_with_its_package_and_entry_point(
    broken: StrategyCatalog, nats_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bots.yaml"
    path.write_text(
        "defaults: {venue: binance, symbol: BTCUSDT}\n"
        "strategies:\n  mine: {strategy: needsfield}\n  grid: {lower_price: '1', "
        "upper_price: '2', grid_levels: 2, quote_per_level: '50'}\n"
        "users:\n  - {user: alice, account: alice-paper, strategies: {mine: {}, grid: {}}}\n"
    )
    code, out, err = await tradebus(
        capsys, "bots", "apply", "-f", str(path), "--dry-run", "--nats-url", nats_url
    )
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.splitlines()[1:] == [
        f"  {path}:3: strategies.mine.strategy: strategy plug-in 'needsfield' "
        "(entry point needsfield = tradebus_broken:NEEDS_FIELD of package tradebus-broken 0.1) "
        "breaks the rules of a "
        "strategy: bot: NeedsFieldBot.state_type (NeedsField): every field needs a default "
        "(a snapshot taken before it was added must load); none for counter"
    ]


async def test_tradebus_strategies_lists_each_strategy_and_each_broken_plugin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_catalog():
        code, out, err = await tradebus(capsys, "strategies")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["STRATEGY", "KIND", "FROM"]
    assert [line.split()[:2] for line in lines[2:]] == [
        ["grid", "plug-in"],
        ["ladder", "built-in"],
        ["martingale", "built-in"],
        ["spread", "built-in"],
        ["volume", "built-in"],
    ]
    assert lines[2].endswith(
        "entry point grid = tradebus_grid:GRID of package tradebus-example-grid 0.1.0"
    )
    monkeypatch.syspath_prepend(str(broken_plugins(tmp_path / "site")))
    with fresh_catalog():
        code, out, err = await tradebus(capsys, "strategies")
    assert code == 1 and len(out.splitlines()) == 8  # badstatus loads
    assert sorted(line.split()[4] for line in err.splitlines()) == [
        "'loose'", "'missing'", "'nanstate'", "'needsfield'", "'notakind'", "'raises'",
    ]  # fmt: skip
    assert all(
        line.startswith("tradebus strategies: strategy plug-in '") for line in err.splitlines()
    )
    assert "of package tradebus-broken 0.1) failed to load: RuntimeError" in err

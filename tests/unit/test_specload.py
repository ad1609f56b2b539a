"""A host's bot file read in a forked child: the same specs, or the same errors, as in
process; the host's own peak memory does not grow with the file's YAML tree."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from tradebus.common.config import ConfigError
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.strategies.botfile import load_specs
from tradebus.strategy.specload import load_specs_apart


async def test_the_child_reads_the_same_specs_and_the_host_keeps_no_yaml_tree(
    tmp_path: Path,
) -> None:
    catalog = MarketCatalog.load(default_markets_path())
    bots = tmp_path / "bots.yaml"
    users = [
        f"  - {{user: u{u:03d}, account: u{u:03d}-paper, strategies: {{"
        + ", ".join(f"l{k}: {{total_quote: '{500 + 100 * k}'}}" for k in range(10))
        + "}}"
        for u in range(50)
    ]
    group = (
        "{strategy: ladder, symbol: BTCUSDT, order_count: 3, max_drop_pct: '1',"
        " take_profit_pct: '1'}"
    )
    groups = [f"  l{k}: {group}" for k in range(10)]
    bots.write_text(
        "\n".join(["defaults: {venue: binance}", "strategies:", *groups, "users:", *users])
    )
    tracemalloc.start()
    try:
        specs = await load_specs_apart(str(bots), catalog)
        _, apart_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        here = load_specs(bots, catalog)
        _, here_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert specs == here and len(specs) == 500
    # what this process allocated: the specs' JSON and structs, not the YAML tree
    assert apart_peak < here_peak / 3, (apart_peak, here_peak)


async def test_an_invalid_file_gives_every_error_at_its_line(tmp_path: Path) -> None:
    catalog = MarketCatalog.load(default_markets_path())
    bots = tmp_path / "bots.yaml"
    bots.write_text(
        "defaults: {venue: binance}\n"
        "strategies:\n"
        "  l: {strategy: ladder, symbol: BTCUSDT, total_quote: 'x', order_count: 3}\n"
        "users:\n"
        "  - {user: u1, account: u1-paper, strategies: {l: {}}}\n"
    )
    with pytest.raises(ConfigError) as in_process:
        load_specs(bots, catalog)
    with pytest.raises(ConfigError) as apart:
        await load_specs_apart(str(bots), catalog)
    assert str(apart.value) == str(in_process.value)
    assert f"{bots}:3" in str(apart.value)
    with pytest.raises(ConfigError, match="cannot read"):
        await load_specs_apart(str(tmp_path / "missing.yaml"), catalog)

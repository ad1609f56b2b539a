"""The layered bot file (seed 004): defaults -> strategies.<group> -> users, and its errors.

Every error names the YAML path that set the bad value, and every problem of
a file is reported at once, in one :class:`ConfigError`.
"""

from __future__ import annotations

import re
from pathlib import Path
from textwrap import dedent

import pytest

from tradebus.common.config import ConfigError
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.strategies.botfile import load_specs
from tradebus.strategies.registry import BotSpec, build_bot

REPO = Path(__file__).resolve().parents[2]
CATALOG = MarketCatalog.load(default_markets_path())
KNOWN = "grid, ladder, martingale, spread, volume"  # the built-ins and examples/grid-bot

LADDER = 'symbol: BTCUSDT, total_quote: "1000", order_count: 5, max_drop_pct: "1"'
VOLUME = (
    'symbol: ETHUSDT, single_trade_quote: "100", trade_interval_seconds: "5", '
    'buy_offset_pct: "0.01", sell_profit_pct: "0.02", target_volume: "5000"'
)
SPREAD = (
    'symbol_a: BTCUSDT, symbol_b: ETHUSDT, leg_quote: "100", entry_spread_pct: "0.1", '
    'adds: [{spread_pct: "0.2", multiplier: "1"}, {spread_pct: "0.3", multiplier: "2"}], '
    'take_profit: {mode: reversion, exit_spread_pct: "0.05"}'
)


def load(tmp_path: Path, text: str) -> list[BotSpec]:
    path = tmp_path / "bots.yaml"
    path.write_text(dedent(text))
    return load_specs(path, CATALOG)


def problems(tmp_path: Path, text: str) -> list[str]:
    """The problem lines of the one ConfigError the file raises, without their
    ``<file>:<line>: `` (each line must start with the file's name)."""
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text)
    head, *lines = str(exc.value).splitlines()
    file = str(tmp_path / "bots.yaml")
    n = len(lines)
    assert head == f"{file}: invalid bot file ({n} error{'s' if n != 1 else ''}):"
    assert all(line.startswith(f"  {file}") for line in lines), lines
    return [re.sub(r"^:\d+", "", line.strip()[len(file) :])[2:] for line in lines]


# ------------------------------------------------------------------ layering


LAYERED = f"""
defaults:
  venue: binance
  cancel_on_exit: false
  take_profit_pct: "0.5"
  min_order_quote: "5"
strategies:
  ladder:
    {{{LADDER}, take_profit_pct: "0.8"}}
  eth-vol:
    {{strategy: volume, {VOLUME}}}
users:
  - user: alice
    account: alice-paper
    strategies:
      ladder: {{total_quote: "2000", max_drop_pct: 2.5}}
      eth-vol:
  - user: bob
    account: bob-paper
    enabled: false
    strategies:
      ladder:
        - {{name: btc}}
        - {{name: eth, symbol: ETHUSDT, enabled: true, take_profit_pct: "1"}}
        - {{id: bob-custom, account: bob-other, order_count: 3}}
      eth-vol: {{single_trade_quote: "50"}}
"""


def test_layers_merge_and_the_user_wins(tmp_path: Path) -> None:
    specs: dict[str, BotSpec] = {s.id: s for s in load(tmp_path, LAYERED)}
    assert list(specs) == [
        "alice-ladder",
        "alice-eth-vol",
        "bob-ladder-btc",
        "bob-ladder-eth",
        "bob-custom",
        "bob-eth-vol",
    ]
    alice = specs["alice-ladder"]
    assert (alice.user, alice.account, alice.venue, alice.symbol) == (
        "alice",
        "alice-paper",
        "binance",
        "BTCUSDT",
    )
    assert (alice.strategy, alice.group, alice.enabled) == ("ladder", "ladder", True)
    assert alice.params == {
        "cancel_on_exit": False,  # defaults
        "take_profit_pct": "0.8",  # the group's beats defaults'
        "min_order_quote": "5",  # defaults
        "total_quote": "2000",  # the user's beats the group's
        "order_count": 5,
        "max_drop_pct": "2.5",  # a YAML float becomes exact text
    }

    # `strategy:` names the kind; the group keeps its own name (a shared volume target)
    vol = specs["alice-eth-vol"]
    assert (vol.strategy, vol.group, vol.symbol) == ("volume", "eth-vol", "ETHUSDT")
    assert "take_profit_pct" not in vol.params  # a default only reaches strategies that have it
    assert (vol.params["min_order_quote"], vol.params["single_trade_quote"]) == ("5", "100")
    assert specs["bob-eth-vol"].params["single_trade_quote"] == "50"
    assert specs["bob-eth-vol"].params["target_volume"] == "5000"

    # user-level account/venue/enabled apply to all of the user's bots; the entry beats them
    btc, eth, custom = specs["bob-ladder-btc"], specs["bob-ladder-eth"], specs["bob-custom"]
    assert (btc.enabled, btc.account, btc.symbol, btc.params["take_profit_pct"]) == (
        False,
        "bob-paper",
        "BTCUSDT",
        "0.8",
    )
    assert (eth.enabled, eth.symbol, eth.params["take_profit_pct"]) == (True, "ETHUSDT", "1")
    assert (custom.enabled, custom.account, custom.params["order_count"]) == (
        False,
        "bob-other",
        3,
    )
    assert custom.group == "ladder" and "name" not in custom.params and "id" not in custom.params
    for spec in specs.values():  # every resolved bot builds
        build_bot(spec, CATALOG)


def test_a_group_applies_only_to_the_users_that_list_it(tmp_path: Path) -> None:
    specs = load(
        tmp_path,
        f"""
        defaults: {{venue: binance, take_profit_pct: "1"}}
        strategies:
          ladder: {{{LADDER}}}
          volume: {{{VOLUME}}}
        users:
          - {{user: alice, account: alice-paper, strategies: {{volume: {{}}}}}}
          - {{user: bob, account: bob-paper, strategies: {{}}}}
        """,
    )
    assert [s.id for s in specs] == ["alice-volume"]


def test_the_shipped_bot_file_resolves_to_eleven_bots() -> None:
    specs: dict[str, BotSpec] = {
        s.id: s for s in load_specs(REPO / "deploy/config/bots.yaml", CATALOG)
    }
    assert sorted(specs) == sorted(
        [
            "alice-ladder-btc",
            "alice-ladder-eth",
            "alice-martingale-btc",
            "alice-volume-eth",
            "bob-ladder-btc",
            "bob-ladder-eth",
            "bob-volume-eth",
            "carol-ladder-btc",
            "carol-martingale-btc",
            "carol-volume-eth",
            "dave-spread-btc-eth",
        ]
    )
    assert all(s.venue == "binance" and s.params["cancel_on_exit"] is True for s in specs.values())
    bob = specs["bob-ladder-btc"]
    assert (bob.account, bob.strategy, bob.group, bob.symbol) == (
        "bob-paper",
        "ladder",
        "ladder-btc",
        "BTCUSDT",
    )
    assert bob.params == {
        "cancel_on_exit": True,
        "total_quote": "1500",
        "order_count": 4,
        "max_drop_pct": "0.3",  # the group's
        "increment_pct": "50",
        "take_profit_pct": "0.05",
        "no_fill_restart_minutes": "2",
    }
    carol = specs["carol-martingale-btc"]
    assert carol.params["base_quote"] == "200" and carol.params["max_safety_orders"] == 6
    assert carol.params["safety_quote"] == "200" and carol.params["stop_loss_pct"] == "1"
    volumes = [s for s in specs.values() if s.strategy == "volume"]
    assert {s.group for s in volumes} == {"volume-eth"}
    assert {s.id: s.params["single_trade_quote"] for s in volumes} == {
        "alice-volume-eth": "100",
        "bob-volume-eth": "50",
        "carol-volume-eth": "100",
    }
    dave = specs["dave-spread-btc-eth"]
    assert (dave.account, dave.symbol, dave.strategy) == ("dave-perp", None, "spread")
    assert dave.params["adds"][1] == {"spread_pct": "0.1", "multiplier": "2"}
    for spec in specs.values():
        build_bot(spec, CATALOG)


def test_a_plain_bots_list_still_loads(tmp_path: Path) -> None:
    specs = load(
        tmp_path,
        """
        bots:
          - id: alice-btc
            user: alice
            account: alice-paper
            strategy: ladder
            venue: binance
            symbol: BTCUSDT
            params: {total_quote: "1000", order_count: 4, max_drop_pct: "1",
                     take_profit_pct: "0.5"}
          - {id: bob-eth, user: bob, account: bob-paper, strategy: ladder, venue: binance,
             symbol: ETHUSDT, enabled: false,
             params: {total_quote: "500", order_count: 2, max_drop_pct: "2",
                      take_profit_pct: "1"}}
        """,
    )
    assert [(s.id, s.group_name, s.enabled) for s in specs] == [
        ("alice-btc", "ladder", True),
        ("bob-eth", "ladder", False),
    ]
    assert problems(
        tmp_path,
        """
        bots:
          - {id: a, user: alice, account: alice-paper, strategy: ladder, venue: binance,
             symbol: BTCUSDT, params: {total_quote: "0", order_count: 4, max_drop_pct: "1",
                                       take_profit_pct: "0.5"}}
          - {id: a, user: alice, account: alice-paper, strategy: rocket, venue: binance}
        """,
    ) == [
        "bots[0].params.total_quote: must be > 0",
        "bots[1].id: duplicate bot id 'a'",
        f"bots[1].strategy: unknown strategy 'rocket' (known: {KNOWN})",
    ]


# -------------------------------------------------------------------- errors


def test_the_issues_example_names_the_users_yaml_path(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        f"""
        defaults: {{venue: binance}}
        strategies:
          volume: {{{VOLUME}}}
        users:
          - {{user: alice, account: alice-paper, strategies: {{volume: {{}}}}}}
          - {{user: bob, account: bob-paper, strategies: {{volume: {{single_trade_quote: "50"}}}}}}
          - user: carol
            account: carol-paper
            strategies:
              volume:
                single_trade_quote: "0"
        """,
    )
    assert lines == ["users[2].strategies.volume.single_trade_quote: must be > 0"]


def test_every_problem_is_reported_at_once_at_its_yaml_path(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        f"""
        defaults:
          venue: binance
          foo: 1
        strategies:
          ladder: {{{LADDER.replace("1000", "0")}, take_profit_pct: "0.5"}}
          typo: {{strategy: laddr, symbol: BTCUSDT}}
          ladder-eth: {{strategy: ladder, symbol: ETHUSDT, total_quote: "500",
                        max_drop_pct: "1", take_profit_pct: "0.5"}}
          mart: {{strategy: martingale, symbol: DOGEUSDT, base_quote: "100",
                  safety_quote: "100", max_safety_orders: 2, price_deviation_pct: "1",
                  take_profit_pct: "1"}}
          spread:
            {{{SPREAD}}}
        users:
          - user: alice
            account: alice-paper
            strategies: {{ladder: {{}}, typo: {{}}, nosuch: {{}}}}
          - user: bob
            account: bob-paper
            strategies:
              ladder-eth: {{}}
              ladder: {{order_count: "abc", total_quote: "10"}}
              mart: {{}}
          - user: carol
            account: carol-paper
            strategies:
              spread: {{adds: [{{spread_pct: "0.2", multiplier: "1"}},
                               {{spread_pct: "0.15", multiplier: "1"}}]}}
              ladder: [{{name: a, id: shared, total_quote: "10"}},
                       {{name: b, id: shared, total_quote: "10"}}]
        """,
    )
    assert sorted(lines) == sorted(
        [
            "defaults.foo: unknown field (not a bot field or a parameter)",
            f"strategies.typo.strategy: unknown strategy 'laddr' (known: {KNOWN})",
            "users[0].strategies.nosuch: no strategy group 'nosuch' under strategies",
            "strategies.ladder.total_quote: must be > 0",
            "users[1].strategies.ladder-eth.order_count: required (bot bob-ladder-eth: set it "
            "in the user's entry, strategies.ladder-eth or defaults)",
            "users[1].strategies.ladder.order_count: Expected `int`, got `str` (value 'abc')",
            "strategies.mart.symbol: no market binance:DOGEUSDT in the markets file",
            "users[2].strategies.spread.adds[1].spread_pct: "
            "must be greater than adds[0].spread_pct",
            "users[2].strategies.ladder[1].id: duplicate bot id 'shared'",
        ]
    )
    assert len(lines) == len(set(lines))  # a group's error shows once, not once per bot


def _without(flow: str, override: str) -> str:
    """The ``k: v`` items of ``flow`` whose key ``override`` does not set (a YAML mapping
    holds each key once)."""
    keys = {item.split(":")[0] for item in override.split(", ") if item}
    return ", ".join(item for item in flow.split(", ") if item.split(":")[0] not in keys)


def yaml_with(group: str = "", user: str = "", extra_users: str = "") -> str:
    """A valid file (alice's ladder and spread) with ``group`` added to strategies.ladder
    and ``user`` to alice's ladder entry."""
    return f"""
    defaults: {{venue: binance, take_profit_pct: "0.5"}}
    strategies:
      ladder: {{{_without(LADDER, group)}{", " + group if group else ""}}}
      spread: {{strategy: spread, {SPREAD}}}
    users:
      - user: alice
        account: alice-paper
        strategies:
          ladder: {{{user}}}
          spread: {{}}
    {extra_users}
    """


@pytest.mark.parametrize(
    ("group", "user", "expected"),
    [
        pytest.param(
            'total_quote: "-5"', "", "strategies.ladder.total_quote: must be > 0", id="group value"
        ),
        pytest.param(
            "",
            'order_count: "abc"',
            "users[0].strategies.ladder.order_count: Expected `int`, got `str` (value 'abc')",
            id="type error",
        ),
        pytest.param(
            "",
            "order_count: 0",
            "users[0].strategies.ladder.order_count: must be between 1 and 200",
            id="user value",
        ),
        pytest.param(
            "colour: red",
            "",
            "strategies.ladder.colour: unknown parameter of ladder",
            id="unknown parameter",
        ),
        pytest.param(
            "",
            "symbol: DOGEUSDT",
            "users[0].strategies.ladder.symbol: no market binance:DOGEUSDT in the markets file",
            id="unknown market",
        ),
        pytest.param(
            "",
            "venue: kraken",
            "users[0].strategies.ladder.venue: no venue kraken in the markets file",
            id="unknown venue",
        ),
        pytest.param(
            "",
            "enabled: maybe",
            "users[0].strategies.ladder.enabled: Expected `bool`, got `str` (value 'maybe')",
            id="bot field type",
        ),
        pytest.param(
            "",
            "id: two words",
            "users[0].strategies.ladder.id: must match ^[A-Za-z0-9_-]{1,64}$ (got 'two words')",
            id="bad id",
        ),
        pytest.param(
            "",
            "id: manual",
            "users[0].strategies.ladder.id: 'manual' is reserved for manual orders",
            id="reserved id",
        ),
    ],
)
def test_one_problem_named_by_its_yaml_path(
    tmp_path: Path, group: str, user: str, expected: str
) -> None:
    assert problems(tmp_path, yaml_with(group, user)) == [expected]


def test_spread_parameters_map_to_their_yaml_paths(tmp_path: Path) -> None:
    text = yaml_with().replace("spread: {}", 'spread: {symbol_b: DOGEUSDT, leg_quote: "abc"}')
    assert problems(tmp_path, text) == [
        "users[0].strategies.spread.leg_quote: Invalid decimal string (value 'abc')",
        "users[0].strategies.spread.symbol_b: no market binance:DOGEUSDT in the markets file",
    ]  # a required parameter that does not convert stops no other check
    text = yaml_with().replace(
        "spread: {}",
        'spread: {symbol_b: DOGEUSDT, take_profit: {mode: reversion, exit_spread_pct: "1"}}',
    )
    assert problems(tmp_path, text) == [
        "users[0].strategies.spread.take_profit.exit_spread_pct: "
        "must be >= 0 and < entry_spread_pct",
        "users[0].strategies.spread.symbol_b: no market binance:DOGEUSDT in the markets file",
    ]
    text = yaml_with().replace(
        "spread: {}", 'spread: {adds: [{spread_pct: "0.2", multiplier: "x"}]}'
    )
    assert problems(tmp_path, text) == [
        "users[0].strategies.spread.adds[0].multiplier: Invalid decimal string (value 'x')"
    ]


def test_missing_values_say_where_to_set_them(tmp_path: Path) -> None:
    text = yaml_with().replace('take_profit_pct: "0.5"', "").replace("account: alice-paper", "")
    where = "(bot alice-{0}: set it in the user's entry, strategies.{0} or defaults)"
    at = "users[0].strategies"
    assert problems(tmp_path, text) == [
        f"{at}.ladder.account: required {where.format('ladder')}",
        f"{at}.ladder.take_profit_pct: required {where.format('ladder')}",
        f"{at}.spread.account: required {where.format('spread')}",
    ]  # a missing bot field hides none of the bot's other errors; each at the bot's entry
    text = yaml_with().replace('take_profit_pct: "0.5"', "").replace("symbol: BTCUSDT, ", "")
    assert problems(tmp_path, text) == [
        f"{at}.ladder.take_profit_pct: required {where.format('ladder')}",
    ]
    text = yaml_with().replace("symbol: BTCUSDT, ", "")
    assert problems(tmp_path, text) == [
        f"{at}.ladder.symbol: required {where.format('ladder')}",
    ]


def test_structural_errors_of_users(tmp_path: Path) -> None:
    extra = """
      - {user: bob, account: bob-paper, colour: red, strategies: {ladder: {}, grid: {}}}
      - {account: carol-paper, strategies: {ladder: {}}}
      - {user: dave, account: dave-paper, strategies: {ladder: [{name: a}, 5]}}
      - {user: erin, account: erin-paper, strategies: [ladder]}
      - {user: "frank smith", account: frank-paper, strategies: {ladder: {}}}
    """
    lines = problems(tmp_path, yaml_with(extra_users=extra))
    pattern = "^[A-Za-z0-9_-]{1,64}$"
    assert lines == [
        "users[1].colour: unknown field "
        "(known: ['account', 'enabled', 'execute_trades', 'strategies', 'user', 'venue'])",
        "users[1].strategies.grid: no strategy group 'grid' under strategies",
        "users[2].user: required",
        "users[3].strategies.ladder[1]: expected a mapping of bot settings",
        "users[4].strategies: expected a mapping of strategy groups",
        f"users[5].strategies.ladder: must match {pattern} (got 'frank smith-ladder')",
        f"users[5].user: must match {pattern} (got 'frank smith')",
    ]


def test_duplicate_ids_name_the_second_entry(tmp_path: Path) -> None:
    # two unnamed entries of one group resolve to the same id
    text = yaml_with().replace("ladder: {}", "ladder: [{}, {}]")
    assert problems(tmp_path, text) == [
        "users[0].strategies.ladder[1]: duplicate bot id 'alice-ladder'"
    ]
    # an explicit id that another bot derives
    text = yaml_with().replace("spread: {}", "spread: {id: alice-ladder}")
    assert problems(tmp_path, text) == [
        "users[0].strategies.spread.id: duplicate bot id 'alice-ladder'"
    ]


def test_unknown_strategy_kind_and_unreadable_files(tmp_path: Path) -> None:
    text = yaml_with().replace("strategy: spread,", "")
    assert load(tmp_path, text)[1].strategy == "spread"  # the group's name is the kind
    text = yaml_with().replace("spread: {strategy: spread,", "spread: {strategy: spreads,")
    assert problems(tmp_path, text) == [
        f"strategies.spread.strategy: unknown strategy 'spreads' (known: {KNOWN})"
    ]
    text = yaml_with().replace("spread: {strategy: spread,", "rocket: {")
    assert problems(tmp_path, text) == [
        f"strategies.rocket: unknown strategy 'rocket' (known: {KNOWN})",
        "users[0].strategies.spread: no strategy group 'spread' under strategies",
    ]
    with pytest.raises(ConfigError, match="strategy: unknown field"):
        load(tmp_path, "strategy: {}\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_specs(tmp_path / "missing.yaml", CATALOG)

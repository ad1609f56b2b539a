"""Bot, accounts and markets files checked as a whole (issue 20, first-run item 9).

Every error of a file is reported at once, one line each as ``<file>:<line>: <path>:
<message>`` (types, ranges, unknown fields and markets together); an empty file and a
YAML syntax error name the file and the line; ``tradebus config check`` does it offline
with exit 0/1; the JSON Schemas of the files are exported, committed, and validate
every shipped file.
"""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import jsonschema
import pytest
import yaml

from tradebus.cli.configctl import SCHEMAS, kind_of
from tradebus.cli.main import main
from tradebus.common.configfile import FileErrors
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.engine.accounts import load_accounts
from tradebus.strategies.botfile import load_specs

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "deploy" / "config" / "schema"
CATALOG = MarketCatalog.load(default_markets_path())

BOTS_THREE_KINDS = """\
defaults: {venue: binance}
strategies:
  ladder:
    symbol: BTCUSDT
    total_quote: "1000"
    order_count: 5
    max_drop_pct: "1"
    take_profit_pct: "-1"
    increment_pct: lots
users:
  - user: alice
    account: alice-paper
    strategies:
      ladder: {symbol: DOGEUSDT, colour: red}
"""

ACCOUNTS_THREE_KINDS = """\
accounts:
  - id: alice-paper
    user: alice
    leverage: lots
    maker_fee_bps: "-1"
    risk: {max_open_orders: 0, max_open_order: 5}
  - user: bob
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(dedent(text))
    return path


def errors(exc: pytest.ExceptionInfo[FileErrors]) -> list[str]:
    """The error lines, checking the head line counts them."""
    head, *lines = str(exc.value).splitlines()
    n = len(lines)
    assert head == f"{exc.value.file}: invalid {exc.value.kind} file ({n} errors):"
    assert [line.strip() for line in lines] == exc.value.lines
    return exc.value.lines


def test_a_bot_file_reports_every_error_at_once_each_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bots.yaml", BOTS_THREE_KINDS)
    with pytest.raises(FileErrors) as exc:
        load_specs(path, CATALOG)
    assert errors(exc) == [  # a type error, a range, an unknown market and an unknown field
        f"{path}:8: strategies.ladder.take_profit_pct: must be > 0",
        f"{path}:9: strategies.ladder.increment_pct: Invalid decimal string (value 'lots')",
        f"{path}:14: users[0].strategies.ladder.colour: unknown parameter of ladder",
        f"{path}:14: users[0].strategies.ladder.symbol: no market binance:DOGEUSDT in the"
        " markets file",
    ]


def test_an_accounts_file_reports_every_error_at_once_each_at_its_line(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "accounts.yaml", ACCOUNTS_THREE_KINDS)
    with pytest.raises(FileErrors) as exc:
        load_accounts(path)
    assert errors(exc) == [
        f"{path}:4: accounts[0].leverage: Invalid decimal string (value 'lots')",
        f"{path}:5: accounts[0].maker_fee_bps: must be >= 0 and < 10000",
        f"{path}:6: accounts[0].risk.max_open_order: unknown field (did you mean"
        " `max_open_orders`?)",
        f"{path}:6: accounts[0].risk.max_open_orders: must be >= 1",
        f"{path}:7: accounts[1].id: required",
    ]


def test_a_markets_file_reports_every_error_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "markets.yaml",
        """\
        venues:
          binance:
            - {symbol: BTCUSDT, base: BTC, quote: USDT, tick_size: "0", step_size: "1"}
            - {symbol: ETHUSDT, base: ETH, quote: USDT, tick_size: abc, step_size: "1"}
            - {symbol: "A B", quote: USDT, tick_size: "1", step_size: "1"}
        """,
    )
    with pytest.raises(FileErrors) as exc:
        MarketCatalog.load(path)
    assert errors(exc) == [
        f"{path}:3: venues.binance[0].tick_size: must be > 0 (got 0)",
        f"{path}:4: venues.binance[1].tick_size: Invalid decimal string (value 'abc')",
        f"{path}:5: venues.binance[2].base: required",
        f"{path}:5: venues.binance[2].symbol: invalid symbol 'A B'",
    ]  # a missing field stops no other check


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", ":1: empty file (no YAML mapping in it)", id="empty"),
        pytest.param("# only a comment\n", ":1: empty file (no YAML mapping in it)", id="comment"),
        pytest.param(
            "accounts:\n  - id: a\n    user: [b\n  - id: c\n",
            ":4: YAML syntax error: did not find expected ',' or ']' (while parsing a flow"
            " sequence that starts at line 3)",
            id="syntax",
        ),
        pytest.param(
            "accounts:\n  - id: a\n    user: b\n    user: c\n",
            ":4: accounts[0].user: duplicate key (first at line 3)",
            id="duplicate key",
        ),
        pytest.param("- id: a\n", ": expected a mapping at the top, got list", id="a list"),
    ],
)
def test_an_unusable_file_names_the_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "accounts.yaml", text)
    with pytest.raises(FileErrors) as exc:
        load_accounts(path)
    assert exc.value.lines == [f"{path}{expected}"]
    bots = write(tmp_path, "bots.yaml", text.replace("accounts:", "bots:"))
    with pytest.raises(FileErrors) as exc:
        load_specs(bots, CATALOG)
    assert exc.value.lines == [f"{bots}{expected.replace('accounts[0]', 'bots[0]')}"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as done:
        main(argv)
    out = capsys.readouterr()
    assert out.err == ""
    code = done.value.code
    assert isinstance(code, int)
    return code, out.out.splitlines()


def test_config_check_prints_every_error_of_every_file_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bots = write(tmp_path, "bots.yaml", BOTS_THREE_KINDS)
    accounts = write(tmp_path, "accounts.yaml", ACCOUNTS_THREE_KINDS)
    empty = write(tmp_path, "empty.yaml", "")
    code, lines = run(["config", "check", str(bots), str(accounts), str(empty)], capsys)
    assert code == 1
    assert len(lines) == 4 + 5 + 1
    assert lines[0].startswith(f"{bots}:8: ") and lines[4].startswith(f"{accounts}:4: ")
    assert lines[-1] == f"{empty}:1: empty file (no YAML mapping in it)"

    shipped = [
        REPO / "deploy" / "config" / "bots.yaml",
        REPO / "deploy" / "config" / "accounts.yaml",
        REPO / "examples" / "grid-bot" / "bots.yaml",
        default_markets_path(),
    ]
    code, lines = run(["config", "check", *map(str, shipped)], capsys)
    assert (code, lines) == (
        0,
        [
            f"{shipped[0]}: ok (bot file, 11 bots)",
            f"{shipped[1]}: ok (accounts file, 4 accounts)",
            f"{shipped[2]}: ok (bot file, 2 bots)",
            f"{shipped[3]}: ok (markets file, 10 markets)",
        ],
    )


def test_config_check_takes_the_markets_among_its_files_and_a_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    markets = write(
        tmp_path,
        "m.yaml",
        'venues: {binance: [{symbol: DOGEUSDT, base: DOGE, quote: USDT, tick_size: "0.0001",'
        ' step_size: "1"}]}\n',
    )
    text = (
        BOTS_THREE_KINDS.replace('"-1"', '"1"').replace("lots", '"0"').replace(", colour: red", "")
    )
    bots = write(tmp_path, "b.yaml", text)  # alice's bot trades DOGEUSDT: in m.yaml only
    code, lines = run(["config", "check", str(bots), str(markets)], capsys)
    assert (code, lines) == (
        0,
        [f"{bots}: ok (bot file, 1 bot)", f"{markets}: ok (markets file, 1 market)"],
    )
    code, lines = run(["config", "check", str(bots)], capsys)  # the shipped markets
    assert (code, lines) == (
        1,
        [
            f"{bots}:14: users[0].strategies.ladder.symbol: no market binance:DOGEUSDT in the"
            " markets file"
        ],
    )
    code, lines = run(["config", "check", str(bots), "--markets", str(bots)], capsys)
    assert code == 1 and lines[-1] == f"{bots}: not checked: invalid markets file {bots}"
    unknown = write(tmp_path, "other.yaml", "name: x\n")
    code, lines = run(["config", "check", str(unknown)], capsys)
    assert code == 1 and "give --kind" in lines[0]
    code, lines = run(["config", "check", "--kind", "accounts", str(unknown)], capsys)
    assert (code, lines) == (
        1,
        [f"{unknown}:1: name: unknown field (known: accounts)", f"{unknown}: accounts: required"],
    )


def test_kind_by_content() -> None:
    assert kind_of({"accounts": []}) == "accounts"
    assert kind_of({"venues": {}}) == "markets"
    assert kind_of({"users": []}) == kind_of({"bots": []}) == "bots"
    assert kind_of({"other": 1}) is None and kind_of([1]) is None


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_the_committed_schema_is_the_generated_one(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run(["config", "schema", kind], capsys)
    committed = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text())
    assert code == 0
    assert json.loads("\n".join(lines)) == committed, (
        f"regenerate: tradebus config schema {kind} > deploy/config/schema/{kind}.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(committed)


SHIPPED = [
    ("bots", REPO / "deploy" / "config" / "bots.yaml"),
    ("bots", REPO / "examples" / "grid-bot" / "bots.yaml"),
    ("accounts", REPO / "deploy" / "config" / "accounts.yaml"),
    ("markets", default_markets_path()),
]


@pytest.mark.parametrize(("kind", "path"), SHIPPED, ids=[str(p.name) for _, p in SHIPPED])
def test_the_schemas_validate_the_shipped_files(kind: str, path: Path) -> None:
    schema = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text())
    data = yaml.safe_load(path.read_text())
    problems = [f"{e.json_path}: {e.message}" for e in _validator(schema).iter_errors(data)]
    assert problems == []
    first = path.read_text().splitlines()[0]
    if path.is_relative_to(REPO / "deploy") or path.is_relative_to(REPO / "examples"):
        named = (path.parent / first.removeprefix("# yaml-language-server: $schema=")).resolve()
        assert named == SCHEMA_DIR / f"{kind}.schema.json"  # what an editor validates it with


def _validator(schema: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def test_the_schemas_flag_what_an_editor_should_underline() -> None:
    bots = json.loads((SCHEMA_DIR / "bots.schema.json").read_text())
    accounts = json.loads((SCHEMA_DIR / "accounts.schema.json").read_text())
    bad_bots = yaml.safe_load(BOTS_THREE_KINDS)
    found = {e.json_path for e in _validator(bots).iter_errors(bad_bots)}
    # the type error and the unknown field (ranges and markets are the loader's)
    assert found == {"$.strategies.ladder.increment_pct", "$.users[0].strategies.ladder"}
    grid = {"strategies": {"g": {"strategy": "grid", "order_count": 5}}}
    assert [e.json_path for e in _validator(bots).iter_errors(grid)] == ["$.strategies.g"]
    text = {"strategies": {"g": {"strategy": "ladder", "order_count": "5", "enabled": "true"}}}
    assert list(_validator(bots).iter_errors(text)) == []  # the loader takes text as well
    bad_accounts = yaml.safe_load(ACCOUNTS_THREE_KINDS)
    found = {e.json_path for e in _validator(accounts).iter_errors(bad_accounts)}
    assert found == {"$.accounts[0].leverage", "$.accounts[0].risk", "$.accounts[1]"}


def test_a_bot_missing_a_field_still_has_its_other_errors_reported(tmp_path: Path) -> None:
    text = BOTS_THREE_KINDS.replace("    account: alice-paper\n", "").replace(", colour: red", "")
    path = write(tmp_path, "bots.yaml", text)
    with pytest.raises(FileErrors) as exc:
        load_specs(path, CATALOG)
    assert errors(exc) == [
        f"{path}:8: strategies.ladder.take_profit_pct: must be > 0",
        f"{path}:9: strategies.ladder.increment_pct: Invalid decimal string (value 'lots')",
        f"{path}:13: users[0].strategies.ladder.account: required (bot alice-ladder: set it in"
        " the user's entry, strategies.ladder or defaults)",
        f"{path}:13: users[0].strategies.ladder.symbol: no market binance:DOGEUSDT in the"
        " markets file",
    ]


def test_a_layer_with_nothing_under_it_is_empty(tmp_path: Path) -> None:
    text = """\
    defaults:
    strategies:
      ladder:
    users:
      - user: alice
        account: alice-paper
        strategies: {ladder: }
    """
    path = write(tmp_path, "bots.yaml", text)
    with pytest.raises(FileErrors) as exc:
        load_specs(path, CATALOG)
    where = "(bot alice-ladder: set it in the user's entry, strategies.ladder or defaults)"
    assert errors(exc) == [  # what alice's bot lacks, all of it, at her entry's line
        f"{path}:7: users[0].strategies.ladder.{field}: required {where}"
        for field in ("venue", "total_quote", "order_count", "max_drop_pct", "take_profit_pct")
    ]


def test_config_check_reads_the_notifiers_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The notifications file (README "Notifications") is told by its keys and checked as
    the notifier reads it: the shipped one is valid, a bad mute kind is named, once."""
    shipped = REPO / "deploy" / "config" / "notifications.yaml"
    code, lines = run(["config", "check", str(shipped)], capsys)
    assert (code, lines) == (
        0,
        [f"{shipped}: ok (notifications file, 0 operator channels, 0 users)"],
    )
    good = write(
        tmp_path,
        "n.yaml",
        "operators: ['json://127.0.0.1:9/ops']\n"
        "users:\n  alice: {channels: ['json://127.0.0.1:9/a'], mute: [fill]}\n",
    )
    code, lines = run(["config", "check", str(good)], capsys)
    assert (code, lines) == (0, [f"{good}: ok (notifications file, 1 operator channel, 1 user)"])
    bad = write(tmp_path, "bad.yaml", "users:\n  alice: {channels: [], mute: [fills]}\n")
    code, lines = run(["config", "check", str(bad)], capsys)
    assert code == 1
    (line,) = lines
    assert line.startswith(f"{bad}: ") and "'fills'" in line and "mute" in line

"""Bad configuration: each service's real entry point fails at start, fast, naming the bad field.

The console scripts (``tradebus-execution``, ``tradebus-strategy``,
``tradebus-marketdata``, ``tradebus-reconciler``) run as processes with a bad
accounts, bots or markets file, or a bad ``TRADEBUS_*`` value. Each must exit
non-zero within seconds, say where the bad value is (``accounts[1].leverage``,
``TRADEBUS_METRICS_PORT``), and print no traceback.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tradebus.cli.processes import entry_point

START_LIMIT_SECONDS = 30.0
"""Generous on a loaded 2-core machine; a healthy failure takes about a second."""

ACCOUNTS_BAD_LEVERAGE = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "1000"}}
  - {id: dave-perp, user: dave, market_kind: perpetual, leverage: "lots", balances: {USDT: "1"}}
"""
ACCOUNTS_BAD_RISK = """
accounts:
  - {id: alice-paper, user: alice, risk: {max_open_orders: "many"}}
"""
BOTS_BAD_TOTAL = """
defaults: {venue: binance}
strategies:
  ladder:
    strategy: ladder
    symbol: BTCUSDT
    total_quote: "2000"
    order_count: 5
    max_drop_pct: "0.3"
    take_profit_pct: "0.08"
users:
  - user: alice
    account: alice-paper
    strategies:
      ladder: {total_quote: "lots"}
"""
MARKETS_BAD_TICK = """
venues:
  binance:
    - {symbol: BTCUSDT, base: BTC, quote: USDT, tick_size: "0.01", step_size: "0.00001"}
    - {symbol: ETHUSDT, base: ETH, quote: USDT, tick_size: "abc", step_size: "0.0001"}
"""

DB = "postgresql://tradebus@127.0.0.1:9/nope"

# (id, service, env, files {name: text}, what the output must name)
CASES = [
    (
        "execution-accounts-leverage",
        "execution",
        {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_ACCOUNTS_FILE": "@accounts.yaml"},
        {"accounts.yaml": ACCOUNTS_BAD_LEVERAGE},
        "accounts[1].leverage",
    ),
    (
        "execution-accounts-risk",
        "execution",
        {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_ACCOUNTS_FILE": "@accounts.yaml"},
        {"accounts.yaml": ACCOUNTS_BAD_RISK},
        "accounts[0].risk.max_open_orders",
    ),
    (
        "execution-accounts-missing",
        "execution",
        {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_ACCOUNTS_FILE": "/nope/accounts.yaml"},
        {},
        "/nope/accounts.yaml",
    ),
    (
        "execution-markets-tick",
        "execution",
        {
            "TRADEBUS_DATABASE_URL": DB,
            "TRADEBUS_ACCOUNTS_FILE": "@accounts.yaml",
            "TRADEBUS_MARKETS_FILE": "@markets.yaml",
        },
        {"accounts.yaml": "accounts: []\n", "markets.yaml": MARKETS_BAD_TICK},
        "venues.binance[1].tick_size",
    ),
    (
        "execution-metrics-port",
        "execution",
        {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_METRICS_PORT": "ninety"},
        {},
        "TRADEBUS_METRICS_PORT",
    ),
    (
        "execution-fetch-batch",
        "execution",
        {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_FETCH_BATCH": "many"},
        {},
        "TRADEBUS_FETCH_BATCH",
    ),
    (
        "execution-unknown-variable",
        "execution",
        {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_FETCH_BATHC": "64"},
        {},
        "TRADEBUS_FETCH_BATHC",
    ),
    (
        "strategy-bots-total-quote",
        "strategy",
        {"TRADEBUS_BOTS_FILE": "@bots.yaml"},
        {"bots.yaml": BOTS_BAD_TOTAL},
        "users[0].strategies.ladder.total_quote",
    ),
    (
        "strategy-lease-seconds",
        "strategy",
        {"TRADEBUS_LEASE_SECONDS": "ten"},
        {},
        "TRADEBUS_LEASE_SECONDS",
    ),
    (
        "marketdata-markets-tick",
        "marketdata",
        {"TRADEBUS_SYMBOLS": "BTCUSDT", "TRADEBUS_MARKETS_FILE": "@markets.yaml"},
        {"markets.yaml": MARKETS_BAD_TICK},
        "venues.binance[1].tick_size",
    ),
    (
        "marketdata-replay-speed",
        "marketdata",
        {"TRADEBUS_REPLAY_FILES": "@ticks.jsonl", "TRADEBUS_REPLAY_SPEED": "warp"},
        {"ticks.jsonl": ""},
        "TRADEBUS_REPLAY_SPEED",
    ),
    (
        "marketdata-feed",
        "marketdata",
        {"TRADEBUS_SYMBOLS": "BTCUSDT", "TRADEBUS_FEED": "kraken"},
        {},
        "TRADEBUS_FEED",
    ),
    (
        "reconciler-tolerances",
        "reconciler",
        {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_TOLERANCES": '{"BTC": "a lot"}'},
        {},
        "TRADEBUS_TOLERANCES",
    ),
    (
        "reconciler-tolerances-json",
        "reconciler",
        {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_TOLERANCES": "{BTC: 1"},
        {},
        "TRADEBUS_TOLERANCES",
    ),
    (
        "reconciler-interval",
        "reconciler",
        {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_INTERVAL_SECONDS": "hourly"},
        {},
        "TRADEBUS_INTERVAL_SECONDS",
    ),
]


def params() -> list:
    """The cases as ``pytest.param``s."""
    return [pytest.param(*c[1:], id=c[0]) for c in CASES]


@pytest.mark.parametrize(("service", "env", "files", "names"), params())
def test_a_bad_setting_stops_the_service_at_start_naming_it(
    service: str,
    env: dict[str, str],
    files: dict[str, str],
    names: str,
    nats_url: str,
    tmp_path: Path,
) -> None:
    output = start(service, env, files, nats_url, tmp_path)
    assert names in output, f"{names!r} not named in: {output[-2000:]}"


ACCOUNTS_THREE_ERRORS = """\
accounts:
  - id: alice-paper
    user: alice
    leverage: lots
    maker_fee_bps: "-1"
  - user: bob
"""
BOTS_THREE_ERRORS = BOTS_BAD_TOTAL.replace(
    'take_profit_pct: "0.08"', 'take_profit_pct: "-1"'
).replace('max_drop_pct: "0.3"', 'max_drop_pct: "0.3"\n    colour: red')


@pytest.mark.parametrize(
    ("service", "env", "name", "text", "expected"),
    [
        pytest.param(
            "execution",
            {"TRADEBUS_DATABASE_URL": DB, "TRADEBUS_ACCOUNTS_FILE": "@accounts.yaml"},
            "accounts.yaml",
            ACCOUNTS_THREE_ERRORS,
            [
                ":4: accounts[0].leverage: Invalid decimal string (value 'lots')",
                ":5: accounts[0].maker_fee_bps: must be >= 0 and < 10000",
                ":6: accounts[1].id: required",
            ],
            id="execution-accounts",
        ),
        pytest.param(
            "strategy",
            {"TRADEBUS_BOTS_FILE": "@bots.yaml"},
            "bots.yaml",
            BOTS_THREE_ERRORS,
            [
                ":10: strategies.ladder.colour: unknown parameter of ladder",
                ":11: strategies.ladder.take_profit_pct: must be > 0",
                ":16: users[0].strategies.ladder.total_quote: Invalid decimal string (value"
                " 'lots')",
            ],
            id="strategy-bots",
        ),
    ],
)
def test_a_bad_file_at_start_prints_every_error_one_line_each(
    service: str,
    env: dict[str, str],
    name: str,
    text: str,
    expected: list[str],
    nats_url: str,
    tmp_path: Path,
) -> None:
    output = start(service, env, {name: text}, nats_url, tmp_path)
    file = tmp_path / name
    assert f"{file}: invalid " in output and f"file ({len(expected)} errors):" in output
    found = [line.strip() for line in output.splitlines() if line.strip().startswith(f"{file}:")]
    assert found == [f"{file}{line}" for line in expected], output


def start(
    service: str, env: dict[str, str], files: dict[str, str], nats_url: str, tmp_path: Path
) -> str:
    """Run ``tradebus-<service>`` with ``env`` (``@<name>``: the path of file ``<name>`` of
    ``files``, written to ``tmp_path``); its output. Fails unless it exits non-zero, within
    :data:`START_LIMIT_SECONDS`, and without a traceback."""
    paths: dict[str, Path] = {}
    for name, text in files.items():
        paths[name] = tmp_path / name
        paths[name].write_text(text)
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBUS_")}
    full.update(TRADEBUS_NATS_URL=nats_url, TRADEBUS_METRICS_PORT="0")
    for key, value in env.items():  # "@<name>": the path of file <name>
        full[key] = str(paths[value[1:]]) if value.startswith("@") else value
    started = time.monotonic()
    try:
        done = subprocess.run(
            [entry_point(f"tradebus-{service}")],
            env=full,
            capture_output=True,
            text=True,
            timeout=START_LIMIT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"tradebus-{service} still running after {START_LIMIT_SECONDS}s: {out[-2000:]}")
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    print(f"\n{service} exit {done.returncode} in {took:.1f}s: {output.strip()[-400:]}")
    assert done.returncode != 0, output
    assert "Traceback" not in output, f"a traceback instead of a message: {output[-3000:]}"
    return output

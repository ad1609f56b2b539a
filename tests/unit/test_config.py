"""Settings from TRADEBUS_* variables: types, unknown keys, secrets and their redaction."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Annotated

import pytest

from tradebus.common.config import SECRET, ConfigError, Settings, load_settings, redacted
from tradebus.common.markets import MarketCatalog


class Demo(Settings, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    database_url: str = "postgresql://u@h/db"
    port: int = 9100
    symbols: list[str] = []
    tolerances: dict[str, D] = {}
    api_secret: Annotated[str, SECRET] = ""
    required: str


def test_values_are_converted_to_their_types() -> None:
    s = load_settings(
        Demo,
        {
            "TRADEBUS_REQUIRED": "x",
            "TRADEBUS_PORT": "8000",
            "TRADEBUS_SYMBOLS": "BTCUSDT, ETHUSDT",
            "TRADEBUS_TOLERANCES": '{"BTC": "0.0001"}',
            "PATH": "/bin",  # not ours: ignored
        },
    )
    assert (s.port, s.symbols, s.tolerances) == (8000, ["BTCUSDT", "ETHUSDT"], {"BTC": D("0.0001")})


def test_unknown_setting_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="TRADEBUS_PROT") as exc:
        load_settings(Demo, {"TRADEBUS_REQUIRED": "x", "TRADEBUS_PROT": "1"})
    assert "TRADEBUS_PORT" in str(exc.value)  # the known ones are listed


def test_bad_value_and_missing_setting_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="TRADEBUS_PORT"):
        load_settings(Demo, {"TRADEBUS_REQUIRED": "x", "TRADEBUS_PORT": "eighty"})
    with pytest.raises(ConfigError, match="missing required setting TRADEBUS_REQUIRED"):
        load_settings(Demo, {})


def test_secret_from_a_file_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    s = load_settings(
        Demo,
        {
            "TRADEBUS_REQUIRED": "x",
            "TRADEBUS_API_SECRET_FILE": str(secret),
            "TRADEBUS_DATABASE_URL": "postgresql://user:pa55word@db:5432/tradebus",
        },
    )
    assert s.api_secret == "hunter2"
    shown = repr(s) + str(s) + str(redacted(s))
    assert "hunter2" not in shown and "pa55word" not in shown
    assert "postgresql://user:***@db:5432/tradebus" in shown


def test_only_secrets_may_come_from_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="only secret fields"):
        load_settings(Demo, {"TRADEBUS_REQUIRED": "x", "TRADEBUS_NATS_URL_FILE": "/dev/null"})
    with pytest.raises(ConfigError, match="cannot read secret file"):
        load_settings(
            Demo, {"TRADEBUS_REQUIRED": "x", "TRADEBUS_API_SECRET_FILE": str(tmp_path / "no")}
        )


def test_markets_file_errors_name_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "markets.yaml"
    bad.write_text(
        "venues: {binance: [{symbol: BTCUSDT, base: BTC, quote: USDT,"
        ' tick_size: "0", step_size: "1"}]}'
    )
    with pytest.raises(ConfigError, match=r"venues.binance\[0\].tick_size: must be > 0"):
        MarketCatalog.load(bad)
    bad.write_text("venues: {binance: [{symbol: BTCUSDT}]}")
    with pytest.raises(ConfigError, match=r"markets.yaml.*base"):
        MarketCatalog.load(bad)

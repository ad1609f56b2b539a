"""The original volume bot's config file (seed 004) converted into a tradebus bot file.

The original (``config/trading_config.yaml``) has three layers, the last winning::

    global_settings:                   # defaults of every strategy
      default_buy_offset_percentage: 0.5
      default_sell_profit_percentage: 1.0
      default_trade_interval_seconds: 1
      default_single_trade_amount_usdt: 30
      max_concurrent_users: 10
      max_price_volatility_percentage: 5.0
    strategies:                        # a list; each one runs for its user_ids
      - strategy_id: koge_volume_boost
        strategy_name: KOGE 刷量策略
        enabled: true
        target_token: KOGE
        target_chain: BSC
        target_volume: 16384           # summed over all its users
        single_trade_amount_usdt: 30
        trade_interval_seconds: 1
        buy_offset_percentage: 0.5
        sell_profit_percentage: 1.0
        user_ids: [1, 2, 3]
    user_overrides:                    # per user and strategy
      - user_id: 1
        strategies: {koge_volume_boost: {single_trade_amount_usdt: 50}}

which map onto the bot file's ``defaults -> strategies -> users`` (README,
"Configuration") as: ``global_settings`` -> ``defaults`` (with ``venue``), each
strategy -> a ``volume`` group named by its ``strategy_id``, each user id -> a
user (named by the caller, ``user<id>`` otherwise) running the groups that list
it, with their overrides. Settings (:data:`SETTINGS`): the amounts per trade
(``*_usdt``) are ``single_trade_quote`` in the market's quote asset,
percentages stay percentages (``*_percentage`` -> ``*_pct``), and
``target_token`` becomes the symbol of the venue's market of that base asset
and the quote asset asked for. ``target_chain`` has no equivalent: on-chain
targets (BSC, Binance Alpha) are out of scope, and the bots trade the venue's
market instead. Every setting with no equivalent is named in a warning, never
dropped silently; one that this tradebus's :class:`VolumeParams` does not know
is a warning too (the parameter names are those of issue 19).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import msgspec

from tradebus.common.config import ConfigError
from tradebus.common.markets import MarketCatalog
from tradebus.strategies.volume.params import VolumeParams

VOLUME = "volume"

SETTINGS: dict[str, str] = {
    "single_trade_amount_usdt": "single_trade_quote",
    "trade_interval_seconds": "trade_interval_seconds",
    "buy_offset_percentage": "buy_offset_pct",
    "sell_profit_percentage": "sell_profit_pct",
    "target_volume": "target_volume",
    "strategy_name": "strategy_name",
    "max_concurrent_users": "max_concurrent_users",
    "max_price_volatility_percentage": "max_price_volatility_pct",
}
"""The original's setting -> the ``volume`` parameter it is (STRATEGIES.md §4, issue 19)."""

GLOBAL_SETTINGS: dict[str, str] = {
    "default_single_trade_amount_usdt": "single_trade_quote",
    "default_trade_interval_seconds": "trade_interval_seconds",
    "default_buy_offset_percentage": "buy_offset_pct",
    "default_sell_profit_percentage": "sell_profit_pct",
    "max_concurrent_users": "max_concurrent_users",
    "max_price_volatility_percentage": "max_price_volatility_pct",
}
"""The original's ``global_settings`` key -> the ``volume`` parameter it defaults."""

STRUCTURE = {"strategy_id", "enabled", "target_token", "target_chain", "user_ids"}
"""Keys of a strategy that place it rather than parameterize it."""


class UserMapping(NamedTuple):
    """Who the original's user id is in tradebus: a user name and their account."""

    user: str
    account: str


class Converted(NamedTuple):
    """A converted config: the layered bot file (plain YAML values) and the warnings,
    each ``<path in the original>: <what happened to it>``."""

    document: dict[str, Any]
    warnings: list[str]


def parse_user_mapping(text: str) -> tuple[str, UserMapping]:
    """``ID=NAME[:ACCOUNT]`` (``--user``) as ``(id, mapping)``; the account defaults to
    ``<NAME>-paper``.

    Raises
    ------
    ValueError
        If ``text`` is not of that form.
    """
    user_id, sep, rest = text.partition("=")
    name, _, account = rest.partition(":")
    if not sep or not user_id.strip() or not name.strip():
        raise ValueError(f"--user {text!r}: expected ID=NAME or ID=NAME:ACCOUNT")
    return user_id.strip(), UserMapping(name.strip(), account.strip() or f"{name.strip()}-paper")


def _number(value: Any, decimal: bool, where: str) -> Any:
    """A number of the original as the bot file writes it: a decimal parameter (money,
    percents, seconds) as text, a count as an integer."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if decimal:
        return f"{number}"
    if number != number.to_integral_value():
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    return int(number)


class _Converter:
    def __init__(
        self,
        catalog: MarketCatalog,
        venue: str,
        quote: str,
        users: dict[str, UserMapping],
    ) -> None:
        self.catalog = catalog
        self.venue = venue
        self.quote = quote
        self.users = users
        fields = msgspec.structs.fields(VolumeParams)
        self.known = {f.name for f in fields}
        self.decimals = {f.name for f in fields if f.type is Decimal}
        self.warnings: list[str] = []

    def param(self, target: dict[str, Any], name: str | None, value: Any, where: str) -> None:
        """Set the value at ``where`` of the original into ``target`` as the parameter
        ``name`` (None: the setting has no equivalent)."""
        if name is None:
            self.warnings.append(f"{where}: {value!r}: no equivalent in tradebus; not converted")
        elif name not in self.known:
            self.warnings.append(
                f"{where}: {value!r}: maps to volume parameter {name!r}, which this tradebus"
                " does not have; not converted"
            )
        elif name == "strategy_name":
            target[name] = str(value)
        else:
            target[name] = _number(value, name in self.decimals, where)

    def symbol(self, token: Any, where: str) -> str:
        """The native symbol of the venue's market ``<token>/<quote>``."""
        if not isinstance(token, str) or not token:
            raise ConfigError(f"{where}: expected a token symbol, got {token!r}")
        for market in self.catalog.venue_markets(self.venue):
            if market.base == token.upper() and market.quote == self.quote:
                return market.symbol
        raise ConfigError(
            f"{where}: {token!r}: no market {token.upper()}/{self.quote} on venue"
            f" {self.venue} in the markets file (add it there, or choose --venue/--quote)"
        )

    def user(self, user_id: Any, where: str) -> tuple[str, UserMapping]:
        if isinstance(user_id, bool) or not isinstance(user_id, int | str):
            raise ConfigError(f"{where}: expected a user id, got {user_id!r}")
        key = str(user_id)
        mapping = self.users.get(key)
        if mapping is None:
            mapping = UserMapping(f"user{key}", f"user{key}-paper")
            self.users[key] = mapping
            self.warnings.append(
                f"{where}: user {key} has no --user mapping: named {mapping.user!r},"
                f" account {mapping.account!r}"
            )
        return key, mapping

    def convert(self, raw: dict[str, Any]) -> Converted:
        defaults: dict[str, Any] = {"venue": self.venue}
        settings_key = "global_settings" if "global_settings" in raw else "global"
        for key, value in _mapping(raw.get(settings_key), settings_key).items():
            where = f"{settings_key}.{key}"
            self.param(defaults, GLOBAL_SETTINGS.get(key), value, where)
        strategies: dict[str, dict[str, Any]] = {}
        runs: dict[str, list[str]] = {}  # user id -> strategy ids, in order
        items = raw.get("strategies")
        if not isinstance(items, list):
            raise ConfigError(f"strategies: expected a list of strategies, got {items!r}")
        for i, item in enumerate(items):
            where = f"strategies[{i}]"
            block = _mapping(item, where)
            sid = block.get("strategy_id")
            if not isinstance(sid, str) or not sid:
                raise ConfigError(f"{where}.strategy_id: required (got {sid!r})")
            if sid in strategies:
                raise ConfigError(f"{where}.strategy_id: {sid!r} appears twice")
            group: dict[str, Any] = {"strategy": VOLUME}
            if "target_token" not in block:
                raise ConfigError(f"{where}.target_token: required")
            group["symbol"] = self.symbol(block["target_token"], f"{where}.target_token")
            if "target_chain" in block:
                self.warnings.append(
                    f"{where}.target_chain: {block['target_chain']!r}: on-chain targets are"
                    f" out of scope; the bots trade {group['symbol']} on {self.venue}"
                )
            if "enabled" in block:
                if not isinstance(block["enabled"], bool):
                    raise ConfigError(f"{where}.enabled: expected true or false")
                group["enabled"] = block["enabled"]
            for key, value in block.items():
                if key not in STRUCTURE:
                    self.param(group, SETTINGS.get(key), value, f"{where}.{key}")
            user_ids = block.get("user_ids", [])
            if not isinstance(user_ids, list):
                raise ConfigError(f"{where}.user_ids: expected a list of user ids")
            for j, user_id in enumerate(user_ids):
                key, _ = self.user(user_id, f"{where}.user_ids[{j}]")
                runs.setdefault(key, []).append(sid)
            strategies[sid] = group
        overrides = self.overrides(raw.get("user_overrides"), strategies, runs)
        users = []
        for key, sids in runs.items():
            mapping = self.users[key]
            entries = {sid: overrides.get((key, sid), {}) for sid in sids}
            users.append({"user": mapping.user, "account": mapping.account, "strategies": entries})
        for extra in sorted(set(raw) - {settings_key, "strategies", "user_overrides"}):
            self.warnings.append(f"{extra}: no equivalent in tradebus; not converted")
        document = {"defaults": defaults, "strategies": strategies, "users": users}
        return Converted(document, self.warnings)

    def overrides(
        self, items: Any, strategies: dict[str, Any], runs: dict[str, list[str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """``(user id, strategy id)`` -> the user's parameters of that strategy."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        if items is None:
            return out
        if not isinstance(items, list):
            raise ConfigError(f"user_overrides: expected a list, got {items!r}")
        for i, item in enumerate(items):
            where = f"user_overrides[{i}]"
            block = _mapping(item, where)
            if "user_id" not in block:
                raise ConfigError(f"{where}.user_id: required")
            key, _ = self.user(block["user_id"], f"{where}.user_id")
            for sid, values in _mapping(block.get("strategies"), f"{where}.strategies").items():
                at = f"{where}.strategies.{sid}"
                if sid not in strategies:
                    raise ConfigError(f"{at}: no strategy {sid!r} under strategies")
                if sid not in runs.get(key, []):
                    self.warnings.append(
                        f"{at}: user {key} is not in that strategy's user_ids; not converted"
                    )
                    continue
                params = out.setdefault((key, sid), {})
                for name, value in _mapping(values, at).items():
                    if name in STRUCTURE:
                        self.warnings.append(f"{at}.{name}: not a per-user setting; not converted")
                    else:
                        self.param(params, SETTINGS.get(name), value, f"{at}.{name}")
        return out


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return {str(k): v for k, v in value.items()}


def convert_volume_config(
    raw: Any,
    catalog: MarketCatalog,
    venue: str = "binance",
    quote: str = "USDT",
    users: dict[str, UserMapping] | None = None,
) -> Converted:
    """Convert the original's config (parsed YAML) into a layered bot file.

    ``venue`` and ``quote`` choose the market each ``target_token`` trades on (the
    catalog's market of that base and quote on that venue); ``users`` maps the
    original's user ids (as text) to tradebus users and accounts.

    Raises
    ------
    ConfigError
        Naming the path in the original and the value, if the layout is not the
        original's or a token has no market on the venue.
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            f"expected the original's mapping (global_settings, strategies...), got {raw!r}"
        )
    return _Converter(catalog, venue, quote.upper(), dict(users or {})).convert(raw)


def encode_bot_file(converted: Converted, source: str) -> bytes:
    """The converted file as YAML, headed by where it came from and its warnings."""
    head = [f"# converted from {source} by `tradebus import volume-config` (seed 004 layout)"]
    head += [f"# warning: {w}" for w in converted.warnings]
    return ("\n".join(head) + "\n").encode() + msgspec.yaml.encode(converted.document)

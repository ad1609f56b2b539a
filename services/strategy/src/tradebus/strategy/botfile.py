"""The bot file: which bots run, for whom, on which account and market, with what parameters.

YAML::

    bots:
      - id: alice-ladder-btc        # unique; a subject token (intent.<user>.<id>)
        user: alice
        account: alice-paper        # must belong to the user (execution checks)
        strategy: ladder
        venue: binance              # market data venue
        symbol: BTCUSDT             # native symbol, configured in the markets file
        params: {total_quote: "1000", order_count: 5, max_drop_pct: "0.3", take_profit_pct: "0.1"}

Every problem is reported with the path of the bad field
(``bots[2].params.total_quote: must be > 0``), all at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from tradebus.common.config import ConfigError, load_yaml
from tradebus.common.markets import MarketCatalog
from tradebus.common.subjects import MANUAL_SOURCE, TOKEN_PATTERN
from tradebus.strategy.core import BotContext, Strategy
from tradebus.strategy.ladder import LadderBot, LadderParams

STRATEGIES: dict[str, tuple[type, type]] = {"ladder": (LadderParams, LadderBot)}
"""Strategy name -> (parameter struct, bot class)."""


class BotSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One entry of the bot file, before its parameters are typed."""

    id: str
    user: str
    account: str
    strategy: str
    venue: str
    symbol: str
    params: dict[str, Any] = {}
    enabled: bool = True


class BotFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole bot file."""

    bots: list[BotSpec]


def build_bots(specs: list[BotSpec], catalog: MarketCatalog) -> list[Strategy]:
    """Validate every spec and build the enabled bots.

    Raises
    ------
    ConfigError
        Listing every problem, each as ``bots[i].<field>: <message>``.
    """
    problems: list[str] = []
    bots: list[Strategy] = []
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        where = f"bots[{i}]"
        for field in ("id", "user", "account", "venue", "symbol"):
            if not TOKEN_PATTERN.match(getattr(spec, field)):
                problems.append(f"{where}.{field}: must match {TOKEN_PATTERN.pattern}")
        if spec.id == MANUAL_SOURCE:
            problems.append(f"{where}.id: '{MANUAL_SOURCE}' is reserved for manual orders")
        if spec.id in seen:
            problems.append(f"{where}.id: duplicate bot id {spec.id!r}")
        seen.add(spec.id)
        if (spec.venue, spec.symbol) not in catalog:
            problems.append(
                f"{where}.symbol: no market {spec.venue}:{spec.symbol} in the markets file"
            )
        if spec.strategy not in STRATEGIES:
            known = ", ".join(sorted(STRATEGIES))
            problems.append(
                f"{where}.strategy: unknown strategy {spec.strategy!r} (known: {known})"
            )
            continue
        params_type, bot_type = STRATEGIES[spec.strategy]
        try:
            params = msgspec.convert(spec.params, params_type, strict=False)
        except msgspec.ValidationError as exc:
            problems.append(f"{where}.params: {str(exc).replace('$.', '')}")
            continue
        problems += [f"{where}.params.{f}: {m}" for f, m in params.problems()]
        if problems or not spec.enabled:
            continue
        ctx = BotContext(
            bot=spec.id,
            user=spec.user,
            account=spec.account,
            strategy=spec.strategy,
            venue=spec.venue,
            market=catalog.get(spec.venue, spec.symbol),
        )
        bots.append(bot_type(ctx, params))
    if problems:
        raise ConfigError("invalid bot file:\n  " + "\n  ".join(problems))
    return bots


def load_bots(path: str | Path, catalog: MarketCatalog) -> list[Strategy]:
    """Read, validate and build the bots of a bot file.

    Raises
    ------
    ConfigError
        If the file cannot be read, does not parse, or any bot is invalid.
    """
    parsed = load_yaml(path, BotFile)
    try:
        return build_bots(parsed.bots, catalog)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None

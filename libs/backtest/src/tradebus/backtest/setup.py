"""A backtest's setup: the params file's mapping -> bot spec, markets and account.

:func:`make_setup` turns the mapping read from a params file into a
:class:`Setup` (one :class:`~tradebus.strategy.registry.BotSpec`, the markets
it trades and the paper account's balances, fees, market kind and leverage),
or raises :class:`SetupError` naming every bad field. The names a run is
known by (:data:`VENUE`, :data:`ACCOUNT`, :data:`USER`, :data:`BOT_ID`) are
here too, as the engine and the accounting share them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.markets import Market, MarketCatalog, MarketKind
from tradebus.common.money import ONE, ZERO
from tradebus.engine.accounts import PAPER, AccountSpec
from tradebus.strategies.catalog import StrategyCatalog, strategy_catalog
from tradebus.strategies.registry import BotSpec, spec_problems, typed_params

VENUE = "backtest"
"""The venue name of the markets, the bot spec and the events of a backtest."""
ACCOUNT = AccountId("backtest")
"""The paper account a backtest's bot trades on."""
USER = UserId("backtest")
"""The user a backtest's bot and its order events belong to."""
BOT_ID = BotId("bt")
"""The bot id of a backtest (the ``source`` of its order events)."""
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "TRY", "BTC", "ETH")
"""Quote assets recognised at the end of a symbol when ``base``/``quote`` are not given."""

MARKET_FIELDS = ("tick_size", "step_size", "min_qty", "min_notional", "base", "quote", "kind")
"""Market fields of the params file, at its top level or per symbol under ``markets``."""
SETUP_FIELDS = {
    "symbol",
    "maker_fee_bps",
    "taker_fee_bps",
    "balances",
    "market_kind",
    "leverage",
    "markets",
    *MARKET_FIELDS,
}
"""Keys of the params file that are not strategy parameters."""


class SetupError(ValueError):
    """The params file is invalid; ``problems`` are ``(field path, message)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


@dataclass(frozen=True)
class Setup:
    """Everything a run needs besides its events: bot spec, markets, account."""

    spec: BotSpec
    catalog: MarketCatalog
    symbols: tuple[str, ...]
    balances: dict[str, Decimal]
    maker_fee_bps: Decimal
    taker_fee_bps: Decimal
    market_kind: MarketKind = "spot"
    leverage: Decimal = ONE

    @property
    def markets(self) -> tuple[Market, ...]:
        """The bot's markets, the primary one first."""
        return tuple(self.catalog.get(VENUE, s) for s in self.symbols)

    def account(self) -> AccountSpec:
        """The run's paper account, as execution's accounts file would declare it."""
        return AccountSpec(
            id=ACCOUNT,
            user=USER,
            venue=PAPER,
            market_data=VENUE,
            balances=dict(self.balances),
            maker_fee_bps=self.maker_fee_bps,
            taker_fee_bps=self.taker_fee_bps,
            market_kind=self.market_kind,
            leverage=self.leverage,
        )


def split_symbol(symbol: str) -> tuple[str, str] | None:
    """``BTCUSDT -> (BTC, USDT)`` by the known quote assets; None if none matches."""
    for quote in KNOWN_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return None


def _decimal(value: Any, path: str, problems: list[tuple[str, str]], positive: bool) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        problems.append((path, f"expected a number, got {value!r}"))
        return ZERO
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        problems.append((path, f"expected a number, got {value!r}"))
        return ZERO
    if not out.is_finite() or out < 0 or (positive and out == 0):
        problems.append((path, "must be > 0" if positive else "must be >= 0"))
    return out


def _market(
    symbol: str, raw: Mapping[str, Any], where: str, problems: list[tuple[str, str]]
) -> Market | None:
    """The market ``symbol`` from the file's (possibly per-symbol) fields."""
    found = len(problems)
    sizes: dict[str, Any] = {}  # Decimal increments; Any: Market also has str fields
    for name in ("tick_size", "step_size"):
        if raw.get(name) is None:
            problems.append((f"{where}{name}", "required"))
        else:
            sizes[name] = _decimal(raw[name], f"{where}{name}", problems, positive=True)
    for name in ("min_qty", "min_notional"):
        if raw.get(name) is not None:
            sizes[name] = _decimal(raw[name], f"{where}{name}", problems, positive=False)
    base, quote = raw.get("base"), raw.get("quote")
    if base is None or quote is None:
        guess = split_symbol(symbol)
        if guess is None:
            problems.append(
                (f"{where}quote", f"cannot tell the assets of {symbol!r}: set base/quote")
            )
            return None
        base, quote = base or guess[0], quote or guess[1]
    kind = raw.get("kind", "spot")
    if kind not in ("spot", "perpetual"):
        problems.append((f"{where}kind", "must be spot or perpetual"))
    if len(problems) > found:
        return None
    return Market(symbol=symbol, base=str(base), quote=str(quote), kind=kind, **sizes)


def make_setup(
    strategy: str, raw: Mapping[str, Any], strategies: StrategyCatalog | None = None
) -> Setup:
    """Build the bot spec, markets and account of a run from a params file's mapping.

    ``raw`` holds the strategy's parameters plus ``symbol`` (single-market
    strategies), ``tick_size``, ``step_size``, optional ``min_qty``,
    ``min_notional``, ``base``/``quote`` (else guessed from the symbol),
    ``maker_fee_bps``, ``taker_fee_bps``, ``balances`` ({asset: amount}),
    ``market_kind`` (``spot``; ``perpetual`` by default for ``spread``),
    ``leverage``, and ``markets`` ({symbol: {tick_size: ..., ...}}) for
    per-symbol market fields (a spread's two legs).

    ``strategy`` is any strategy of ``strategies`` (default: the installed
    ones, user plug-ins included); the run's markets are the symbols its
    ``symbols()`` names for valid parameters (``symbol``; a spread's
    ``symbol_a`` and ``symbol_b``).

    Raises
    ------
    SetupError
        Naming every bad field (strategy parameters by their own name, with
        the strategy's validation messages); an unknown strategy, or one
        whose plug-in failed to load (naming its package and entry point).
    """
    strategies = strategies or strategy_catalog()
    if strategy not in strategies:
        raise SetupError([("strategy", strategies.unknown(strategy))])
    problems: list[tuple[str, str]] = []
    params = {k: v for k, v in raw.items() if k not in SETUP_FIELDS}
    per_symbol = raw.get("markets") or {}
    if not isinstance(per_symbol, dict):
        problems.append(("markets", "expected a mapping of symbol -> market fields"))
        per_symbol = {}
    symbol = raw.get("symbol")
    if symbol is not None and not isinstance(symbol, str):
        problems.append(("symbol", f"expected a symbol, got {symbol!r}"))
        symbol = None
    spec = BotSpec(
        id=BOT_ID,
        user=USER,
        account=ACCOUNT,
        strategy=strategy,
        venue=VENUE,
        symbol=symbol,
        params=_normalize(params),
    )
    found = spec_problems(spec, MarketCatalog({}), strategies)
    typed_problems = [p for p in found if p[0] != "venue"]
    typed, typed_found = typed_params(strategy, spec.params, strategies)
    wanted: list[Any]
    if typed is not None and not typed_found and all(f != "strategy" for f, _ in found):
        wanted = strategies.kinds[strategy].symbols(spec, typed)  # a plug-in's too
    else:  # the symbols the file names, so their market fields are checked as well
        names = ("symbol_a", "symbol_b") if strategy == "spread" else ()
        wanted = [params.get(n) for n in names] if names else [symbol]
    symbols = [s for s in wanted if isinstance(s, str) and s]
    problems += [(f.removeprefix("params."), m) for f, m in typed_problems]
    markets = []
    for s in symbols:
        own = per_symbol.get(s) or {}
        if not isinstance(own, dict):
            problems.append((f"markets.{s}", "expected a mapping of market fields"))
            own = {}
        merged = {k: raw[k] for k in MARKET_FIELDS if k in raw} | own
        where = f"markets.{s}." if own else ""
        m = _market(s, merged, where, problems)
        if m is not None:
            markets.append(m)
    fees = {
        name: _decimal(raw.get(name, 0), name, problems, positive=False)
        for name in ("maker_fee_bps", "taker_fee_bps")
    }
    balances: dict[str, Decimal] = {}
    raw_balances = raw.get("balances")
    if not isinstance(raw_balances, dict) or not raw_balances:
        problems.append(("balances", "required: starting balances, e.g. {USDT: '10000'}"))
    else:
        for asset, amount in raw_balances.items():
            balances[str(asset)] = _decimal(amount, f"balances.{asset}", problems, positive=False)
    default_kind = "perpetual" if strategy == "spread" else "spot"
    market_kind = raw.get("market_kind", default_kind)
    if market_kind not in ("spot", "perpetual"):
        problems.append(("market_kind", "must be spot or perpetual"))
    leverage = _decimal(raw.get("leverage", 1), "leverage", problems, positive=True)
    if leverage < 1 and not any(f == "leverage" for f, _ in problems):
        problems.append(("leverage", "must be >= 1"))
    if problems:
        raise SetupError(problems)
    return Setup(
        spec=spec,
        catalog=MarketCatalog({VENUE: markets}),
        symbols=tuple(symbols),
        balances=balances,
        maker_fee_bps=fees["maker_fee_bps"],
        taker_fee_bps=fees["taker_fee_bps"],
        market_kind=market_kind,
        leverage=leverage,
    )


def _normalize(params: dict[str, Any]) -> dict[str, Any]:
    """YAML floats as text, so ``0.1`` is Decimal("0.1") (as ``bots apply`` does)."""
    return {k: str(v) if isinstance(v, float) else v for k, v in params.items()}

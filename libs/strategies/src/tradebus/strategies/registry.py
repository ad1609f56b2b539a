"""The strategy catalogue, bot specs, and turning a spec into a running core.

A :class:`BotSpec` is one bot fully resolved: who, where, which strategy, and
the strategy's parameters as plain JSON values. It is what the bot file
resolves to, what ``tradebus bots apply`` writes to KV ``bots``, and what a
strategy host reads back to build the bot.

Validation names the field of every problem; the bot file maps each field
back to the line of YAML it came from (:mod:`tradebus.strategies.botfile`).
Strategies come from a :class:`~tradebus.strategies.catalog.StrategyCatalog`
(every function takes one as ``strategies``; default: the installed
strategies, :func:`~tradebus.strategies.catalog.strategy_catalog`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, NamedTuple

import msgspec

from tradebus.common.configfile import convert_fields, says_nothing_new, struct_fields
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.markets import MarketCatalog
from tradebus.common.subjects import MANUAL_SOURCE, TOKEN_PATTERN
from tradebus.strategies.catalog import StrategyCatalog, strategy_catalog
from tradebus.strategies.core import BotContext, Strategy


class BotSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One resolved bot.

    ``group`` is the strategy block of the bot file it came from (bots of one
    group share a volume target); ``symbol`` is the market of single-market
    strategies (``spread`` names its two in ``params``); ``params`` holds the
    strategy's parameters as JSON values (money as strings). ``managed_by``
    says who writes it to KV ``bots``: a bot ``file`` (``tradebus bots apply``)
    or the ``api`` (the gateway); neither changes the other's bots.
    ``total_capital`` (quote asset; None: no cap) is the group's shared capital cap,
    set at the group level of the bot file (``strategies.<group>.total_capital``, seed
    001's dual strategy ``totalCapital``): execution refuses a buy of one of the group's
    bots on the account that would take the quote the group's bots commit (their open
    buy orders' notional plus the cost of the positions they hold) above it
    (``group_capital``; docs/strategies.md).
    ``execute_trades`` (default true): false makes a dry run: the bot trades the
    live feed but its orders go to a paper venue of its own in the strategy host
    (the engine's paper fill model), never to its account, whatever the account
    is; ``dry_run_wallet`` is that venue's starting balances (asset -> amount;
    empty: :data:`DRY_RUN_QUOTE` of each quote asset the bot trades).
    """

    id: BotId
    user: UserId
    account: AccountId
    strategy: str
    venue: str
    symbol: str | None = None
    group: str = ""
    params: dict[str, Any] = {}
    enabled: bool = True
    managed_by: Literal["file", "api"] = "file"
    total_capital: Decimal | None = None
    execute_trades: bool = True
    dry_run_wallet: dict[str, Decimal] = {}

    @property
    def group_name(self) -> str:
        """``group``, or the strategy name when the spec has none."""
        return self.group or self.strategy


BOT_FIELDS = ("id", "user", "account", "venue", "symbol")
"""Spec fields that must be subject tokens."""
DRY_RUN_QUOTE = Decimal(10_000)
"""A dry-run bot's simulated balance of each quote asset it trades when its
``dry_run_wallet`` is empty (README, "Dry run")."""


def param_fields(strategy: str, strategies: StrategyCatalog | None = None) -> set[str]:
    """Names of the parameters of ``strategy`` (empty for an unknown one)."""
    kind = (strategies or strategy_catalog()).get(strategy)
    if kind is None:
        return set()
    return {f.name for f in struct_fields(kind.params)}


def typed_params(
    strategy: str, params: dict[str, Any], strategies: StrategyCatalog | None = None
) -> tuple[Any, list[tuple[str, str]]]:
    """Convert ``params`` to the strategy's parameter struct, checking every field.

    Returns ``(params or None, problems)`` where each problem is
    ``(field path, message)`` and field paths are relative to ``params``
    (``adds[1].spread_pct``; empty when the strategy's own ``problems()`` raised:
    the message says so). Every field is converted on its own, nested ones
    included (:func:`tradebus.common.configfile.convert_fields`), so all type
    errors show at once, and the strategy's range checks run on the fields that
    converted, so they show in the same pass. ``params`` is None unless every
    value converted.

    Raises
    ------
    KeyError
        If ``strategy`` is not in the catalogue.
    """
    checked = _checked_params(strategy, params, strategies)
    return (checked.typed if checked.complete else None), checked.problems


class _Checked(NamedTuple):
    """What :func:`_checked_params` found."""

    typed: Any
    """The parameter struct; None when it could not be built at all."""
    complete: bool
    """Every value converted: ``typed`` is the parameters as given."""
    stand_in: bool
    """A required value was missing or bad: ``typed`` holds a placeholder there."""
    problems: list[tuple[str, str]]


def _checked_params(
    strategy: str, params: dict[str, Any], strategies: StrategyCatalog | None
) -> _Checked:
    """:func:`typed_params`, and the struct even when some values did not convert (each
    at its default, or a placeholder for a required one), for the checks that need only
    the rest; what the checks say about a reported field is dropped."""
    kind = (strategies or strategy_catalog()).kinds[strategy]
    fields = {f.encode_name for f in struct_fields(kind.params)}
    problems = [(name, f"unknown parameter of {strategy}") for name in params if name not in fields]
    known = {k: v for k, v in params.items() if k in fields}
    typed, found = convert_fields(known, kind.params, "", strict=False, placeholders=True)
    problems += [(path, message) for path, message, _ in found]
    if typed is None:
        return _Checked(None, False, False, problems)
    bad = [p.path for p in found if p.message != "required" or p.path in params]
    missing = [p.path for p in found if p.message == "required" and p.path not in params]
    stand_in = any(f.required for f in struct_fields(kind.params) if f.name in bad + missing)
    try:  # on the values that converted (a bad one at its default), so ranges show too
        checks = list(typed.problems())
    except Exception as exc:  # a plug-in's validation code: a problem of the spec, not a crash
        if stand_in:  # a placeholder the plug-in's checks did not take: the rest is reported
            return _Checked(None, False, True, problems)
        raised = ("", f"{strategy}: checking the parameters raised {exc!r}")
        return _Checked(None, False, False, [*problems, raised])
    problems += [(f, m) for f, m in checks if not says_nothing_new(f, m, bad + missing)]
    complete = not found and len(known) == len(params)
    return _Checked(typed, complete, stand_in, problems)


def spec_problems(
    spec: BotSpec, catalog: MarketCatalog, strategies: StrategyCatalog | None = None
) -> list[tuple[str, str]]:
    """Every problem of one spec as ``(field path, message)``; empty when valid.

    Paths: ``id``, ``account``, ``symbol``, ``strategy``, ``params.<name>``.
    A strategy whose plug-in failed to load is a ``strategy`` problem naming
    its package and entry point.
    """
    return _examine(spec, catalog, strategies or strategy_catalog())[0]


def _examine(
    spec: BotSpec, catalog: MarketCatalog, strategies: StrategyCatalog
) -> tuple[list[tuple[str, str]], _Checked | None]:
    """:func:`spec_problems`, and its parameters as checked (None for an unknown strategy),
    so a caller building the bot converts them once."""
    problems: list[tuple[str, str]] = []
    for field in BOT_FIELDS:
        value = getattr(spec, field)
        if value is not None and not TOKEN_PATTERN.match(value):
            problems.append((field, f"must match {TOKEN_PATTERN.pattern} (got {value!r})"))
    if spec.id == MANUAL_SOURCE:
        problems.append(("id", f"{MANUAL_SOURCE!r} is reserved for manual orders"))
    cap = spec.total_capital
    if cap is not None and not (cap.is_finite() and cap > 0):
        problems.append(("total_capital", f"must be > 0 (got {cap})"))
    for asset, amount in spec.dry_run_wallet.items():
        if not TOKEN_PATTERN.match(asset):
            problems.append(
                ("dry_run_wallet", f"asset must match {TOKEN_PATTERN.pattern} (got {asset!r})")
            )
        elif not amount.is_finite() or amount < 0:
            problems.append(
                (f"dry_run_wallet.{asset}", f"must be a finite amount >= 0 (got {amount})")
            )
    if spec.dry_run_wallet and spec.execute_trades:
        problems.append(("dry_run_wallet", "only for a dry run: set execute_trades: false"))
    kind = strategies.get(spec.strategy)
    if kind is None:
        return [*problems, ("strategy", strategies.unknown(spec.strategy))], None
    checked = _checked_params(spec.strategy, spec.params, strategies)
    problems += [(f"params.{f}" if f else "params", m) for f, m in checked.problems]
    if checked.typed is None:
        return problems, checked
    try:
        symbols = kind.symbols(spec, checked.typed)
    except Exception as exc:  # a plug-in's code: its error is the spec's problem, not a crash
        if checked.stand_in:  # on a placeholder: the missing or bad value is reported
            return problems, checked
        return [*problems, ("strategy", f"{spec.strategy}: symbols() raised {exc!r}")], checked
    if checked.stand_in:  # only the markets the spec names itself, not a placeholder's
        given = [spec.symbol, *spec.params.values()]
        symbols = [s for s in symbols if s in given]
        if not symbols:
            return problems, checked
    if not symbols:
        problems.append(("symbol", "required"))
    if not catalog.venue_markets(spec.venue):  # the venue is what is wrong, not the symbols
        return [*problems, ("venue", f"no venue {spec.venue} in the markets file")], checked
    for symbol in symbols:
        if (spec.venue, symbol) not in catalog:
            named = (f"params.{k}" for k, v in spec.params.items() if v == symbol)
            field = "symbol" if spec.symbol == symbol else next(named, "params")
            problems.append((field, f"no market {spec.venue}:{symbol} in the markets file"))
    return problems, checked


def validate_specs(
    specs: list[BotSpec], catalog: MarketCatalog, strategies: StrategyCatalog | None = None
) -> list[tuple[int, str, str]]:
    """Problems of a list of specs as ``(index, field path, message)``, duplicates included."""
    out: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.id in seen:
            out.append((i, "id", f"duplicate bot id {spec.id!r}"))
        seen.add(spec.id)
        out += [(i, f, m) for f, m in spec_problems(spec, catalog, strategies)]
    return out


def build_bot(
    spec: BotSpec, catalog: MarketCatalog, run: int = 1, strategies: StrategyCatalog | None = None
) -> Strategy:
    """The core for a valid ``spec`` in run ``run``.

    Raises
    ------
    ValueError
        If the spec is invalid (the message lists the problems; a strategy
        whose plug-in failed to load is named with its package and entry point).
    """
    strategies = strategies or strategy_catalog()
    problems, checked = _examine(spec, catalog, strategies)
    if problems:
        raise ValueError("; ".join(f"{f}: {m}" for f, m in problems))
    if checked is None or not checked.complete:  # not without a problem listed
        raise ValueError(f"params: not converted to {spec.strategy}'s parameters")
    kind = strategies.kinds[spec.strategy]
    params = checked.typed
    markets = tuple(catalog.get(spec.venue, s) for s in kind.symbols(spec, params))
    ctx = BotContext(
        bot=spec.id,
        user=spec.user,
        account=spec.account,
        strategy=spec.strategy,
        venue=spec.venue,
        market=markets[0],
        markets=markets,
        run=run,
        group=spec.group_name,
    )
    try:
        return kind.bot(ctx, params)
    except Exception as exc:  # a plug-in's constructor: one bot fails, not its host
        raise ValueError(f"strategy: {spec.strategy}: building the core raised {exc!r}") from exc


def _decimal_text(value: Any) -> Any:
    return str(value) if isinstance(value, (Decimal, float)) else value


def normalize_params(params: dict[str, Any]) -> dict[str, Any]:
    """Money as text (YAML floats and Decimals become strings), so specs compare exactly."""
    return {k: _decimal_text(v) for k, v in params.items()}

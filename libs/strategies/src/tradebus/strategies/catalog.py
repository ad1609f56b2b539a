"""The strategy catalogue: every strategy a bot may name, loaded from entry points.

A strategy is a :class:`StrategyKind` (its parameter struct, its core class and
which symbols a bot trades) that a Python package declares as an entry point
in the group :data:`ENTRY_POINT_GROUP` (``tradebus.strategies``); the entry
point's name is the strategy's name (what a bot file's ``strategy:`` says).
The four built-in strategies are declared the same way by the
``tradebus-strategies`` package itself (:mod:`tradebus.strategies.builtin`), so
there is one mechanism; a user's own strategy is a package with such an entry
point (docs/write-a-strategy.md; ``examples/grid-bot``).

:func:`strategy_catalog` loads the installed entry points once per process
(cached) into a :class:`StrategyCatalog`; nothing is registered by import side
effects. Loading checks every kind against the rules that can be checked
before a bot runs (:func:`kind_problems`): a frozen msgspec parameter struct
with ``problems()``, a concrete :class:`~tradebus.strategies.core.BotBase`
core whose ``state_type`` is a :class:`~tradebus.strategies.core.BotState`
with a default for every field that round-trips through snapshot/restore, a
name usable as a bot field and no clash with a built-in or another package.
A plug-in that fails (import error, wrong object, a broken rule) is kept out
of the catalogue with a message naming its package and entry point; the
other strategies load as usual, and a bot naming the broken one gets that
message as its problem (so the strategy host starts the other bots).
The rules that cannot be checked (no clock reads, no I/O, the same outputs
for the same inputs) are the core's contract (:class:`~tradebus.strategies.core.Strategy`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from tradebus.common.subjects import TOKEN_PATTERN
from tradebus.strategies.core import BotBase, BotInput, BotState

if TYPE_CHECKING:
    from tradebus.strategies.registry import BotSpec

ENTRY_POINT_GROUP = "tradebus.strategies"
"""The entry point group a package declares its strategies in (``pyproject.toml``:
``[project.entry-points."tradebus.strategies"]``)."""
BUILTIN_PACKAGE = "tradebus-strategies"
"""The distribution whose entry points are the built-in strategies."""


def own_symbol(spec: BotSpec, params: Any) -> list[str]:
    """The symbols of a single-market bot: the spec's ``symbol`` (none when unset)."""
    return [spec.symbol] if spec.symbol else []


class StrategyKind(NamedTuple):
    """A strategy: what an entry point of group ``tradebus.strategies`` points at.

    ``params`` is the parameter struct (a frozen ``msgspec.Struct`` with a
    ``problems() -> list[(field, message)]`` method); ``bot`` the core class
    (a :class:`~tradebus.strategies.core.BotBase` subclass with a
    ``state_type``), built as ``bot(ctx, params)``; ``symbols(spec, params)``
    the native symbols a bot trades, its primary market first (default:
    the spec's ``symbol``, :func:`own_symbol`).
    """

    params: type[Any]
    bot: type[BotBase[Any, Any]]
    symbols: Callable[[BotSpec, Any], list[str]] = own_symbol


def kind_problems(kind: object) -> list[str]:
    """What makes ``kind`` unusable as a strategy; empty when it follows the rules.

    Checks the object is a :class:`StrategyKind`; ``params`` a frozen
    ``msgspec.Struct`` class with a ``problems()`` method whose field types
    msgspec can read; ``bot`` a concrete :class:`BotBase` subclass with
    ``inputs`` a frozenset of :class:`BotInput`; its ``state_type`` a
    :class:`BotState` subclass with a default for every field (a snapshot
    written before a field was added must still load) whose fresh instance
    encodes to JSON and decodes back equal (snapshot/restore); ``symbols``
    callable.
    """
    if not isinstance(kind, StrategyKind):
        return [f"is a {type(kind).__name__}, not a tradebus.strategies.catalog.StrategyKind"]
    out: list[str] = []
    params, bot, symbols = kind
    if not (isinstance(params, type) and issubclass(params, msgspec.Struct)):
        out.append(f"params: {params!r} is not a msgspec.Struct class")
    else:
        name = params.__qualname__
        if not params.__struct_config__.frozen:
            out.append(f"params: {name} must be frozen (msgspec.Struct, frozen=True)")
        if not callable(getattr(params, "problems", None)):
            out.append(f"params: {name} has no problems() method")
        try:
            msgspec.json.schema(params)
        except (TypeError, ValueError) as exc:
            out.append(f"params: {name} has a field msgspec cannot read: {exc}")
    if not (isinstance(bot, type) and issubclass(bot, BotBase)):
        return [*out, f"bot: {bot!r} is not a subclass of tradebus.strategies.core.BotBase"]
    if inspect.isabstract(bot):
        missing = ", ".join(sorted(getattr(bot, "__abstractmethods__", ())))
        out.append(f"bot: {bot.__qualname__} does not implement {missing}")
    if not (isinstance(bot.inputs, frozenset) and all(isinstance(i, BotInput) for i in bot.inputs)):
        out.append(f"bot: {bot.__qualname__}.inputs must be a frozenset of BotInput")
    out += _state_problems(bot)
    if not callable(symbols):
        out.append(f"symbols: {symbols!r} is not callable")
    return out


def _state_problems(bot: type[BotBase[Any, Any]]) -> list[str]:
    state_type = getattr(bot, "state_type", None)
    where = f"bot: {bot.__qualname__}.state_type"
    if not (isinstance(state_type, type) and issubclass(state_type, BotState)):
        return [f"{where} must be a subclass of tradebus.strategies.core.BotState"]
    required = [f.name for f in msgspec.structs.fields(state_type) if f.required]
    if required:
        return [
            f"{where} ({state_type.__qualname__}): every field needs a default "
            f"(a snapshot taken before it was added must load); none for {', '.join(required)}"
        ]
    try:
        fresh = state_type()
        back = msgspec.json.decode(msgspec.json.encode(fresh), type=state_type)
    except (TypeError, ValueError, msgspec.MsgspecError) as exc:
        return [f"{where} ({state_type.__qualname__}) does not survive snapshot/restore: {exc}"]
    if back != fresh:
        return [f"{where} ({state_type.__qualname__}) restores unequal to its snapshot"]
    return []


def describe(ep: EntryPoint) -> str:
    """An entry point as a user finds it: ``entry point NAME = VALUE of package DIST VERSION``."""
    dist = ep.dist
    package = f"package {dist.name} {dist.version}" if dist is not None else "an unknown package"
    return f"entry point {ep.name} = {ep.value} of {package}"


def _package(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ""


@dataclass(frozen=True)
class StrategyCatalog:
    """The strategies a process can run: name -> kind, and what failed to load.

    ``kinds`` holds every usable strategy; ``broken`` maps the name of a
    strategy that failed to load to the reason (naming its package and entry
    point); ``problems`` lists every load problem, also those that left a
    usable strategy (a plug-in that clashes with a built-in name);
    ``builtin`` the names of the built-in strategies; ``sources`` where each
    usable strategy comes from (:func:`describe` of its entry point).
    """

    kinds: Mapping[str, StrategyKind]
    broken: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    builtin: frozenset[str] = frozenset()
    sources: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> StrategyKind | None:
        """The kind named ``name``, or None (unknown or broken)."""
        return self.kinds.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.kinds

    def names(self) -> list[str]:
        """The usable strategies' names, sorted."""
        return sorted(self.kinds)

    def unknown(self, name: str) -> str:
        """Why ``name`` cannot be used: its load error, or that no package declares it."""
        if name in self.broken:
            return self.broken[name]
        return f"unknown strategy {name!r} (known: {', '.join(self.names())})"

    @classmethod
    def from_entry_points(cls, eps: Iterable[EntryPoint]) -> StrategyCatalog:
        """Load and check each entry point (see module docstring); never raises for a plug-in.

        A built-in (package :data:`BUILTIN_PACKAGE`) keeps its name against
        any plug-in; two plug-ins of one name are both refused.
        """
        ordered = sorted(eps, key=lambda ep: (_package(ep) != BUILTIN_PACKAGE, ep.name, ep.value))
        builtin = frozenset(ep.name for ep in ordered if _package(ep) == BUILTIN_PACKAGE)
        kinds: dict[str, StrategyKind] = {}
        owner: dict[str, EntryPoint] = {}
        broken: dict[str, str] = {}
        problems: list[str] = []

        def refuse(name: str, message: str, *, keep: bool = False) -> None:
            problems.append(message)
            if not keep:
                broken[name] = message
                kinds.pop(name, None)

        for ep in ordered:
            what = f"strategy plug-in {ep.name!r} ({describe(ep)})"
            if ep.name in builtin and _package(ep) != BUILTIN_PACKAGE:
                refuse(ep.name, f"{what}: {ep.name!r} is a built-in strategy; rename it", keep=True)
                continue
            if ep.name in owner or ep.name in broken:
                first = owner.get(ep.name)
                other = describe(first) if first is not None else "another package"
                refuse(ep.name, f"{what}: the name is also declared by {other}; uninstall one")
                continue
            if not TOKEN_PATTERN.match(ep.name):
                refuse(ep.name, f"{what}: the name must match {TOKEN_PATTERN.pattern}")
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a plug-in's import may raise anything
                refuse(ep.name, f"{what} failed to load: {type(exc).__name__}: {exc}")
                continue
            found = kind_problems(obj)
            if found:
                refuse(ep.name, f"{what} breaks the rules of a strategy: " + "; ".join(found))
                continue
            kinds[ep.name] = obj
            owner[ep.name] = ep
        sources = {name: describe(owner[name]) for name in kinds}
        return cls(kinds, broken, tuple(problems), builtin, sources)


@cache
def strategy_catalog() -> StrategyCatalog:
    """The installed strategies: every entry point of group ``tradebus.strategies``,
    loaded and checked once per process (:meth:`StrategyCatalog.from_entry_points`)."""
    return StrategyCatalog.from_entry_points(entry_points(group=ENTRY_POINT_GROUP))

"""The bot file: layered YAML ``defaults -> strategies -> users`` (seed 004).

::

    defaults:                      # every bot: bot fields and strategy parameters
      venue: binance
      cancel_on_exit: true
    strategies:                    # one block per strategy group
      ladder:                      # `strategy:` names the kind; default: the block's name
        symbol: BTCUSDT
        total_quote: "1000"
        order_count: 5
      eth-volume:
        strategy: volume
        symbol: ETHUSDT
        target_volume: "50000"
    users:
      - user: alice
        account: alice-paper       # the account of alice's bots (execution checks ownership)
        strategies:
          ladder: {total_quote: "2000"}      # one bot, id `alice-ladder`
          eth-volume: {}                     # id `alice-eth-volume`
      - user: bob
        account: bob-paper
        strategies:
          ladder:                            # several bots of one group: a list
            - {name: btc}                    # id `bob-ladder-btc`
            - {name: eth, symbol: ETHUSDT}   # id `bob-ladder-eth`

The user's value wins over the group's, which wins over ``defaults``. A bot's
id is ``<user>-<group>[-<name>]`` unless it sets ``id``. Bot fields:
``id``, ``name``, ``account``, ``venue``, ``symbol``, ``enabled``, ``execute_trades``,
``dry_run_wallet`` (a dry run, README "Dry run"), and, in a group block only,
``total_capital`` (the group's shared capital cap: every bot of the group on one
account together; :class:`~tradebus.strategies.registry.BotSpec`); every other
key is a parameter of the strategy. A key of ``defaults`` applies to the bots
whose strategy has it. Every problem is reported at once, at the line and path of
the YAML that set the bad value (``bots.yaml:31: users[2].strategies.volume.single_trade_quote:
must be > 0``; :mod:`tradebus.common.configfile`).

A file with a plain ``bots:`` list of resolved specs (see
:class:`~tradebus.strategies.registry.BotSpec`) is read as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from tradebus.common.configfile import (
    FileErrors,
    Problem,
    convert_fields,
    file_schema,
    join,
    read_doc,
    says_nothing_new,
    unknown,
)
from tradebus.common.markets import MarketCatalog
from tradebus.strategies.catalog import StrategyCatalog, strategy_catalog
from tradebus.strategies.registry import (
    BotSpec,
    normalize_params,
    param_fields,
    validate_specs,
)

SPEC_FIELDS = {
    "id",
    "name",
    "account",
    "venue",
    "symbol",
    "enabled",
    "execute_trades",
    "dry_run_wallet",
    "total_capital",
}
"""Keys of a layer that are about the bot, not the strategy."""
GROUP_ONLY_FIELDS = {"strategy"}
GROUP_LEVEL_FIELDS = {"total_capital"}
"""Bot fields only a strategy group sets (``strategies.<group>``), for all its bots."""
USER_FIELDS = {"user", "account", "venue", "enabled", "execute_trades", "strategies"}
"""Keys of a user block (``users[i]``)."""


class LayeredFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The layered bot file, before merging."""

    defaults: dict[str, Any] = {}
    strategies: dict[str, dict[str, Any]] = {}
    users: list[dict[str, Any]] = []


class SpecList(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A bot file that lists resolved specs."""

    bots: list[BotSpec]


ENTRY = "<entry>"
"""The key of a spec's provenance that holds the path of the bot's entry in ``users``."""
REPORTED = "<reported>"
"""The key of a spec's provenance that lists its fields already reported (:func:`resolve`)."""

Layer = dict[str, tuple[Any, str]]
"""key -> (value, YAML path that set it)."""


def _layer(values: dict[str, Any], path: str, skip: set[str] = frozenset()) -> Layer:  # type: ignore[assignment]
    return {k: (v, f"{path}.{k}") for k, v in values.items() if k not in skip}


def _every_known_field(strategies: StrategyCatalog) -> set[str]:
    known = set(SPEC_FIELDS)
    for name in strategies.names():
        known |= param_fields(name, strategies)
    return known


def _bot_entries(value: Any, where: str, problems: list[str]) -> list[tuple[dict[str, Any], str]]:
    """One user's setting of one group: a mapping (one bot) or a list of them."""
    if value is None:
        return [({}, where)]
    if isinstance(value, dict):
        return [(value, where)]
    if isinstance(value, list):
        out = []
        for j, item in enumerate(value):
            if isinstance(item, dict):
                out.append((item, f"{where}[{j}]"))
            else:
                problems.append(f"{where}[{j}]: expected a mapping of bot settings")
        return out
    problems.append(f"{where}: expected a mapping of bot settings or a list of them")
    return []


def resolve(
    doc: LayeredFile, strategies: StrategyCatalog | None = None
) -> tuple[list[BotSpec], list[dict[str, str]], list[str]]:
    """Merge the layers into specs.

    Returns ``(specs, provenance, problems)``: ``provenance[i]`` maps each
    field of spec ``i`` (``account``, ``params.total_quote``...) to the YAML
    path that set it, and :data:`REPORTED` to the spec's fields already reported
    as missing or of the wrong type (comma-separated; a default or a stand-in holds
    their place, so that the spec's other checks still run); ``problems`` are
    structural errors found while merging (a strategy that is unknown, or whose
    plug-in failed to load, at the path that names it) and bot fields of the wrong
    type. ``strategies``: default the installed ones.
    """
    strategies = strategies or strategy_catalog()
    problems: list[str] = []
    known = _every_known_field(strategies)
    for key in doc.defaults:
        if key in GROUP_LEVEL_FIELDS:
            problems.append(_group_level("defaults", key))
        elif key not in known:
            problems.append(f"defaults.{key}: unknown field (not a bot field or a parameter)")
    specs: list[BotSpec] = []
    provenance: list[dict[str, str]] = []
    for group, declared in doc.strategies.items():
        kind = declared.get("strategy", group)
        if kind not in strategies:
            where = f"strategies.{group}" + (".strategy" if "strategy" in declared else "")
            problems.append(f"{where}: {strategies.unknown(str(kind))}")
    for i, user_block in enumerate(doc.users):
        where_user = f"users[{i}]"
        for key in user_block:
            if key not in USER_FIELDS:
                problems.append(f"{where_user}.{key}: unknown field (known: {sorted(USER_FIELDS)})")
        user = user_block.get("user")
        if not isinstance(user, str):
            problems.append(f"{where_user}.user: required")
            continue
        groups = user_block.get("strategies") or {}
        if not isinstance(groups, dict):
            problems.append(f"{where_user}.strategies: expected a mapping of strategy groups")
            continue
        for group, value in groups.items():
            where_group = f"{where_user}.strategies.{group}"
            block = doc.strategies.get(group)
            if block is None:
                problems.append(f"{where_group}: no strategy group {group!r} under strategies")
                continue
            kind = block.get("strategy", group)
            if not isinstance(kind, str) or kind not in strategies:
                continue
            for entry, where_bot in _bot_entries(value, where_group, problems):
                problems += [_group_level(where_bot, k) for k in entry if k in GROUP_LEVEL_FIELDS]
                entry = {k: v for k, v in entry.items() if k not in GROUP_LEVEL_FIELDS}
                merged: Layer = {}
                fields = param_fields(kind, strategies) | SPEC_FIELDS
                merged.update(
                    {k: v for k, v in _layer(doc.defaults, "defaults").items() if k in fields}
                )
                merged.update(_layer(block, f"strategies.{group}", GROUP_ONLY_FIELDS))
                user_fields = {"account", "venue", "enabled", "execute_trades"}
                merged.update(
                    {k: v for k, v in _layer(user_block, where_user).items() if k in user_fields}
                )
                merged.update(_layer(entry, where_bot))
                paths = _Where(
                    user=f"{where_user}.user",
                    strategy=f"strategies.{group}" + (".strategy" if "strategy" in block else ""),
                    bot=where_bot,
                )
                spec, prov = _make_spec(user, group, kind, merged, paths, problems)
                if spec is not None:
                    specs.append(spec)
                    provenance.append(prov)
    return specs, provenance, problems


def _group_level(where: str, key: str) -> str:
    return f"{where}.{key}: a strategy group's setting: set it under strategies.<group>"


class _Where(NamedTuple):
    """YAML paths of what a bot's entry does not set itself."""

    user: str
    """``users[i].user``."""
    strategy: str
    """``strategies.<group>.strategy``, or the group when the kind is its name."""
    bot: str
    """The user's entry of the bot (``users[i].strategies.<group>[j]``)."""


def _required(entry: str, bot_id: str, field: str, group: str) -> str:
    """A field no layer set, at its place in the bot's own entry (``entry``)."""
    return (
        f"{entry}.{field}: required (bot {bot_id}: set it in the user's entry, "
        f"strategies.{group} or defaults)"
    )


def _make_spec(
    user: str, group: str, kind: str, merged: Layer, where: _Where, problems: list[str]
) -> tuple[BotSpec | None, dict[str, str]]:
    prov: dict[str, str] = {"user": where.user, "strategy": where.strategy}
    values: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, (value, path) in merged.items():
        if key in SPEC_FIELDS:
            values[key] = value
            prov[key] = path
        else:
            params[key] = value
            prov[f"params.{key}"] = path
    name = values.pop("name", None)
    bot_id = values.pop("id", None) or "-".join(str(p) for p in (user, group, name) if p)
    prov.setdefault("id", prov.get("name", where.bot))
    data = {
        "id": bot_id,
        "user": user,
        "strategy": kind,
        "group": group,
        "params": normalize_params(params),
        **values,
    }
    spec, found = convert_fields(data, BotSpec, "", strict=False, placeholders=True)
    prov[REPORTED] = ",".join(p.path for p in found)
    prov[ENTRY] = where.bot
    for path, message, _ in found:  # every bad field shows
        field = path.split(".", 1)[0].split("[", 1)[0]
        if message == "required" and path == field:
            problems.append(_required(where.bot, bot_id, field, group))
        elif prov.get(field):
            problems.append(f"{prov[field]}{path[len(field) :]}: {message}")
        else:
            problems.append(f"{where.bot}.{path}: {message}")
    return spec, prov


def load_specs(
    path: str | Path, catalog: MarketCatalog, strategies: StrategyCatalog | None = None
) -> list[BotSpec]:
    """Read a bot file (layered or a ``bots:`` list) and validate every bot.

    ``strategies``: the strategies bots may name (default: the installed ones).

    Raises
    ------
    FileErrors
        (a :class:`ConfigError`) listing every error of the file at once, one line
        each: ``<file>:<line>: <yaml path>: <message>`` (:mod:`tradebus.common.configfile`);
        also for an unreadable or empty file and a YAML syntax error.
    """
    doc = read_doc(path, "bot")
    found, specs = bot_problems(doc.data, catalog, strategies)
    if found:
        raise FileErrors(doc, "bot", found)
    return specs


def bot_problems(
    data: dict[str, Any], catalog: MarketCatalog, strategies: StrategyCatalog | None = None
) -> tuple[list[Problem], list[BotSpec]]:
    """Every error of a bot file's YAML mapping ``data`` as ``(yaml path, message)``
    (a bot's field that no layer sets at its place in the bot's entry of ``users``), and
    its specs (every bot when there is no error). A value of the wrong type is reported
    once: the range and cross-field checks of the rest run all the same."""
    specs: list[BotSpec] = []
    provenance: list[dict[str, str]] = []
    problems: list[str] = []
    converted: list[Problem] = []
    if "bots" in data:
        converted += [Problem(k, unknown(k, ["bots"])) for k in data if k != "bots"]
        items = data["bots"] if isinstance(data["bots"], list) else []
        if not isinstance(data["bots"], list):
            converted.append(Problem("bots", "expected a list of bots"))
        for i, item in enumerate(items):
            at = f"bots[{i}]"
            if not isinstance(item, dict):
                converted.append(Problem(at, "expected a mapping of bot fields"))
                continue
            spec, found = convert_fields(item, BotSpec, at, strict=False)
            converted += found
            if spec is not None:
                specs.append(spec)
                provenance.append({})
    else:
        layered, found = convert_fields(_empty_as_nothing(data), LayeredFile, "", strict=False)
        converted += found
        if layered is not None:
            specs, provenance, problems = resolve(layered, strategies)
    for i, field, message in validate_specs(specs, catalog, strategies):
        if says_nothing_new(field, message, _reported(provenance[i])):
            continue
        where = _where(specs[i], provenance[i], i, field)
        entry = provenance[i].get(ENTRY, f"bots[{i}]")
        name = field.removeprefix("params.").removeprefix("params")
        if where is None and message == "required":  # no layer set it
            problems.append(_required(entry, specs[i].id, name, specs[i].group_name))
        elif where is None:
            problems.append(f"{join(entry, name) if name else entry}: {message}")
        else:
            problems.append(f"{where}: {message}")
    out = list(converted)
    for text in problems:
        at, _, message = text.partition(": ")
        out.append(Problem(at, message))
    return list(dict.fromkeys(out)), specs


def _empty_as_nothing(data: dict[str, Any]) -> dict[str, Any]:
    """A layered file's ``defaults:``, ``strategies:``, ``users:`` or group with nothing
    under it (YAML null) as an empty one, as a user's ``<group>:`` with nothing under it
    is one bot with the group's settings."""
    out = {
        k: v
        for k, v in data.items()
        if not (k in ("defaults", "strategies", "users") and v is None)
    }
    groups = out.get("strategies")
    if isinstance(groups, dict):
        out["strategies"] = {g: {} if v is None else v for g, v in groups.items()}
    return out


def _reported(provenance: dict[str, str]) -> list[str]:
    return [f for f in provenance.get(REPORTED, "").split(",") if f]


def _where(spec: BotSpec, provenance: dict[str, str], i: int, field: str) -> str | None:
    """The YAML path that set ``field`` of a spec (``params.adds[1].spread_pct`` included).

    None for a field of a layered file that no layer set.
    """
    if not provenance:
        return f"bots[{i}].{field}"
    if provenance.get(field):
        return provenance[field]
    for key in sorted(provenance, key=len, reverse=True):
        if key and field.startswith(key) and field[len(key) : len(key) + 1] in (".", "["):
            return provenance[key] + field[len(key) :]
    return None


USER_ENTRY_FIELDS = ("account", "venue", "enabled", "execute_trades")
"""A user block's bot fields (``users[i].<field>``), for all of the user's bots."""


def bot_file_schema(strategies: StrategyCatalog | None = None) -> dict[str, Any]:
    """The JSON Schema of the bot file (``tradebus config schema bots``; README
    "Configuration files"), for the strategies installed (``strategies``; plug-ins
    included): a group naming its ``strategy`` takes that strategy's parameters, every
    other layer the parameters of any strategy. Types and fields only: what is required
    of a bot once its layers merge, markets, ids and ranges are :func:`load_specs`'s.
    """
    strategies = strategies or strategy_catalog()
    names = sorted(strategies.names())
    kinds = [strategies.kinds[n] for n in names]
    ref = "#/$defs/{name}"
    (spec_root, *params_roots), defs = msgspec.json.schema_components(
        [BotSpec, *(k.params for k in kinds)], ref_template=ref
    )
    spec_props = defs[spec_root["$ref"].rsplit("/", 1)[1]]["properties"]
    bot_props = {f: spec_props[f] for f in sorted(SPEC_FIELDS - GROUP_LEVEL_FIELDS - {"name"})}
    bot_props["name"] = {"type": "string", "description": "the bot's id is <user>-<group>-<name>"}
    params_of: dict[str, dict[str, Any]] = {}
    for name, root in zip(names, params_roots, strict=True):
        params_of[name] = dict(defs[root["$ref"].rsplit("/", 1)[1]]["properties"])
    every: dict[str, Any] = {}
    for props in params_of.values():
        for key, schema in props.items():
            if key in every and every[key] != schema:
                every[key] = {"anyOf": [*every[key].get("anyOf", [every[key]]), schema]}
            else:
                every.setdefault(key, schema)

    def layer(props: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": props, "additionalProperties": False}

    group_extra = {"total_capital": spec_props["total_capital"]}
    defs["AnyBotLayer"] = layer({**bot_props, **every})
    defs["AnyGroup"] = layer({**bot_props, **group_extra, **every})
    kind_enum = {"enum": names, "description": "the strategy (default: the group's name)"}
    cases: list[dict[str, Any]] = [
        {"if": {"not": {"required": ["strategy"]}}, "then": {"$ref": "#/$defs/AnyGroup"}}
    ]
    for name in names:
        defs[f"Group_{name}"] = layer(
            {"strategy": kind_enum, **bot_props, **group_extra, **params_of[name]}
        )
        cases.append(
            {
                "if": {"properties": {"strategy": {"const": name}}, "required": ["strategy"]},
                "then": {"$ref": f"#/$defs/Group_{name}"},
            }
        )
    defs["Group"] = {"type": "object", "properties": {"strategy": kind_enum}, "allOf": cases}
    entry = {"$ref": "#/$defs/AnyBotLayer"}
    user_props: dict[str, Any] = {
        "user": {"type": "string"},
        **{f: spec_props[f] for f in USER_ENTRY_FIELDS},
        "strategies": {
            "type": "object",
            "description": "group -> this user's bot: {}, its settings, or a list of bots",
            "additionalProperties": {
                "anyOf": [{"type": "null"}, entry, {"type": "array", "items": entry}]
            },
        },
    }
    defs["User"] = {**layer(user_props), "required": ["user"]}
    root = {
        "type": "object",
        "description": "defaults -> strategies -> users (a layered file), or a bots: list",
        "properties": {
            "defaults": {"$ref": "#/$defs/AnyBotLayer"},
            "strategies": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Group"}},
            "users": {"type": "array", "items": {"$ref": "#/$defs/User"}},
            "bots": {"type": "array", "items": spec_root},
        },
        "additionalProperties": False,
    }
    return file_schema(root, defs, "tradebus bot file", strict=False)

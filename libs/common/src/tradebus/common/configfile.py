"""Domain files (bots, accounts, markets) checked as a whole: every error at once, each
at its line.

One implementation for every file (README "Configuration files"):

1. :func:`read_doc` reads the YAML with PyYAML twice over the same text: the plain
   values, and the node tree (``yaml.compose``) whose marks give the line of every key
   and list item. An unreadable file, an empty one, a YAML syntax error and a
   duplicate key are :class:`FileErrors` naming the file and the line.
2. :func:`convert_fields` converts a mapping to a msgspec struct **field by field**
   (msgspec itself stops at the first error), recursing into nested structs, lists
   and mappings of them, so that every type error, missing field and unknown field
   is found. A field with a bad value falls back to its default, so the file's own
   range and cross-field checks still run on the rest: types and ranges are found
   in one pass.
3. The file's checks add their problems as ``(path, message)``; :class:`FileErrors`
   prints them one per line as ``<file>:<line>: <path>: <message>``, the line being
   that of the key or item the path names (or of its nearest parent in the file).

Paths have one style everywhere: keys joined by ``.``, list items by ``[i]``
(``users[2].strategies.volume.single_trade_quote``, ``accounts[1].risk.max_open_orders``,
``venues.binance[0].tick_size``).
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, get_args, get_origin

import msgspec
import yaml

from tradebus.common.config import ConfigError

T = TypeVar("T", bound=msgspec.Struct)

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Problem(NamedTuple):
    """One error of a file: the YAML path of the bad value (``""``: the file as a
    whole, or text that is not a path, like ``bot alice-ladder``) and what is wrong."""

    path: str
    message: str
    line: int | None = None
    """The line, when the path does not say it (a syntax error, a repeated key)."""


@dataclass(frozen=True)
class YamlDoc:
    """A YAML file read for checking: its ``data`` (plain Python values) and the
    1-based ``lines`` of every path in it (a key's line for a mapping entry, the
    item's first line for a list item)."""

    file: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, or of its nearest parent that the file holds; None if
        none does (a path that is not in the file)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = _parent(path)
        return None


_LAST_PART = re.compile(r"(\.[^.\[\]]*|\[\d+\])$")


def _parent(path: str) -> str:
    """``a.b[2].c`` -> ``a.b[2]`` -> ``a.b`` -> ``a`` -> ``""``."""
    m = _LAST_PART.search(path)
    return path[: m.start()] if m else ""


def join(path: str, key: object) -> str:
    """The path of ``key`` (a mapping key, or an ``int`` list index) under ``path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class FileErrors(ConfigError):
    """Every error of one file (subclass of :class:`ConfigError`, so every caller that
    handles that one handles this).

    ``str()`` is a head line ``<file>: invalid <kind> file (<n> errors):`` and then one
    line per problem: ``  <file>:<line>: <path>: <message>`` (without ``:<line>`` when
    the path is not in the file). ``lines`` holds those problem lines without the
    indent.
    """

    def __init__(self, doc: YamlDoc, kind: str, problems: Iterable[Problem]) -> None:
        self.file = doc.file
        self.kind = kind
        unique = list(dict.fromkeys(problems))
        lines = [p.line or (doc.line_of(p.path) if p.path else None) for p in unique]
        order = sorted(range(len(unique)), key=lambda i: (lines[i] is None, lines[i] or 0))
        self.problems = [unique[i] for i in order]
        self.lines = [_format(doc, unique[i], lines[i]) for i in order]
        n = len(self.lines)
        head = f"{doc.file}: invalid {kind} file ({n} error{'s' if n != 1 else ''}):"
        super().__init__("\n  ".join([head, *self.lines]))


def _format(doc: YamlDoc, problem: Problem, line: int | None) -> str:
    where = f"{doc.file}:{line}" if line is not None else doc.file
    return (
        f"{where}: {problem.path}: {problem.message}"
        if problem.path
        else (f"{where}: {problem.message}")
    )


def read_doc(path: str | Path, kind: str) -> YamlDoc:
    """Read the YAML file at ``path`` (``kind``: ``bots``, ``accounts``... for messages).

    Raises
    ------
    FileErrors
        If the file cannot be read, is empty, is not YAML (the line of the syntax
        error), is not a mapping at its top, or repeats a key of a mapping (each
        repeat at its line).
    """
    doc = YamlDoc(file=str(path), data=None)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise FileErrors(doc, kind, [Problem("", f"cannot read: {reason}")]) from None
    try:
        loader = _LOADER(text)  # parsed once: the node (lines) and the data built from it
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise FileErrors(doc, kind, [_syntax(exc)]) from None
    if node is None or data is None:
        raise FileErrors(doc, kind, [Problem("", "empty file (no YAML mapping in it)", 1)])
    lines: dict[str, int] = {}
    duplicates: list[Problem] = []
    _walk(node, "", lines, duplicates)
    doc = YamlDoc(file=str(path), data=data, lines=lines)
    if not isinstance(data, dict):
        found = type(data).__name__
        raise FileErrors(doc, kind, [Problem("", f"expected a mapping at the top, got {found}")])
    if duplicates:
        raise FileErrors(doc, kind, duplicates)
    return doc


def _syntax(exc: yaml.YAMLError) -> Problem:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    started = getattr(exc, "context_mark", None)
    if context and started is not None:
        context = f"{context} that starts at line {started.line + 1}"
    text = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return Problem("", text, mark.line + 1 if mark is not None else None)


def _walk(node: yaml.Node, path: str, lines: dict[str, int], dups: list[Problem]) -> None:
    """Record the line of every key and item under ``node`` (at ``path``)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            where = join(path, key)
            line = key_node.start_mark.line + 1
            if key in seen:
                dups.append(Problem(where, f"duplicate key (first at line {seen[key]})", line))
                continue
            seen[key] = line
            lines[where] = line
            _walk(value_node, where, lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            where = join(path, i)
            lines[where] = item.start_mark.line + 1
            _walk(item, where, lines, dups)


# ---------------------------------------------------------------- field by field


def _strip(tp: Any) -> Any:
    """``Annotated[X, ...]`` and ``NewType`` down to the type they wrap."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif hasattr(tp, "__supertype__"):
            tp = tp.__supertype__
        else:
            return tp


def _optional(tp: Any) -> Any | None:
    """``X`` of ``X | None``; None for any other type."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _msgspec_message(exc: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's ``"<message> - at `$<suffix>`"`` as ``(suffix, message)``."""
    message, at, suffix = str(exc).rpartition(" - at `$")
    if not at:
        return "", str(exc)
    return suffix.rstrip("`"), message


def convert_value(
    value: Any, type_: Any, path: str, strict: bool = True
) -> tuple[bool, Any, list[Problem]]:
    """Convert ``value`` to ``type_``, finding every error below it.

    Structs (also as ``X | None``, list items and mapping values) are converted field
    by field (:func:`convert_fields`); any other type by ``msgspec.convert`` (``strict``
    as there: False also accepts numbers and booleans written as text). Returns
    ``(ok, converted, problems)``; ``converted`` is meaningful only when ``ok`` (a struct
    is ok with problems in it: its bad fields hold their defaults).
    """
    tp = _strip(type_)
    inner = _optional(tp)
    if inner is not None:
        if value is None:
            return True, None, []
        tp = _strip(inner)
    if _is_struct(tp) and isinstance(value, dict):
        obj, problems = convert_fields(value, tp, path, strict)
        return obj is not None, obj, problems
    origin = get_origin(tp)
    if origin is list and isinstance(value, list):
        (item_type,) = get_args(tp) or (Any,)
        out, problems, ok = [], [], True
        for i, item in enumerate(value):
            item_ok, converted, found = convert_value(item, item_type, join(path, i), strict)
            ok, problems = ok and item_ok, problems + found
            out.append(converted)
        return ok, out, problems
    if origin is dict and isinstance(value, dict):
        key_type, value_type = get_args(tp) or (Any, Any)
        out_d, problems, ok = {}, [], True
        for key, item in value.items():
            where = join(path, key)
            key_ok, key_conv, key_found = convert_value(key, key_type, where, strict)
            item_ok, converted, found = convert_value(item, value_type, where, strict)
            ok, problems = ok and key_ok and item_ok, problems + key_found + found
            out_d[key_conv] = converted
        return ok, out_d, problems
    try:
        return True, msgspec.convert(value, type_, strict=strict), []
    except msgspec.ValidationError as exc:
        suffix, message = _msgspec_message(exc)
        return False, None, [Problem(path + suffix, f"{message} (value {_show(value)})")]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def struct_fields(type_: Any) -> tuple[msgspec.structs.FieldInfo, ...]:
    """:func:`msgspec.structs.fields` of the struct type ``type_``, resolved once per type:
    resolving a struct's annotations costs about 0.1 ms a call, a third of a 10,000-bot
    host's start-up when done for every bot (py-spy)."""
    return _fields(type_)


@functools.cache
def _fields(type_: Any) -> tuple[msgspec.structs.FieldInfo, ...]:
    return msgspec.structs.fields(type_)


def convert_fields(
    data: dict[str, Any],
    type_: type[T],
    path: str = "",
    strict: bool = True,
    placeholders: bool = False,
) -> tuple[T | None, list[Problem]]:
    """Convert the mapping ``data`` to the struct ``type_``, checking every field.

    Returns ``(obj, problems)``: every unknown field (when ``type_`` forbids them),
    missing required field and bad value, each at its path under ``path``. ``obj``
    is the struct with each bad field at its default, so that range and cross-field
    checks can still run on the rest (the caller drops what they say about a field
    already reported: :func:`says_nothing_new`); None when a required field is missing
    or bad, unless ``placeholders``: then such a field of a plain type holds a
    placeholder (:func:`placeholder`: only for running the other fields' checks).
    """
    problems: list[Problem] = []
    fields = struct_fields(type_)
    names = {f.encode_name for f in fields}
    config = getattr(type_, "__struct_config__", None)
    if config is not None and config.forbid_unknown_fields:
        problems += [
            Problem(join(path, key), unknown(key, names)) for key in data if key not in names
        ]
    values: dict[str, Any] = {}
    complete = True
    for f in fields:
        where = join(path, f.encode_name)
        if f.encode_name not in data:
            if f.required:
                problems.append(Problem(where, "required"))
                complete = _stand_in(f, values) if placeholders else False
            continue
        ok, converted, found = convert_value(data[f.encode_name], f.type, where, strict)
        problems += found
        if ok:
            values[f.name] = converted
        elif f.required:
            complete = _stand_in(f, values) if placeholders else False
    if not complete:
        return None, problems
    try:
        return type_(**values), problems
    except (TypeError, ValueError) as exc:  # a struct's own __post_init__
        return None, [*problems, Problem(path, str(exc))]


_PLACEHOLDERS: dict[Any, Any] = {
    Decimal: Decimal(1),
    int: 1,
    float: 1.0,
    str: "x",
    bool: False,
}


def placeholder(type_: Any) -> tuple[bool, Any]:
    """A value of ``type_`` that stands for a missing or bad one, to run the checks of the
    other fields: ``(True, value)``, or ``(False, None)`` for a type without one (a
    struct). Never shown: what checks say about it is dropped."""
    tp = _strip(type_)
    tp = _strip(_optional(tp) or tp)
    if tp in _PLACEHOLDERS:
        return True, _PLACEHOLDERS[tp]
    origin = get_origin(tp)
    if origin is Literal:
        return True, get_args(tp)[0]
    if origin in (list, dict):
        return True, origin()
    return False, None


def _stand_in(f: msgspec.structs.FieldInfo, values: dict[str, Any]) -> bool:
    ok, value = placeholder(f.type)
    if ok:
        values[f.name] = value
    return ok


def says_nothing_new(path: str, message: str, bad: Iterable[str]) -> bool:
    """True if a check's problem ``(path, message)`` is about a field already reported
    as missing or of the wrong type (paths ``bad``): at or under it, or naming it (a
    cross-field check such as ``must be < entry_spread_pct``), as its value there is a
    default or a :func:`placeholder`."""
    for b in bad:
        if below(path, [b]):
            return True
        name = _LAST_PART.search(b)
        word = (name.group(0).lstrip(".") if name else b).strip()
        if word and not word.startswith("[") and re.search(rf"\b{re.escape(word)}\b", message):
            return True
    return False


def unknown(key: object, known: Iterable[str]) -> str:
    """``unknown field (did you mean `x`?)``, or the known fields when none is close."""
    names = sorted(known)
    close = difflib.get_close_matches(str(key), names, n=1)
    if close:
        return f"unknown field (did you mean `{close[0]}`?)"
    return f"unknown field (known: {', '.join(names)})"


def below(path: str, bad: Iterable[str]) -> bool:
    """True if ``path`` is one of ``bad`` or lies under one (to drop a range check's
    problem about a field whose value was already reported as of the wrong type)."""
    return any(path == b or path.startswith((f"{b}.", f"{b}[")) for b in bad)


# ---------------------------------------------------------------- JSON Schema

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DECIMAL_PATTERN = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"
"""A decimal number written as text (``"0.5"``, ``"1e-3"``): what msgspec reads as a Decimal."""
INTEGER_PATTERN = r"^\s*[-+]?\d+\s*$"
_BOOLEAN_TEXT = ["true", "false", "True", "False", "TRUE", "FALSE", "1", "0"]


def file_schema(
    root: dict[str, Any], defs: dict[str, Any], title: str, strict: bool = True
) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of a YAML file, from msgspec's schema of its structs
    (``msgspec.json.schema_components`` with ``ref_template="#/$defs/{name}"``).

    ``root`` is the schema of the file's top mapping, ``defs`` its components. msgspec
    writes a Decimal as a string of format ``decimal``; the loader also takes a YAML
    number, so such a value is "a decimal string (:data:`DECIMAL_PATTERN`) or a number".
    ``strict=False`` (the bot file, converted with ``msgspec.convert(strict=False)``)
    also lets integers, numbers and booleans be written as text, as the loader does.
    """
    schema = {"$schema": JSON_SCHEMA_DIALECT, "title": title, **root, "$defs": defs}
    out = _yaml_values(schema, strict)
    assert isinstance(out, dict)
    return out


def _yaml_values(node: Any, strict: bool) -> Any:
    if isinstance(node, list):
        return [_yaml_values(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _yaml_values(v, strict) for k, v in node.items()}
    kind = node.get("type")
    keep = {k: v for k, v in node.items() if k in ("default", "description", "title")}
    rest = {k: v for k, v in node.items() if k not in keep}
    text_decimal = {"type": "string", "pattern": DECIMAL_PATTERN}
    if kind == "string" and node.get("format") == "decimal":
        return {"anyOf": [text_decimal, {"type": "number"}], **keep}
    if strict:
        return node
    if kind == "integer":
        return {"anyOf": [rest, {"type": "string", "pattern": INTEGER_PATTERN}], **keep}
    if kind == "number":
        return {"anyOf": [rest, text_decimal], **keep}
    if kind == "boolean":
        return {"anyOf": [rest, {"enum": _BOOLEAN_TEXT}], **keep}
    return node

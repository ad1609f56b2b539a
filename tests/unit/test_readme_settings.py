"""The README's strategy sections list every setting the code takes, with the code's default.

Issue 19 asks that a user moving from another bot finds each setting by name in
the README. This reads the tables of README.md's "## Strategies" section (one
``### <strategy>`` subsection each) and compares them with the parameter structs.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tradebus.strategies.catalog import strategy_catalog

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_.]+)` \| (?P<default>[^|]+?) \|")


def documented_settings() -> dict[str, dict[str, str]]:
    """``{strategy: {setting: default cell}}`` from README's "## Strategies" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Strategies\n", 1)[1].split("\n## ", 1)[0]
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in section.splitlines():
        if line.startswith("### "):
            current = out.setdefault(line[4:].strip(), {})
        elif current is not None and (m := ROW.match(line)):
            current[m["name"]] = m["default"].strip()
    return out


def default_text(field: msgspec.structs.FieldInfo) -> str:
    """A field's default as the README writes it: ``required``, ``below`` for a block of
    settings (a struct, whose fields have rows of their own), or the value in backticks."""
    if field.required:
        return "required"
    value: Any = field.default
    if value is msgspec.NODEFAULT:
        value = field.default_factory()
    if isinstance(value, msgspec.Struct):
        return "below"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Decimal):
        text = format(value.normalize(), "f")
    elif value is None:
        text = "none"
    elif isinstance(value, str):
        text = value or '""'
    elif isinstance(value, (list, dict)):
        text = msgspec.json.encode(value).decode()
    else:
        text = str(value)
    return f"`{text}`"


def expected_settings(params: type[msgspec.Struct], prefix: str = "") -> dict[str, str]:
    """``{setting: default text}`` of a parameter struct; a block's fields as ``block.field``."""
    out: dict[str, str] = {}
    for field in msgspec.structs.fields(params):
        name = f"{prefix}{field.name}"
        out[name] = default_text(field)
        if out[name] == "below":
            out.update(expected_settings(type(field.default), f"{name}."))
    return out


BUILT_IN = ("ladder", "martingale", "spread", "volume")


@pytest.mark.parametrize("strategy", BUILT_IN)
def test_every_setting_is_documented_with_its_default(strategy: str) -> None:
    documented = documented_settings().get(strategy)
    assert documented is not None, f"README.md has no '### {strategy}' under '## Strategies'"
    kind = strategy_catalog().get(strategy)
    assert kind is not None, f"no built-in strategy {strategy!r}"
    expected = expected_settings(kind.params)
    missing = sorted(set(expected) - set(documented))
    unknown = sorted(set(documented) - set(expected))
    assert not missing, f"{strategy}: settings not in README.md: {missing}"
    assert not unknown, f"{strategy}: README.md lists settings the code does not take: {unknown}"
    wrong = {n: (documented[n], d) for n, d in expected.items() if documented[n] != d}
    assert not wrong, f"{strategy}: README default differs (README, code): {wrong}"

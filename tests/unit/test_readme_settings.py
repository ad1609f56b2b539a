"""README.md's ladder and martingale sections list every setting with its default.

Each ``### <strategy> settings`` table must name exactly the fields of the
strategy's parameters struct, each with its default (``required`` for a
field without one; ``0 (off)`` reads as 0).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tradebus.strategies.ladder.params import LadderParams
from tradebus.strategies.martingale.params import MartingaleParams

README = Path(__file__).resolve().parents[2] / "README.md"


def documented(strategy: str) -> dict[str, str]:
    """``setting -> default`` of the README's ``### <strategy> settings`` table."""
    lines = README.read_text().splitlines()
    start = lines.index(f"### {strategy} settings")
    out: dict[str, str] = {}
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            out[cells[0].strip("`")] = cells[1].removesuffix(" (off)")
    return out


def default_text(field: msgspec.structs.FieldInfo) -> str:
    if field.required:
        return "required"
    value = field.default
    if isinstance(value, bool):
        return str(value).lower()
    assert isinstance(value, Decimal | int), field
    return str(value)


@pytest.mark.parametrize(
    ("strategy", "params"), [("ladder", LadderParams), ("martingale", MartingaleParams)]
)
def test_every_setting_is_documented_with_its_default(strategy: str, params: type) -> None:
    fields = {f.name: default_text(f) for f in msgspec.structs.fields(params)}
    assert documented(strategy) == fields

"""Every ``TRADEBUS_*`` setting of every program is in README.md's "## Configuration" table.

Issue 20 (item 12) found ``TRADEBUS_MAX_PRICE_AGE_SECONDS`` undocumented. This finds
every :class:`~tradebus.common.config.Settings` subclass in the source tree (services,
one-shot programs, libraries), maps it to its row of the table (``| <program> | ... |``;
a setting shared by all, such as ``NATS_URL``, may be in the ``all`` row instead) and
requires each field's ``FIELD`` name there, in backticks. A new program's settings
need a row of their own; a row naming a setting no program has fails too.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import msgspec

from tradebus.common.config import Settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SETTINGS_CLASS = re.compile(r"^class (\w+)\(Settings\b", re.M)

ROW_OF = {
    "MarketdataSettings": "marketdata",
    "StrategySettings": "strategy",
    "ExecutionSettings": "execution",
    "ReconcilerSettings": "reconciler",
    "GatewaySettings": "gateway",
    "NotifierSettings": "notifier",
    "BotsApplySettings": "bots-apply (one-shot)",
    "MigrateSettings": "migrate (one-shot)",
    "NatsInitSettings": "nats-init (one-shot)",
}
"""Settings class -> the first cell of its row in the README's table."""


def settings_classes() -> dict[str, type[Settings]]:
    """Every ``class X(Settings, ...)`` under ``libs/``, ``services/`` and ``cli/``, imported."""
    found: dict[str, type[Settings]] = {}
    for top in ("libs", "services", "cli"):
        for path in sorted((REPO / top).glob("**/src/tradebus/**/*.py")):
            names = SETTINGS_CLASS.findall(path.read_text(encoding="utf-8"))
            if not names:
                continue
            src = next(p for p in path.parents if p.name == "src")
            module = importlib.import_module(".".join(path.relative_to(src).with_suffix("").parts))
            for name in names:
                cls = getattr(module, name)
                assert issubclass(cls, Settings), f"{path}: {name}"
                found[name] = cls
    return found


def table_rows() -> dict[str, str]:
    """``{first cell: the rest of the row}`` of the "## Configuration" section's table."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|", 1)]
        if line.startswith("| ") and len(cells) == 2 and not cells[0].startswith("-"):
            rows[cells[0]] = cells[1]
    return rows


def documented(cell: str) -> set[str]:
    """The setting names in a row (every backticked upper-case word)."""
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cell))


def test_the_scan_finds_every_program_with_settings() -> None:
    classes = settings_classes()
    assert set(classes) == set(ROW_OF), (
        "a Settings class without a row of the README's Configuration table (add the row "
        f"and map it in ROW_OF): {sorted(set(classes) - set(ROW_OF))}"
    )


def test_every_setting_of_every_program_is_in_the_readme() -> None:
    rows = table_rows()
    shared = documented(rows["all"])
    missing: list[str] = []
    for name, cls in settings_classes().items():
        row = ROW_OF[name]
        assert row in rows, f"README Configuration: no row {row!r} ({name})"
        mine = documented(rows[row])
        for field in msgspec.structs.fields(cls):
            key = field.name.upper()
            if key not in mine and key not in shared:
                missing.append(f"TRADEBUS_{key} ({name}, row {row!r})")
    assert not missing, "undocumented settings: " + ", ".join(missing)


def listed(cell: str) -> set[str]:
    """The settings a row lists (each item's leading backticked name; values such as
    ``BTCUSDT`` inside an item's parentheses are not settings)."""
    return set(re.findall(r"(?:^|, )`([A-Z][A-Z0-9_]+)`", cell))


def test_the_readme_names_no_setting_that_does_not_exist() -> None:
    rows = table_rows()
    fields = {
        name: {f.name.upper() for f in msgspec.structs.fields(cls)}
        for name, cls in settings_classes().items()
    }
    every = set().union(*fields.values())
    stale = sorted(listed(rows["all"]) - every)
    for name, row in ROW_OF.items():
        # a secret may also be read from TRADEBUS_<FIELD>_FILE
        stale += [
            f"{row}: {k}"
            for k in sorted(listed(rows[row]))
            if k not in fields[name] and k.removesuffix("_FILE") not in fields[name]
        ]
    assert not stale, f"README Configuration names settings no program has: {stale}"

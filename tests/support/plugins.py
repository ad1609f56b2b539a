"""Strategy plug-ins installed for one test: a distribution on a folder of ``sys.path``.

:func:`install_plugin` writes what an installer leaves (``<name>.dist-info`` with
``METADATA`` and ``entry_points.txt``) and the package's modules into a folder;
put that folder on ``sys.path`` (``monkeypatch.syspath_prepend``; ``PYTHONPATH``
for a subprocess) and ``importlib.metadata`` finds the entry points as it finds
an installed package's. :data:`BROKEN_MODULE` holds strategy kinds that break
each rule of a strategy; :func:`fresh_catalog` reloads the catalogue.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tradebus.strategies.catalog import StrategyCatalog, strategy_catalog


def install_plugin(
    root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]
) -> Path:
    """Install distribution ``dist`` 0.1 into ``root``: its ``tradebus.strategies``
    ``entry_points`` (name -> ``module:object``) and ``modules`` (file name -> source).
    Returns ``root``."""
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = [f"{name} = {value}" for name, value in entry_points.items()]
    (info / "entry_points.txt").write_text("[tradebus.strategies]\n" + "\n".join(lines) + "\n")
    for name, source in modules.items():
        (root / name).write_text(source)
    return root


BROKEN_MODULE = """
import msgspec
from decimal import Decimal
from tradebus.strategies.catalog import StrategyKind
from tradebus_grid.bot import GridBot
from tradebus_grid.params import GridParams
from tradebus_grid.state import GridState


class LooseParams(msgspec.Struct, kw_only=True):  # not frozen
    x: int = 1

    def problems(self):
        return []


class NeedsField(GridState, kw_only=True):
    counter: int  # no default: an older snapshot could not load


class NeedsFieldBot(GridBot):
    state_type = NeedsField


class NaNState(GridState, kw_only=True):
    mark: Decimal = Decimal("NaN")  # restores unequal to itself


class NaNBot(GridBot):
    state_type = NaNState


class BadStatusBot(GridBot):  # loads (every rule holds) but its status() raises
    def status(self):
        raise RuntimeError("status is broken")


NOT_A_KIND = {"params": GridParams, "bot": GridBot}
BAD_STATUS = StrategyKind(GridParams, BadStatusBot)
LOOSE = StrategyKind(LooseParams, GridBot)
NEEDS_FIELD = StrategyKind(GridParams, NeedsFieldBot)
NAN_STATE = StrategyKind(GridParams, NaNBot)
"""
"""Objects that break the rules of a strategy, one per entry point of
:func:`broken_plugins`."""


def broken_plugins(root: Path) -> Path:
    """Install ``tradebus-broken`` (every broken strategy below) into ``root``; returns
    ``root``.

    Entry points of ``tradebus-broken``: ``missing`` (its module does not
    exist), ``raises`` (its module raises on import), ``notakind``, ``loose``
    (params not frozen), ``needsfield`` (a state field without a default),
    ``nanstate`` (a state that restores unequal); ``badstatus`` loads (it breaks
    no rule that can be checked) but its core's ``status()`` raises.
    """
    return install_plugin(
        root,
        "tradebus-broken",
        {
            "missing": "tradebus_no_such_module:KIND",
            "raises": "tradebus_raises:KIND",
            "notakind": "tradebus_broken:NOT_A_KIND",
            "loose": "tradebus_broken:LOOSE",
            "needsfield": "tradebus_broken:NEEDS_FIELD",
            "nanstate": "tradebus_broken:NAN_STATE",
            "badstatus": "tradebus_broken:BAD_STATUS",
        },
        {
            "tradebus_broken.py": BROKEN_MODULE,
            "tradebus_raises.py": "raise RuntimeError('no API key in the environment')\n",
        },
    )


@contextmanager
def fresh_catalog() -> Iterator[StrategyCatalog]:
    """The installed strategies loaded anew (after a test changed ``sys.path``), and
    loaded anew again on exit, so later tests see what is installed."""
    strategy_catalog.cache_clear()
    try:
        yield strategy_catalog()
    finally:
        strategy_catalog.cache_clear()

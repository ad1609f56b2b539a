"""ccxt, loaded on the first question about live venues.

Importing ccxt builds every exchange's module: about 2 s of CPU, which the gateway's
start-up (and every request about paper accounts) need not pay.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def ccxt_module() -> ModuleType:
    """The ``ccxt`` module (imported once, then taken from ``sys.modules``)."""
    return importlib.import_module("ccxt")


def ccxt_exchanges() -> list[str]:
    """Every exchange id ccxt knows (``ccxt.exchanges`` itself, not a copy)."""
    exchanges: list[str] = ccxt_module().exchanges
    return exchanges

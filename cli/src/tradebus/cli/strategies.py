"""``tradebus strategies``: the strategies this installation can run, and broken plug-ins.

One line per strategy (built-in or plug-in) with the entry point it comes from
(:mod:`tradebus.strategies.catalog`); each plug-in that failed to load is
printed on stderr with its package, entry point and reason. Exit status 0
when every entry point loaded, 1 otherwise: a quick check after installing a
strategy of your own (docs/write-a-strategy.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tradebus.cli.tables import render_table
from tradebus.strategies.catalog import strategy_catalog


def add_parser(sub: Any) -> None:
    """The ``strategies`` subcommand."""
    sub.add_parser(
        "strategies",
        help="list the strategies installed (built-in and plug-ins) and plug-ins that failed",
        description="List every strategy of the entry point group tradebus.strategies, "
        "with its package; report the plug-ins that failed to load (exit status 1).",
    )


def run(args: argparse.Namespace) -> int:
    """Print the catalogue; 0 when every entry point loaded, 1 otherwise."""
    catalog = strategy_catalog()
    rows = [
        (name, "built-in" if name in catalog.builtin else "plug-in", catalog.sources[name])
        for name in catalog.names()
    ]
    print(render_table(["STRATEGY", "KIND", "FROM"], rows))
    for problem in catalog.problems:
        print(f"tradebus strategies: {problem}", file=sys.stderr)
    return 1 if catalog.problems else 0

"""Tables for the terminal, drawn by rich (:class:`rich.table.Table`).

One look everywhere: a header row, a rule under it, left-aligned text and
right-aligned numbers. On a terminal the header is bold and the rule a line;
piped or redirected (scripts, tests, logs) the output is plain text with no
escape codes and no wrapping: the header, a rule of dashes, columns two spaces
apart, so it is the same on every machine.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from rich import box
from rich.console import Console
from rich.table import Table

PLAIN = box.Box(
    "    \n"  # top
    "    \n"  # head row
    " -  \n"  # under the head: dashes, columns two spaces apart
    "    \n"  # between rows (not drawn)
    "    \n"
    "    \n"
    "    \n"
    "    \n",  # bottom
    ascii=True,
)
"""No frame; a rule of dashes under the header (plain output)."""

PIPED_WIDTH = 1000
"""Width tables are drawn in: wide enough that no table wraps or cuts a cell."""


def _is_number(cell: str) -> bool:
    try:
        return Decimal(cell.replace(",", "").rstrip("%")).is_finite()
    except InvalidOperation:
        return False


def is_terminal() -> bool:
    """True when stdout is a terminal (then tables get rich's look; ``NO_COLOR`` drops colour)."""
    return sys.stdout.isatty()


def render_table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    right_from: int | None = None,
    *,
    terminal: bool | None = None,
) -> str:
    """``header`` and ``rows`` as a table, returned as text (a line per row, no final newline).

    Columns at or after ``right_from`` are right-aligned; with ``None``, a column is
    when every cell of it that is not ``-`` or empty is a number. ``terminal``
    (default: whether stdout is a terminal) chooses the rich look (bold header, a
    line under it, colour unless ``NO_COLOR``) or plain text (:data:`PLAIN`).
    """
    tty = is_terminal() if terminal is None else terminal
    cells = [[str(c) for c in row] for row in rows]
    table = Table(
        box=box.SIMPLE_HEAD if tty else PLAIN,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1) if tty else (0, 1, 0, 0),
        header_style="bold" if tty else "",
        collapse_padding=True,
    )
    for i, name in enumerate(header):
        column = [row[i] for row in cells if i < len(row) and row[i] not in ("", "-")]
        right = (
            i >= right_from
            if right_from is not None
            else bool(column) and all(_is_number(c) for c in column)
        )
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    out = io.StringIO()
    console = Console(
        file=out,
        width=PIPED_WIDTH,  # the table's natural width: a cut column would hide numbers
        force_terminal=tty,
        no_color=not tty or bool(os.environ.get("NO_COLOR")),
        color_system="auto" if tty else None,
        highlight=False,
        emoji=False,
        markup=False,
        legacy_windows=False,
    )
    console.print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())

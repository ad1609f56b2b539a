"""Plain-text tables for the terminal (left-aligned text, right-aligned numbers)."""

from __future__ import annotations

from collections.abc import Sequence


def _is_number(cell: str) -> bool:
    text = cell.replace(",", "").replace("-", "", 1).replace(".", "", 1).replace("%", "")
    return text.isdigit()


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], right_from: int | None = None
) -> str:
    """``header`` and ``rows`` as aligned columns under a dashed rule.

    Columns at or after ``right_from`` are right-aligned; with ``None``, every
    cell that looks like a number is.
    """
    table = [tuple(str(c) for c in header), *(tuple(str(c) for c in row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        cells = []
        for i, cell in enumerate(row):
            right = (i >= right_from) if right_from is not None else (n > 0 and _is_number(cell))
            cells.append(cell.rjust(widths[i]) if right else cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)

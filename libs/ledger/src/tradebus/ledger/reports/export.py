"""Report records as CSV text, a line at a time (for a streamed HTTP download).

RFC 4180 CSV as the standard :mod:`csv` module writes it (``,``, ``"``
quoting where needed, ``\\r\\n`` line ends), a header line first. Cells:

* a :class:`~decimal.Decimal` in plain notation, never an exponent
  (``0.0012``, not ``1.2E-3``), as many digits as the ledger holds;
* a time field (a record type's ``TIME_FIELDS``: int ns since the epoch)
  gives two columns: the int, and ISO-8601 UTC with nanoseconds
  (``2024-03-01T12:00:00.000000001Z``) under the name ``TIME_FIELDS`` gives;
* None as an empty cell, booleans as ``true``/``false``, a mapping (a P&L
  row's ``other_fees``) as ``key=value`` pairs joined by spaces;
* text that a spreadsheet would run as a formula (starting with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return: OWASP, "CSV Injection")
  gets a leading ``'``. Numbers are not text and are never changed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, TypeVar

import msgspec

from tradebus.ledger.reports.scope import ReportArgumentError

R = TypeVar("R", bound=msgspec.Struct)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CsvFormat(Generic[R]):
    """How records of ``record_type`` become CSV lines: ``columns`` (its field names, in
    order; all its fields by default).

    Raises
    ------
    ReportArgumentError
        ``columns``: a name that is not a field of ``record_type``, or none at all.
    """

    def __init__(self, record_type: type[R], columns: Sequence[str] | None = None) -> None:
        fields = record_type.__struct_fields__
        chosen = list(fields if columns is None else columns)
        unknown = [c for c in chosen if c not in fields]
        if unknown or not chosen:
            raise ReportArgumentError(
                "columns",
                f"expected some of {', '.join(fields)}; got {', '.join(unknown) or 'none'}",
            )
        times: Mapping[str, str] = getattr(record_type, "TIME_FIELDS", {})
        self._columns = chosen
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)
        self._times = {c: times[c] for c in chosen if c in times}
        self.header: list[str] = []
        """The CSV header's names: the columns, each time field followed by its ISO one."""
        for c in chosen:
            self.header.append(c)
            if c in self._times:
                self.header.append(self._times[c])

    def header_line(self) -> str:
        """The header line (with its ``\\r\\n``)."""
        return self._line(self.header)

    def lines(self, records: Iterable[R]) -> Iterator[str]:
        """One CSV line (with its ``\\r\\n``) per record, in order."""
        for record in records:
            cells: list[str] = []
            for c in self._columns:
                value = getattr(record, c)
                cells.append(cell(value))
                if c in self._times:
                    cells.append("" if value is None else iso_utc(value))
            yield self._line(cells)

    def _line(self, cells: list[str]) -> str:
        self._writer.writerow(cells)
        line = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return line


def to_csv(
    record_type: type[R], records: Iterable[R], columns: Sequence[str] | None = None
) -> Iterator[str]:
    """The CSV text of ``records`` (all of type ``record_type``), the header line first, then
    a line per record; ``columns`` as :class:`CsvFormat`'s.

    Raises
    ------
    ReportArgumentError
        ``columns``: as :class:`CsvFormat` (raised at the call, before any line).
    """
    fmt = CsvFormat(record_type, columns)
    return _with_header(fmt, records)


def _with_header(fmt: CsvFormat[R], records: Iterable[R]) -> Iterator[str]:
    yield fmt.header_line()
    yield from fmt.lines(records)


def cell(value: Any) -> str:
    """One value as CSV cell text (module docstring); not yet quoted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return " ".join(f"{k}={cell(v)}" for k, v in sorted(value.items()))
    text = value.value if isinstance(value, Enum) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def iso_utc(ts_ns: int) -> str:
    """``ts_ns`` (ns since the epoch) as ISO-8601 UTC with nine fraction digits:
    ``2024-03-01T12:00:00.000000001Z``."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"

"""What the readers of recorded files share: the error type, file opening, CSV rows, fields.

Every error is a :class:`DataFileError` whose message is
``<path>:<line>: <what is wrong>`` (the venue parsers raise it too, from
:meth:`~tradebus.feeds.parsing.ParserBase.recorded`). Money values are parsed
as :class:`~decimal.Decimal` from the file's text, never through a float.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO

from tradebus.common.messages import QuoteTick, TradeTick

__all__ = [
    "NS_PER_S",
    "NS_PER_US",
    "DataFileError",
    "ErrorFormatter",
    "Event",
    "FileReader",
    "at",
    "csv_rows",
    "int_field",
    "open_binary",
    "open_text",
    "parse_decimal",
    "parse_non_negative",
    "parse_positive",
    "price_field",
    "size_field",
]

Event = QuoteTick | TradeTick
"""A market event yielded by the readers."""

FileReader = Callable[[Path, str, str], Iterator[Event]]
"""A per-file reader: ``reader(path, symbol, venue)`` yields the file's events."""

ErrorFormatter = Callable[[str], str]
"""``error(what)`` gives the full ``<path>:<line>: <what>`` message."""

NS_PER_US = 1_000
"""Nanoseconds per microsecond."""

NS_PER_S = 1_000_000_000
"""Nanoseconds per second."""


class DataFileError(ValueError):
    """A data file is malformed; the message is ``<path>:<line>: <what is wrong>``."""


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def open_binary(path: Path) -> gzip.GzipFile | io.BufferedReader:
    """``path`` opened for binary reading, decompressed when its suffix is ``.gz``."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def open_text(path: Path) -> IO[str]:
    """``path`` opened as UTF-8 text (``.gz`` decompressed), newlines untranslated for csv."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", newline="")


def csv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """``(line number, [value of each of columns])`` of every non-blank data row.

    Values are stripped of surrounding blanks. The header names the columns
    (any order, extra columns ignored).

    Raises
    ------
    DataFileError
        On an empty file, a missing column, a row of the wrong width, bad CSV,
        text that is not UTF-8 or an unreadable gzip stream.
    """
    with open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise DataFileError(f"{path}:1: empty file, expected a header {','.join(columns)}")
            names = [name.strip().lstrip("\ufeff") for name in header]
            for column in columns:
                if column not in names:
                    raise DataFileError(
                        f"{path}:{reader.line_num}: missing column {column!r}"
                        f" (header: {','.join(names)})"
                    )
            wanted = [names.index(column) for column in columns]
            width = len(names)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != width:
                    raise DataFileError(
                        f"{path}:{reader.line_num}: expected {width} fields, got {len(row)}"
                    )
                yield reader.line_num, [row[i].strip() for i in wanted]
        except csv.Error as exc:
            raise DataFileError(f"{path}:{reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise DataFileError(f"{path}:{reader.line_num + 1}: not UTF-8 text: {exc}") from None
        except (EOFError, gzip.BadGzipFile) as exc:
            raise DataFileError(f"{path}: unreadable gzip: {exc}") from None


# --------------------------------------------------------------------------
# Field parsing
# --------------------------------------------------------------------------


def at(path: Path, line: int) -> ErrorFormatter:
    """An :data:`ErrorFormatter` for line ``line`` of ``path``."""
    return lambda what: f"{path}:{line}: {what}"


def int_field(text: str, path: Path, line: int, column: str) -> int:
    """A non-negative integer column."""
    if not (text.isascii() and text.isdigit()):
        raise DataFileError(f"{path}:{line}: {column} {text!r} is not a non-negative integer")
    return int(text)


def price_field(text: str, path: Path, line: int, column: str) -> Decimal:
    """A price column (a decimal > 0)."""
    return parse_positive(text, at(path, line), column)


def size_field(text: str, path: Path, line: int, column: str) -> Decimal:
    """A size column (a decimal >= 0)."""
    return parse_non_negative(text, at(path, line), column)


def parse_decimal(text: str, error: ErrorFormatter, name: str) -> Decimal:
    """A finite decimal number from its text."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise DataFileError(error(f"{name} {text!r} is not a decimal number")) from None
    if not value.is_finite():
        raise DataFileError(error(f"{name} {text!r} is not a finite number"))
    return value


def parse_positive(text: str, error: ErrorFormatter, name: str) -> Decimal:
    """A finite decimal number > 0 from its text."""
    value = parse_decimal(text, error, name)
    if value <= 0:
        raise DataFileError(error(f"{name} {text!r} must be > 0"))
    return value


def parse_non_negative(text: str, error: ErrorFormatter, name: str) -> Decimal:
    """A finite decimal number >= 0 from its text."""
    value = parse_decimal(text, error, name)
    if value < 0:
        raise DataFileError(error(f"{name} {text!r} must be >= 0"))
    return value

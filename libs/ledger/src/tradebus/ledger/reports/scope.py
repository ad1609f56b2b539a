"""What every report shares: whose rows it reads, its argument checks, pages and cursors.

Scope
    Every report takes ``user``: a :data:`UserId` (that user's rows only, also
    whatever the cursor says) or :data:`ALL_USERS` (an administrator's view),
    never a default: a forgotten user is a type error, not everyone's rows.

Pages
    A :class:`Page` holds at most ``limit`` rows in a unique order (keyset
    pagination: the next page starts after the last row seen, so rows
    inserted while someone pages never shift, repeat or skip the rows they
    are walking; no OFFSET). ``next_cursor`` is an opaque url-safe string,
    None on the last page.

Cursors
    A cursor is base64url (no padding) of a small JSON array: format
    version, what it pages (``orders`` / ``fills``), the direction, and the
    two integers of the last row's sort key. It is a position, not a
    permission: the rows a query may return are decided by its arguments
    alone, so a forged cursor can only move the start of a page within the
    caller's own rows. A cursor that does not decode to exactly that shape,
    or that was made for another report or direction, raises
    :class:`InvalidCursor`.

Errors
    Bad arguments raise :class:`ReportArgumentError` (a :class:`ValueError`)
    whose ``field`` names the argument, for the gateway's 400 answers.
"""

from __future__ import annotations

import base64
import binascii
import enum
from typing import Final, Generic, Literal, TypeAlias, TypeVar

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from tradebus.common.ids import UserId


class _AllUsers(enum.Enum):
    ALL_USERS = "all users"


ALL_USERS: Final = _AllUsers.ALL_USERS
"""Pass as ``user`` to read every user's rows (administrators only: the caller checks)."""

AllUsers: TypeAlias = Literal[_AllUsers.ALL_USERS]
"""The type of :data:`ALL_USERS`."""

UserScope: TypeAlias = UserId | AllUsers
"""Whose rows a report reads: one user's id, or :data:`ALL_USERS`."""

LedgerReader: TypeAlias = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
"""Where reports run their statements: a pool (:func:`tradebus.ledger.pool.create_pool`)
or one connection."""

MAX_LIMIT = 1000
"""The most rows one page may hold."""

_MAX_CURSOR_CHARS = 200
_BIGINT = (-(2**63), 2**63 - 1)
_CURSOR_VERSION = 1

T = TypeVar("T")


class ReportArgumentError(ValueError):
    """An argument of a report is invalid; ``field`` names it (``"cursor"``, ``"limit"``...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidCursor(ReportArgumentError):
    """The ``cursor`` argument is not a cursor this report made (garbled, truncated,
    or made by another report or for the other direction)."""

    def __init__(self, message: str) -> None:
        super().__init__("cursor", message)


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a report: ``items`` in the report's order, at most the ``limit`` asked;
    ``next_cursor`` fetches the rows after them, None when there are none (yet)."""

    items: list[T]
    next_cursor: str | None


# ---------------------------------------------------------------- argument checks
def check_user(user: UserScope) -> UserId | None:
    """The user id to filter by, or None for :data:`ALL_USERS`.

    Raises
    ------
    ReportArgumentError
        ``user``: neither a non-empty string nor :data:`ALL_USERS` (``None`` included:
        an administrator's view is asked for by name).
    """
    if user is ALL_USERS:
        return None
    if isinstance(user, str) and user:
        return user
    raise ReportArgumentError("user", f"expected a user id or ALL_USERS, got {user!r}")


def check_text(field: str, value: str | None) -> str | None:
    """``value`` if None or a non-empty string without NUL.

    Raises
    ------
    ReportArgumentError
        ``field``: an empty string, a NUL character (Postgres text cannot hold one), or
        not a string.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ReportArgumentError(field, f"expected a non-empty string, got {value!r}")
    return value


def check_time_range(since_ns: int | None, until_ns: int | None) -> None:
    """Check a time range ``[since_ns, until_ns)`` (int ns since the epoch; either open).

    Raises
    ------
    ReportArgumentError
        ``since_ns`` / ``until_ns``: not an int in the bigint range, or since after until.
    """
    for field, value in (("since_ns", since_ns), ("until_ns", until_ns)):
        if value is None:
            continue
        if type(value) is not int or not _BIGINT[0] <= value <= _BIGINT[1]:
            raise ReportArgumentError(field, f"expected int nanoseconds, got {value!r}")
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        raise ReportArgumentError("since_ns", f"{since_ns} is after until_ns {until_ns}")


def check_limit(limit: int, field: str = "limit", maximum: int = MAX_LIMIT) -> int:
    """``limit`` if it is an int in ``1..maximum``.

    Raises
    ------
    ReportArgumentError
        ``field``: otherwise.
    """
    if type(limit) is not int or not 1 <= limit <= maximum:
        raise ReportArgumentError(field, f"expected an int from 1 to {maximum}, got {limit!r}")
    return limit


# ------------------------------------------------------------------------ cursors
Report = Literal["orders", "fills", "audit"]


class Keyset(msgspec.Struct, frozen=True, array_like=True):
    """A cursor's content: ``[version, report, newest_first, key0, key1]``; the key is the
    sort key of the last row of the page before (two ints)."""

    version: int
    report: str
    newest_first: bool
    key0: int
    key1: int


def encode_cursor(report: Report, newest_first: bool, key: tuple[int, int]) -> str:
    """The cursor that continues ``report`` after the row whose sort key is ``key``."""
    raw = msgspec.json.encode(Keyset(_CURSOR_VERSION, report, newest_first, *key))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, report: Report, newest_first: bool) -> tuple[int, int]:
    """The sort key a cursor of :func:`encode_cursor` continues after.

    Raises
    ------
    InvalidCursor
        If ``cursor`` is not a string :func:`encode_cursor` made for this ``report`` and
        direction.
    """
    if not isinstance(cursor, str) or not 0 < len(cursor) <= _MAX_CURSOR_CHARS:
        raise InvalidCursor("not a cursor of this report")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        keyset = msgspec.json.decode(raw, type=Keyset, strict=True)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidCursor("not a cursor of this report (garbled)") from None
    if keyset.version != _CURSOR_VERSION or keyset.report != report:
        raise InvalidCursor(f"not a cursor of the {report} report")
    if keyset.newest_first != newest_first:
        raise InvalidCursor("made for the other sort order")
    for value in (keyset.key0, keyset.key1):
        if not _BIGINT[0] <= value <= _BIGINT[1]:
            raise InvalidCursor("not a cursor of this report (key out of range)")
    return keyset.key0, keyset.key1


# ------------------------------------------------------------------ SQL building
class Where:
    """The ``WHERE`` conditions of a statement and their positional parameters.

    Values are always parameters (``$n``), never text in the SQL.
    """

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.args: list[object] = []

    def param(self, value: object) -> str:
        """Add ``value`` as the next parameter; return its placeholder (``$3``)."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str, *values: object) -> None:
        """Add ``condition``, its ``{}`` fields replaced by the placeholders of ``values``."""
        self.conditions.append(condition.format(*(self.param(v) for v in values)))

    def equal(self, column: str, value: object | None) -> None:
        """``column = value`` unless ``value`` is None (no filter)."""
        if value is not None:
            self.add(f"{column} = {{}}", value)

    def time_range(self, column: str, since_ns: int | None, until_ns: int | None) -> None:
        """``since_ns <= column < until_ns``, either end open when None."""
        if since_ns is not None:
            self.add(f"{column} >= {{}}", since_ns)
        if until_ns is not None:
            self.add(f"{column} < {{}}", until_ns)

    def with_time_range(self, column: str, since_ns: int | None, until_ns: int | None) -> Where:
        """A copy of these conditions with :meth:`time_range` added (these stay as they are)."""
        copy = Where()
        copy.conditions, copy.args = list(self.conditions), list(self.args)
        copy.time_range(column, since_ns, until_ns)
        return copy

    def sql(self) -> str:
        """``WHERE c1 AND c2 ...``, or an empty string without conditions."""
        return "WHERE " + " AND ".join(self.conditions) if self.conditions else ""


_FILTER_COLUMNS = {"bot": "source", "account": "account_id", "symbol": "symbol"}
"""A report's filter argument and the ``orders`` / ``fills`` column it keeps one value of."""


def chosen_rows(
    user: UserScope,
    since_ns: int | None,
    until_ns: int | None,
    prefix: str = "",
    **filters: str | None,
) -> Where:
    """Check a report's common arguments and start its conditions: the ``orders`` or
    ``fills`` rows (columns named ``<prefix><column>``, e.g. ``f.source``) of ``user``
    (:data:`ALL_USERS`: everyone) whose ``bot`` / ``account`` / ``symbol`` (``filters``;
    None: any) are those given. The time range ``[since_ns, until_ns)`` is checked but
    not added: each report applies it to its own column.

    Raises
    ------
    ReportArgumentError
        ``user``, ``since_ns`` / ``until_ns`` or a filter is invalid; ``field`` names it.
    """
    where = Where()
    where.equal(f"{prefix}user_id", check_user(user))
    check_time_range(since_ns, until_ns)
    for field, value in filters.items():
        where.equal(prefix + _FILTER_COLUMNS[field], check_text(field, value))
    return where

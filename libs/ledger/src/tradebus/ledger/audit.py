"""The audit log: who changed what, when, from where, before and after (table ``audit_log``).

Every part of tradebus publishes an :class:`~tradebus.common.messages.AuditEvent`
on ``audit.<source>`` for each change it makes on someone's behalf
(``tradebus.control.audit.AuditTrail``); the gateway's audit sink writes them
here with :meth:`AuditLog.write`, and admins (or a user, for their own rows)
read them with :meth:`AuditLog.page` (scopes, argument errors and cursors as
every ledger report has them: :mod:`tradebus.ledger.reports.scope`).

Columns (migrations 0001 and 0006): ``id`` (write order), ``event_id`` (the
event's id, unique: an event published or delivered twice is stored once),
``ts`` (when it happened, ns), ``actor``, ``source``, ``action``, ``target``,
``user_id`` (the owner of the target; NULL for the whole system), ``before``,
``after`` and ``details`` (JSON objects; money as decimal strings). No value
holds a secret: the publishers put specs, settings and reasons there, never a
key or a password.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from tradebus.common.ids import UserId
from tradebus.common.messages import AuditEvent
from tradebus.ledger.reports.scope import (
    UserScope,
    check_limit,
    check_text,
    check_time_range,
    check_user,
    decode_cursor,
    encode_cursor,
)

DEFAULT_LIMIT = 100
"""Rows per page when the caller names no limit."""

_json_object = msgspec.json.Decoder(dict[str, Any])


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``audit_log`` (see the module docstring for the fields).

    ``ts`` is the event's time (ns since the epoch); ``id`` the row's place in
    write order; ``user`` the owner of ``target`` (None: the whole system).
    """

    id: int
    event_id: str | None
    ts: int
    actor: str
    source: str
    action: str
    target: str
    user: UserId | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    details: dict[str, Any]


def _json_text(value: dict[str, Any] | None) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _row(record: asyncpg.Record) -> AuditRow:
    before, after = record["before"], record["after"]
    return AuditRow(
        id=record["id"],
        event_id=record["event_id"],
        ts=record["ts"],
        actor=record["actor"],
        source=record["source"],
        action=record["action"],
        target=record["target"],
        user=None if record["user_id"] is None else UserId(record["user_id"]),
        before=None if before is None else _json_object.decode(before),
        after=None if after is None else _json_object.decode(after),
        details=_json_object.decode(record["details"]),
    )


_INSERT = """
WITH written AS (
    INSERT INTO audit_log
        (event_id, ts, actor, source, action, target, user_id, before, after, details)
    SELECT e.event_id, e.ts, e.actor, e.source, e.action, e.target, e.user_id,
           e.before::jsonb, e.after::jsonb, e.details::jsonb
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[])
         WITH ORDINALITY
         AS e(event_id, ts, actor, source, action, target, user_id, before, after, details, n)
    ORDER BY e.n
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM written
"""

_PAGE = """
SELECT id, event_id, ts, actor, source, action, target, user_id,
       before::text AS before, after::text AS after, details::text AS details
FROM audit_log
WHERE ($1::text IS NULL OR user_id = $1)
  AND ($2::bigint IS NULL OR ts >= $2)
  AND ($3::bigint IS NULL OR ts < $3)
  AND ($4::text IS NULL OR starts_with(action, $4))
  AND ($5::text IS NULL OR starts_with(target, $5))
  AND ($6::text IS NULL OR actor = $6)
  AND ($7::bigint IS NULL OR (ts, id) < ($7, $8::bigint))
ORDER BY ts DESC, id DESC
LIMIT $9
"""


class AuditLog:
    """Writes and reads of ``audit_log`` behind an :class:`asyncpg.Pool` (module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def write(self, events: Sequence[AuditEvent]) -> int:
        """Store ``events`` in one statement (one round trip), in their order; an event
        whose ``event_id`` is stored already is skipped (``ON CONFLICT DO NOTHING``),
        also when it appears twice in ``events``. Returns the rows written.

        Raises
        ------
        OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError
            If Postgres cannot be reached (nothing was written; try again).
        asyncpg.DataError
            If Postgres cannot hold a value (a NUL character in a text); nothing
            was written.
        """
        if not events:
            return 0
        columns: list[list[Any]] = [[] for _ in range(10)]
        for e in events:
            values = (
                e.event_id,
                e.ts_event,
                e.actor,
                e.source,
                e.action,
                e.target,
                e.user,
                _json_text(e.before),
                _json_text(e.after),
                _json_text(e.details),
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        return int(await self._pool.fetchval(_INSERT, *columns))

    async def page(
        self,
        *,
        user: UserScope,
        since_ns: int | None = None,
        until_ns: int | None = None,
        action: str | None = None,
        target: str | None = None,
        actor: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> tuple[list[AuditRow], str | None]:
        """One page of the log, newest first (by ``ts``, then ``id``), and the cursor of
        the next page (None after the last one).

        Parameters
        ----------
        user
            A user id (only rows whose ``user_id`` is that user: never another
            user's, nor the system's), or
            :data:`~tradebus.ledger.reports.scope.ALL_USERS` (an admin: every row).
        since_ns, until_ns
            Only events with ``since_ns <= ts < until_ns`` (ns since the epoch).
        action
            Only actions starting with this (``"bot."``: every bot action;
            ``"bot.pause"``: pauses).
        target
            Only targets starting with this (``bot:``: every bot; ``bot:alice-``:
            alice's bots; ``account:alice-paper``: that account).
        actor
            Only rows with exactly this actor (``alice``, ``cli:ops``, ``reconciler``).
        cursor
            The ``next_cursor`` of the previous page (None: the first page). The
            same filters must be passed with it.
        limit
            Rows per page, 1 to :data:`~tradebus.ledger.reports.scope.MAX_LIMIT`.

        Raises
        ------
        tradebus.ledger.reports.scope.ReportArgumentError
            A ``ValueError`` whose ``field`` names the bad argument (``user``,
            ``limit``, ``since_ns``, ``until_ns``, ``action``, ``target``, ``actor``);
            :class:`~tradebus.ledger.reports.scope.InvalidCursor` (``field`` ``cursor``)
            for a cursor this listing did not hand out.
        """
        scope = check_user(user)
        check_limit(limit)
        check_time_range(since_ns, until_ns)
        for field, value in (("action", action), ("target", target), ("actor", actor)):
            check_text(field, value)
        after_ts = after_id = None
        if cursor is not None:
            after_ts, after_id = decode_cursor(cursor, "audit", newest_first=True)
        records = await self._pool.fetch(
            _PAGE,
            scope,
            since_ns,
            until_ns,
            action,
            target,
            actor,
            after_ts,
            after_id,
            limit + 1,
        )
        rows = [_row(r) for r in records[:limit]]
        next_cursor = None
        if len(records) > limit:
            last = rows[-1]
            next_cursor = encode_cursor("audit", True, (last.ts, last.id))
        return rows, next_cursor


async def account_owner(pool: asyncpg.Pool, account_id: str) -> UserId | None:
    """The user of ledger account ``account_id`` (the ``user`` of an audit event about
    it), or None if the ledger does not know the account."""
    owner = await pool.fetchval("SELECT user_id FROM accounts WHERE id = $1", account_id)
    return None if owner is None else UserId(owner)

"""Accounts added at run time: the ledger table ``account_configs`` (migration 0006).

A row is one account a user added through the gateway: its owner, its
settings (``spec``: the fields of an accounts-file entry,
:class:`tradebus.engine.accounts.AccountSpec`, as JSON; never a key) and, for
a live account, its exchange credentials sealed to execution's public key
(``sealed_credentials``; :mod:`tradebus.common.sealed`), which only execution
can open. Execution loads the active rows at start and on ``ctl.accounts.sync``.

Account ids are global: one id names one account for good, whether it came
from the accounts file (the ledger's ``accounts`` table, created when
execution first loads it) or from here, so :meth:`AccountConfigs.create`
refuses an id that either table holds. Deleting is soft (``deleted_ns``):
the row stays, as do the account's orders, fills and journal entries.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from tradebus.common.ids import AccountId, UserId


class AccountIdTaken(ValueError):
    """The account id is used already (``field`` is ``"id"``): ids are global and never reused."""

    field = "id"

    def __init__(self, account_id: str, where: str) -> None:
        super().__init__(f"id: account {account_id!r} exists already ({where}); choose another id")
        self.account_id = account_id


class AccountConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``account_configs``.

    ``spec`` holds the account's settings as JSON (no key); ``sealed_credentials``
    the sealed box of a live account (None for paper). Times are ns since the epoch;
    ``deleted_ns`` is None while the account is active.
    """

    account_id: AccountId
    user_id: UserId
    spec: dict[str, Any]
    sealed_credentials: bytes | None
    created_ns: int
    updated_ns: int
    deleted_ns: int | None = None

    @property
    def active(self) -> bool:
        """True until the account is deleted."""
        return self.deleted_ns is None

    def __repr__(self) -> str:  # never show the sealed box, even in a traceback
        sealed = "None" if self.sealed_credentials is None else "<sealed>"
        return (
            f"AccountConfig(account_id={self.account_id!r}, user_id={self.user_id!r}, "
            f"spec={self.spec!r}, sealed_credentials={sealed}, deleted_ns={self.deleted_ns!r})"
        )


_COLUMNS = (
    "account_id, user_id, spec::text AS spec, sealed_credentials, created_ns, updated_ns,"
    " deleted_ns"
)
_SPEC = msgspec.json.Decoder(dict[str, Any])


def _row(record: asyncpg.Record) -> AccountConfig:
    sealed = record["sealed_credentials"]
    return AccountConfig(
        account_id=AccountId(record["account_id"]),
        user_id=UserId(record["user_id"]),
        spec=_SPEC.decode(record["spec"]),
        sealed_credentials=None if sealed is None else bytes(sealed),
        created_ns=record["created_ns"],
        updated_ns=record["updated_ns"],
        deleted_ns=record["deleted_ns"],
    )


class AccountConfigs:
    """Reads and writes ``account_configs`` over an :class:`asyncpg.Pool`
    (:func:`tradebus.ledger.pool.create_pool`, or any pool)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        account_id: AccountId,
        user_id: UserId,
        spec: dict[str, Any],
        sealed_credentials: bytes | None,
        now_ns: int,
    ) -> AccountConfig:
        """Insert a new account (active) and return its row.

        ``spec`` must be JSON-encodable (Decimals become strings) and must not
        hold a key: the caller seals credentials and passes only the box.

        Raises
        ------
        AccountIdTaken
            If ``account_id`` is in ``account_configs`` (deleted ones too) or in
            the ledger's ``accounts`` (an account of the accounts file).
        """
        body = msgspec.json.encode(spec).decode()
        async with self._pool.acquire() as conn, conn.transaction():
            # both tables are checked in one transaction; the primary key settles a race
            if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id):
                raise AccountIdTaken(account_id, "in the ledger")
            record = await conn.fetchrow(
                "INSERT INTO account_configs (account_id, user_id, spec, sealed_credentials,"
                " created_ns, updated_ns) VALUES ($1, $2, $3::jsonb, $4, $5, $5)"
                f" ON CONFLICT (account_id) DO NOTHING RETURNING {_COLUMNS}",
                account_id,
                user_id,
                body,
                sealed_credentials,
                now_ns,
            )
        if record is None:
            raise AccountIdTaken(account_id, "added through the API")
        return _row(record)

    async def get(self, account_id: AccountId) -> AccountConfig | None:
        """The row of ``account_id`` (deleted or not), or None."""
        async with self._pool.acquire() as conn:
            record = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM account_configs WHERE account_id = $1", account_id
            )
        return None if record is None else _row(record)

    async def by_user(
        self, user_id: UserId | None = None, include_deleted: bool = False
    ) -> list[AccountConfig]:
        """The rows of ``user_id`` (every user's if None), by account id; active ones only
        unless ``include_deleted``."""
        where, args = [], []
        if user_id is not None:
            args.append(user_id)
            where.append(f"user_id = ${len(args)}")
        if not include_deleted:
            where.append("deleted_ns IS NULL")
        sql = f"SELECT {_COLUMNS} FROM account_configs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        async with self._pool.acquire() as conn:
            records = await conn.fetch(sql + " ORDER BY account_id", *args)
        return [_row(r) for r in records]

    async def active(self) -> list[AccountConfig]:
        """Every account not deleted (what execution loads), by account id."""
        return await self.by_user()

    async def mark_deleted(self, account_id: AccountId, now_ns: int) -> AccountConfig | None:
        """Mark ``account_id`` deleted at ``now_ns`` (once: a second call keeps the first
        time); the row after, or None if there is no such account. Ledger rows stay."""
        async with self._pool.acquire() as conn:
            record = await conn.fetchrow(
                "UPDATE account_configs SET deleted_ns = coalesce(deleted_ns, $2),"
                " updated_ns = CASE WHEN deleted_ns IS NULL THEN $2 ELSE updated_ns END"
                f" WHERE account_id = $1 RETURNING {_COLUMNS}",
                account_id,
                now_ns,
            )
        return None if record is None else _row(record)

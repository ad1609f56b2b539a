"""People who sign in to the gateway, and their sessions (tables of migration 0006).

* :class:`Users`: one row per person: id (a subject token, also their NATS
  and intent name), role (``user`` or ``admin``), an argon2id password hash
  (a PHC string; the plain password is never stored or passed here), the
  public key of their own NATS account once it exists, who created them, and
  when they were disabled, if they were.
* :class:`Sessions`: refresh tokens, stored as SHA-256 hashes only. A
  *family* is one sign-in; each refresh spends a token and issues the next
  of the family (rotation). Presenting a spent token again means it was
  copied: the whole family is revoked (OAuth 2.0 Security BCP, RFC 9700
  §4.14.2, "refresh token rotation").
"""

from __future__ import annotations

from typing import Literal

import asyncpg
import msgspec

from tradebus.common.ids import UserId

Role = Literal["user", "admin"]
ROLES: tuple[Role, ...] = ("user", "admin")


class UserExists(ValueError):
    """A user of that id exists already."""


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``users``; ``password_hash`` never leaves the gateway's auth code."""

    id: UserId
    role: Role
    password_hash: str
    nats_account: str | None
    created_by: str
    created_ns: int
    updated_ns: int
    disabled_ns: int | None

    @property
    def active(self) -> bool:
        """True unless the user was disabled."""
        return self.disabled_ns is None


_USER_COLUMNS = (
    "id, role, password_hash, nats_account, created_by, created_ns, updated_ns, disabled_ns"
)


def _user(row: asyncpg.Record | None) -> UserRow | None:
    if row is None:
        return None
    return UserRow(
        id=UserId(row["id"]),
        role=row["role"],
        password_hash=row["password_hash"],
        nats_account=row["nats_account"],
        created_by=row["created_by"],
        created_ns=row["created_ns"],
        updated_ns=row["updated_ns"],
        disabled_ns=row["disabled_ns"],
    )


class Users:
    """The ``users`` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self, user: UserId, role: Role, password_hash: str, created_by: str, now_ns: int
    ) -> UserRow:
        """Add a user.

        Raises
        ------
        UserExists
            If ``user`` is taken.
        """
        try:
            row = await self._pool.fetchrow(
                f"INSERT INTO users (id, role, password_hash, created_by, created_ns, updated_ns)"
                f" VALUES ($1, $2, $3, $4, $5, $5) RETURNING {_USER_COLUMNS}",
                user,
                role,
                password_hash,
                created_by,
                now_ns,
            )
        except asyncpg.UniqueViolationError:
            raise UserExists(f"user {user!r} exists") from None
        created = _user(row)
        assert created is not None
        return created

    async def get(self, user: str) -> UserRow | None:
        """The user of id ``user``, or None."""
        return _user(
            await self._pool.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user)
        )

    async def list(self) -> list[UserRow]:
        """Every user, by id."""
        rows = await self._pool.fetch(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id")
        return [u for u in map(_user, rows) if u is not None]

    async def count_admins(self) -> int:
        """How many active admins there are."""
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM users WHERE role = 'admin' AND disabled_ns IS NULL"
            )
        )

    async def set_password(self, user: UserId, password_hash: str, now_ns: int) -> bool:
        """Replace a user's password hash; False if there is no such user."""
        done = await self._pool.execute(
            "UPDATE users SET password_hash = $2, updated_ns = $3 WHERE id = $1",
            user,
            password_hash,
            now_ns,
        )
        return done.endswith(" 1")

    async def set_role(self, user: UserId, role: Role, now_ns: int) -> bool:
        """Change a user's role; False if there is no such user."""
        done = await self._pool.execute(
            "UPDATE users SET role = $2, updated_ns = $3 WHERE id = $1", user, role, now_ns
        )
        return done.endswith(" 1")

    async def set_nats_account(self, user: UserId, account_public_key: str, now_ns: int) -> None:
        """Record the public key of the user's own NATS account."""
        await self._pool.execute(
            "UPDATE users SET nats_account = $2, updated_ns = $3 WHERE id = $1",
            user,
            account_public_key,
            now_ns,
        )

    async def set_disabled(self, user: UserId, disabled: bool, now_ns: int) -> bool:
        """Disable (or enable again) a user; disabling also revokes all their sessions.
        False if there is no such user."""
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "UPDATE users SET disabled_ns = $2, updated_ns = $3 WHERE id = $1",
                user,
                now_ns if disabled else None,
                now_ns,
            )
            if disabled:
                await conn.execute(
                    "UPDATE refresh_tokens SET revoked_ns = $2"
                    " WHERE user_id = $1 AND revoked_ns IS NULL",
                    user,
                    now_ns,
                )
        return done.endswith(" 1")


class RefreshOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What presenting a refresh token found.

    ``user`` and ``family`` when the token was valid and is now spent (the
    caller issues the next one of the family); ``reused`` when a spent token
    came back (its family is now revoked); neither when it is unknown,
    expired or revoked.
    """

    user: UserId | None = None
    family: str | None = None
    reused: bool = False


class Sessions:
    """The ``refresh_tokens`` table; tokens are passed in as their SHA-256 hashes."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(
        self, token_hash: bytes, user: UserId, family: str, now_ns: int, expires_ns: int
    ) -> None:
        """Store a new refresh token of ``family``."""
        await self._pool.execute(
            "INSERT INTO refresh_tokens (token_hash, user_id, family, created_ns, expires_ns)"
            " VALUES ($1, $2, $3, $4, $5)",
            token_hash,
            user,
            family,
            now_ns,
            expires_ns,
        )

    async def spend(self, token_hash: bytes, now_ns: int) -> RefreshOutcome:
        """Spend a refresh token (once): see :class:`RefreshOutcome`."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT t.user_id, t.family, t.expires_ns, t.used_ns, t.revoked_ns,"
                " u.disabled_ns FROM refresh_tokens t JOIN users u ON u.id = t.user_id"
                " WHERE t.token_hash = $1 FOR UPDATE OF t",
                token_hash,
            )
            if row is None:
                return RefreshOutcome()
            if row["used_ns"] is not None and row["revoked_ns"] is None:
                await conn.execute(
                    "UPDATE refresh_tokens SET revoked_ns = $2"
                    " WHERE family = $1 AND revoked_ns IS NULL",
                    row["family"],
                    now_ns,
                )
                return RefreshOutcome(reused=True)
            usable = (
                row["revoked_ns"] is None
                and row["used_ns"] is None
                and row["expires_ns"] > now_ns
                and row["disabled_ns"] is None
            )
            if not usable:
                return RefreshOutcome()
            await conn.execute(
                "UPDATE refresh_tokens SET used_ns = $2 WHERE token_hash = $1", token_hash, now_ns
            )
            return RefreshOutcome(user=UserId(row["user_id"]), family=row["family"])

    async def revoke_family_of(self, token_hash: bytes, user: UserId, now_ns: int) -> bool:
        """Revoke the sign-in a refresh token of ``user`` belongs to (log out); False if the
        token is not one of ``user``'s."""
        done = await self._pool.execute(
            "UPDATE refresh_tokens SET revoked_ns = $3 WHERE revoked_ns IS NULL AND family ="
            " (SELECT family FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2)",
            token_hash,
            user,
            now_ns,
        )
        return not done.endswith(" 0")

    async def revoke_all(self, user: UserId, now_ns: int) -> int:
        """Revoke every sign-in of ``user`` (log out everywhere); how many tokens."""
        done = await self._pool.execute(
            "UPDATE refresh_tokens SET revoked_ns = $2 WHERE user_id = $1 AND revoked_ns IS NULL",
            user,
            now_ns,
        )
        return int(done.rsplit(" ", 1)[1])

"""``tradebus users create [--admin] NAME`` and ``tradebus users list``: people of the gateway.

The first admin of an installation is made here (``--admin``); after that,
admins create people through the gateway (``POST /api/v1/users``).

* The password comes from a prompt (asked twice on a terminal) or from
  ``--password-file FILE`` (``-``: the first line of standard input), never
  from the command line, where other users of the machine could read it in the
  process list. Its rules are the gateway's
  (:func:`tradebus.ledger.passwords.check_new_password`); it is stored as an
  argon2id hash only.
* The ledger is the one of ``--database-url`` or ``DATABASE_URL``; its
  migrations are applied first (under the ledger's advisory lock, as every
  writer does), so this works on a fresh database.
* The creation is written to the audit log (``user.create``, actor
  ``cli:<login>``).

Exit status: 0 done; 1 the user exists; 2 bad input, or the database cannot
be reached (the message names the URL without its password).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from tradebus.cli.connection import DatabaseUnreachable, connect_database
from tradebus.common.clock import LiveClock
from tradebus.common.ids import UserId
from tradebus.common.messages import AuditEvent
from tradebus.common.subjects import TOKEN_PATTERN
from tradebus.control.audit import local_actor
from tradebus.ledger.audit import AuditLog
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.passwords import PasswordRejected, Passwords, check_new_password
from tradebus.ledger.users import Role, UserExists, Users

DEFAULT_DATABASE_URL = "postgresql://tradebus@127.0.0.1:5432/tradebus"


class UsersError(Exception):
    """A refusal of ``tradebus users``: the message is for people, ``status`` the exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def add_parser(sub: Any) -> None:
    """The ``users`` subcommand and its verbs."""
    p = sub.add_parser("users", help="create the gateway's first admin; list people")
    verbs = p.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser(
        "create",
        help="create a person who signs in to the gateway (--admin: an admin)",
        description="Create a user in the ledger's users table. The password is asked for "
        "(twice, on a terminal) or read from --password-file; never give it as an argument.",
    )
    create.add_argument("name", help="the user id (1-64 of A-Z a-z 0-9 _ -)")
    create.add_argument("--admin", action="store_true", help="make them an admin")
    create.add_argument(
        "--password-file",
        help="read the password from the first line of this file ('-': standard input)",
    )
    lst = verbs.add_parser("list", help="every user, their role and whether disabled")
    for cmd in (create, lst):
        cmd.add_argument(
            "--database-url",
            default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            help="the ledger's Postgres URL (default: $DATABASE_URL or the local one)",
        )


def read_password(password_file: str | None) -> str:
    """The new password: the first line of ``password_file`` (``-``: stdin), or asked for
    twice on the terminal.

    Raises
    ------
    UsersError
        If the file cannot be read, stdin is not a terminal and no file was
        given, the two entries differ, or the password breaks the rules.
    """
    if password_file is not None:
        try:
            text = sys.stdin.readline() if password_file == "-" else Path(password_file).read_text()
        except OSError as exc:
            message = f"--password-file: cannot read {password_file}: {exc.strerror}"
            raise UsersError(message) from None
        password = text.splitlines()[0] if text.splitlines() else ""
    else:
        if not sys.stdin.isatty():
            raise UsersError(
                "no terminal to ask for the password: give --password-file FILE"
                " (or --password-file - to read it from standard input)"
            )
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsersError("the two passwords differ")
    try:
        check_new_password(password)
    except PasswordRejected as exc:
        raise UsersError(f"password: {exc}") from None
    return password


async def _connect(database_url: str) -> asyncpg.Pool:
    try:
        return await connect_database(database_url)
    except DatabaseUnreachable as exc:
        raise UsersError(str(exc)) from None


async def create_user(database_url: str, name: str, role: Role, password: str) -> None:
    """Apply the migrations, add ``name`` as ``role`` with ``password`` (hashed), and audit it.

    Raises
    ------
    UsersError
        Bad name (2), the database cannot be reached (2), the user exists (1).
    """
    await create_users(database_url, [(name, role, password)])


async def create_users(database_url: str, users: list[tuple[str, Role, str]]) -> None:
    """:func:`create_user` for each ``(name, role, password)`` of ``users``, on one
    connection pool; the hashes are computed side by side in worker threads.

    Raises
    ------
    UsersError
        As :func:`create_user`, for the first user that fails (those before it are made).
    """
    for name, _, _ in users:
        if not TOKEN_PATTERN.match(name):
            raise UsersError(
                f"name {name!r}: use 1-64 of A-Z a-z 0-9 _ - (it is a NATS subject token)"
            )
    pool = await _connect(database_url)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        passwords = Passwords()
        hashes = await asyncio.gather(*(passwords.hash(password) for _, _, password in users))
        actor = local_actor()
        for (name, role, _), hashed in zip(users, hashes, strict=True):
            now = LiveClock().now_ns()
            try:
                row = await Users(pool).create(UserId(name), role, hashed, actor, now)
            except UserExists:
                raise UsersError(f"user {name!r} exists already", status=1) from None
            after = {"id": row.id, "role": row.role, "disabled": False, "nats": None}
            event = AuditEvent(
                event_id=uuid.uuid4().hex,
                ts_event=now,
                actor=actor,
                source="cli",
                action="user.create",
                target=f"user:{row.id}",
                user=row.id,
                after=after,
            )
            await AuditLog(pool).write([event])
    finally:
        await pool.close()


async def list_users(database_url: str) -> list[tuple[str, str, bool]]:
    """``(id, role, disabled)`` of every user, by id (migrations applied first)."""
    pool = await _connect(database_url)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        return [(u.id, u.role, not u.active) for u in await Users(pool).list()]
    finally:
        await pool.close()


def run(args: argparse.Namespace) -> int:
    """Run ``tradebus users <verb>``; the exit status (module docstring)."""
    try:
        if args.verb == "create":
            password = read_password(args.password_file)
            role: Role = "admin" if args.admin else "user"
            asyncio.run(create_user(args.database_url, args.name, role, password))
            print(f"user {args.name!r} created ({role})")
            return 0
        rows = asyncio.run(list_users(args.database_url))
    except UsersError as exc:
        print(f"tradebus users: {exc}", file=sys.stderr)
        return exc.status
    for name, kind, disabled in rows:
        print(f"{name}\t{kind}\t{'disabled' if disabled else 'active'}")
    return 0

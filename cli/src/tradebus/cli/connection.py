"""Which NATS server a CLI command talks to, when the command line does not say.

``tradebus demo`` writes ``<var>/demo/connection.json`` (mode 0600) once its
servers are up, and removes it when it ends: the URL of its nats-server, the
path of the operator's ``.creds`` file (operator mode), the local database and
gateway URLs, and its process id. A command without ``--nats-url`` or
``NATS_URL`` uses that file's server and credentials when the demo that wrote
it still runs (``./var`` by default, the demo's default ``--var``), and
``nats://127.0.0.1:4222`` otherwise; either way it says on stderr, once, which
server it uses, so it never talks to another server silently.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

import asyncpg
import msgspec

from tradebus.common.config import redact_url
from tradebus.ledger.pool import create_pool

DATABASE_TIMEOUT_SECONDS = 10.0
"""How long :func:`connect_database` waits for PostgreSQL."""

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_VAR = Path("var")
CONNECTION_FILE = Path("demo") / "connection.json"
"""Relative to the demo's ``--var``."""


class DemoConnection(msgspec.Struct, frozen=True, kw_only=True):
    """Where a running demo's servers are (``<var>/demo/connection.json``)."""

    nats_url: str
    nats_creds: str = ""
    """Absolute path of the operator's ``.creds`` file ("" when NATS runs without auth)."""
    database_url: str = ""
    """The demo's own embedded PostgreSQL ("" when it uses an external ``DATABASE_URL``)."""
    gateway_url: str = ""
    pid: int


def connection_path(var: Path) -> Path:
    """The connection file of a demo run with ``--var var``."""
    return var / CONNECTION_FILE


def write_connection(var: Path, connection: DemoConnection) -> Path:
    """Write ``connection`` for other commands to find (mode 0600: it names credentials);
    returns its path."""
    path = connection_path(var)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(connection)))
    tmp.replace(path)
    return path


def remove_connection(var: Path) -> None:
    """Remove the connection file of a demo that ends."""
    with contextlib.suppress(FileNotFoundError):
        connection_path(var).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    return True


def find_demo(var: Path = DEFAULT_VAR) -> DemoConnection | None:
    """The connection of the demo running with ``--var var``, or None (no file, an
    unreadable one, or one left by a demo that is gone)."""
    try:
        connection = msgspec.json.decode(connection_path(var).read_bytes(), type=DemoConnection)
    except (OSError, msgspec.DecodeError):
        return None
    return connection if _alive(connection.pid) else None


def resolve_nats(args: argparse.Namespace, var: Path = DEFAULT_VAR) -> None:
    """Fill in ``args.nats_url`` (and ``args.nats_creds`` when not given) when neither
    ``--nats-url`` nor ``NATS_URL`` said it: the running demo's, else the default; say
    on stderr which server that is."""
    if args.nats_url:
        return
    demo = find_demo(var)
    if demo is None:
        args.nats_url = DEFAULT_NATS_URL
        print(
            f"tradebus: no --nats-url, NATS_URL or running demo ({connection_path(var)}):"
            f" using {DEFAULT_NATS_URL}",
            file=sys.stderr,
        )
        return
    args.nats_url = demo.nats_url
    if not args.nats_creds:
        args.nats_creds = demo.nats_creds
    creds = f" as {args.nats_creds}" if args.nats_creds else ""
    print(
        f"tradebus: using the running demo's NATS at {redact_url(demo.nats_url)}{creds}"
        f" ({connection_path(var)})",
        file=sys.stderr,
    )


class DatabaseUnreachable(Exception):
    """PostgreSQL did not answer :func:`connect_database`; the message is for people."""


async def connect_database(database_url: str, what: str = "the database") -> asyncpg.Pool:
    """A ledger pool (:func:`tradebus.ledger.pool.create_pool`) on ``database_url``, for a
    CLI command, within :data:`DATABASE_TIMEOUT_SECONDS`.

    Raises
    ------
    DatabaseUnreachable
        It could not connect: the message names ``what`` and the URL without its
        password (:func:`~tradebus.common.config.redact_url`), the reason, and how to
        choose another database.
    """
    try:
        return await asyncio.wait_for(create_pool(database_url), DATABASE_TIMEOUT_SECONDS)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        reason = type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc)
        raise DatabaseUnreachable(
            f"cannot reach {what} {redact_url(database_url)}: {reason}"
            " (set --database-url or DATABASE_URL)"
        ) from None

"""Versioned SQL migrations, applied in order under a Postgres advisory lock.

Files are ``migrations/NNNN_name.sql`` inside this package. Each is applied
once, in its own transaction, and recorded in ``schema_migrations``. Several
processes may call :func:`apply_migrations` at once (execution and the
compose migration step): the advisory lock makes one of them do the work and
the others find nothing left to do.

``tradebus-migrate`` (this module's :func:`main`) applies them from the
command line using ``TRADEBUS_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import re
import sys
from importlib import resources
from typing import Annotated

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from tradebus.common.config import SECRET, ConfigError, Settings, load_settings, redact_url

ADVISORY_LOCK_KEY = 0x7472616465627573  # "tradebus" as a 64-bit integer
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Migration(msgspec.Struct, frozen=True):
    """One migration file: ``version`` (from the file name), ``name``, ``sql``."""

    version: int
    name: str
    sql: str


def discover() -> list[Migration]:
    """Every migration shipped with the package, in version order.

    Raises
    ------
    RuntimeError
        If two files share a version number.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files("tradebus.ledger").joinpath("migrations").iterdir():
        m = _FILE.match(entry.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise RuntimeError(f"duplicate migration version {version}")
        found[version] = Migration(version, m.group(2), entry.read_text())
    return [found[v] for v in sorted(found)]


async def apply_migrations(conn: asyncpg.Connection | PoolConnectionProxy) -> list[int]:
    """Apply every migration not yet recorded on ``conn`` (a connection of its own or one
    of a pool); return the versions applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for migration in discover():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


class MigrateSettings(Settings, frozen=True, kw_only=True):
    """Settings of ``tradebus-migrate``: ``TRADEBUS_DATABASE_URL``."""

    database_url: Annotated[str, SECRET]


async def _run(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


def main() -> None:
    """Entry point of ``tradebus-migrate``: apply pending migrations and report."""
    try:
        settings = load_settings(MigrateSettings)
    except ConfigError as exc:
        print(f"tradebus-migrate: {exc}", file=sys.stderr)
        sys.exit(2)
    applied = asyncio.run(_run(settings.database_url))
    where = redact_url(settings.database_url)
    if applied:
        print(f"tradebus-migrate: applied {', '.join(map(str, applied))} to {where}")
    else:
        print(f"tradebus-migrate: {where} is up to date")


if __name__ == "__main__":
    main()

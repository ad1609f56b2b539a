"""The local servers really are servers: JetStream answers, PostgreSQL runs queries."""

from __future__ import annotations

import asyncpg
import nats


async def test_nats_has_jetstream(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    info = await nc.jetstream().account_info()
    await nc.close()
    assert info.limits.max_streams == -1
    assert not nats_url.endswith(":4222")


async def test_postgres_runs_queries(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 6 * 7") == 42
        assert await conn.fetchval("SHOW server_version_num") >= "160000"
    finally:
        await conn.close()

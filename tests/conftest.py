"""Fixtures: real nats-server and real PostgreSQL, started on free ports, never mocked.

* ``nats_url``: a fresh JetStream nats-server per test (it starts in ~20 ms).
* ``pg_admin_url``: one PostgreSQL per session (fast settings, temp data dir).
* ``database_url``: a fresh database per test on that server.
* ``data_dir``: the recorded market data, ``$TRADEBUS_DATA_DIR`` or ``../shared/data``.
* ``btc_ticks``: the ticks of the start of the first BTCUSDT recording (per module).
* ``nc``: a NATS connection to ``nats_url``.
* ``secure_nats``: a nats-server in operator mode with fresh identities per test
  (:mod:`tests.support.secure_nats`).
* ``alerting``: a real Prometheus and Alertmanager between a metrics target and a webhook
  URL (:mod:`tests.support.alerting`; a receiver: :mod:`tests.support.webhooks`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support import secure_nats as secure_support
from tests.support.alerting import alerting  # noqa: F401 (a fixture)
from tests.support.data import BTC_RAW, parse_ticks
from tests.support.markets import BTCUSDT_MIN
from tradebus.cli.localstack import LocalNats, LocalPostgres, create_database, with_database
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.readers import read_frames

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"


def find_data_dir() -> Path:
    """``$TRADEBUS_DATA_DIR``, else ``../shared/data`` beside the repository, else the
    nearest ``shared/data`` above it (for clones placed deeper)."""
    if os.environ.get("TRADEBUS_DATA_DIR"):
        return Path(os.environ["TRADEBUS_DATA_DIR"])
    for parent in REPO.parents:
        candidate = parent / "shared" / "data"
        if (candidate / "README.md").exists():
            return candidate
    return DEFAULT_DATA_DIR


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """URL of a JetStream nats-server that lives for one test."""
    server = LocalNats(tmp_path / "nats")
    url = server.start()
    yield url
    server.stop()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    """A connection to the test's nats-server, closed after the test."""
    conn = await nats.connect(nats_url)
    yield conn
    await conn.close()


@pytest.fixture
async def secure_nats(tmp_path: Path) -> AsyncIterator[secure_support.SecureNats]:
    """A nats-server in operator mode (fresh identities, the shipped accounts file's people
    preloaded) that lives for one test: :class:`tests.support.secure_nats.SecureNats`."""
    async with secure_support.secure_nats(tmp_path / "secure-nats") as secure:
        yield secure


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of the ``postgres`` database of a PostgreSQL that lives for the session."""
    root = Path(tempfile.mkdtemp(prefix="tradebus-test-pg-"))
    server = LocalPostgres(root, fast=True)
    url = server.start()
    yield url
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(pg_admin_url: str) -> str:
    """URL of an empty database created for this test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(create_database(pg_admin_url, name))
    return with_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The recorded market data (read in place, never copied into the repo)."""
    path = find_data_dir()
    if not (path / "README.md").exists():
        pytest.fail(f"recorded data not found at {path}; set TRADEBUS_DATA_DIR")
    return path


@pytest.fixture(scope="module")
def btc_ticks(data_dir: Path) -> list[TradeTick | QuoteTick]:
    """The ticks of the first 15000 frames of the first BTCUSDT recording (market
    :data:`~tests.support.markets.BTCUSDT_MIN`)."""
    frames = itertools.islice(read_frames(data_dir / BTC_RAW[0]), 15_000)
    return parse_ticks(frames, MarketCatalog({"binance": [BTCUSDT_MIN]}))

"""A gateway with the services it drives: execution (paper accounts of a file) and a strategy
host, on real NATS and PostgreSQL (for the bots, intents and OpenAPI-walk tests).

Import the ``world`` fixture into a test module to use it. ``alice`` and
``bob`` each have a paper account of the accounts file (``alice-paper``,
``bob-paper``) and are signed in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.gateway.conftest import ADMIN, Gateway, Session, gateway_settings
from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually, service
from tradebus.common import subjects
from tradebus.common.codec import decode_audit_event, encode
from tradebus.common.messages import AuditEvent, BotsQuery
from tradebus.common.sealed import write_key_pair
from tradebus.gateway.bootstrap import run as run_gateway
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000", BTC: "1"}}
  - {id: bob-paper, user: bob, balances: {USDT: "10000"}}
"""
HOST = "gw-host"

LADDER_PARAMS = {
    "total_quote": "1000",
    "order_count": 4,
    "max_drop_pct": "1",
    "take_profit_pct": "0.5",
}
"""Ladder parameters that pass validation (BTCUSDT)."""


@dataclass
class World:
    """The running services of a test, an admin, alice and bob signed in, and a bus."""

    gateway: Gateway
    bus: Bus
    admin: Session
    alice: Session
    bob: Session

    async def audit(self, source: str = "gateway") -> list[AuditEvent]:
        """Every audit event of ``source`` published so far."""
        js = self.bus.js
        info = await js.stream_info(subjects.STREAM_AUDIT)
        events = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(subjects.STREAM_AUDIT, seq)
            event = decode_audit_event(msg.data or b"")
            if event.source == source:
                events.append(event)
        return events


def ladder(account: str, **extra: Any) -> dict[str, Any]:
    """The body of ``POST /api/v1/bots`` for a BTCUSDT ladder on ``account``."""
    return {
        "strategy": "ladder",
        "account": account,
        "symbol": "BTCUSDT",
        "params": dict(LADDER_PARAMS),
        **extra,
    }


async def host_answers(bus: Bus) -> bool:
    """True once a strategy host answers ``ctl.bots.list``."""
    try:
        await bus.nc.request(subjects.ctl("bots", "list"), encode(BotsQuery()), timeout=0.5)
        return True
    except Exception:
        return False


@pytest.fixture
async def world(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    """Execution, a strategy host and the gateway, with alice and bob signed in."""
    async with running_world(nats_url, database_url, tmp_path) as running:
        yield running


@asynccontextmanager
async def running_world(
    nats_url: str, database_url: str, tmp_path: Path, **gateway: Any
) -> AsyncIterator[World]:
    """Execution, a strategy host and the gateway (its settings ``gateway`` overriding the
    tests' defaults, e.g. ``web_dir``), with alice and bob signed in. Execution has a seal
    key pair (``tmp_path/seal``), so live accounts can be added through the API."""
    private, public, _ = write_key_pair(tmp_path / "seal")
    settings = gateway_settings(
        nats_url, database_url, **{"seal_public_key_file": str(public), **gateway}
    )
    gw = Gateway(url=settings.url, settings=settings, database_url=database_url)
    strategy = StrategySettings(
        nats_url=nats_url,
        metrics_port=0,
        stop_timeout_seconds=0.2,
        heartbeat_seconds=0.2,
        lease_seconds=2,
        replica_id=HOST,
    )
    probe = httpx.AsyncClient(base_url=gw.url, timeout=2.0)

    async def ready() -> bool:
        try:
            return (await probe.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        async with collecting(nats_url, Bus) as bus:
            exec_settings = msgspec.structs.replace(
                execution_settings(nats_url, database_url, tmp_path, ACCOUNTS),
                seal_key_file=str(private),
            )
            async with (
                execution_service(bus.nc, exec_settings),
                service(run_strategy, strategy, lambda: host_answers(bus)),
                service(run_gateway, settings, ready),
            ):
                admin = await gw.person(ADMIN, role="admin")
                gw.admin = admin
                alice, bob = await gw.person("alice"), await gw.person("bob")
                yield World(gateway=gw, bus=bus, admin=admin, alice=alice, bob=bob)
                for client in gw.clients:
                    await client.aclose()
    finally:
        await probe.aclose()


async def bot_state(session: Session, bot: str) -> str | None:
    """The state the host reports for ``bot`` through ``GET /api/v1/bots/{id}``."""
    answer = await session.get(f"/api/v1/bots/{bot}")
    status = answer.json().get("status") if answer.status_code == 200 else None
    return status["state"] if status else None


async def wait_state(session: Session, bot: str, state: str, timeout: float = 15.0) -> None:
    """Wait until the host reports ``bot`` in ``state``."""

    async def reached() -> bool:
        return await bot_state(session, bot) == state

    await eventually(reached, timeout, f"{bot} {state}")

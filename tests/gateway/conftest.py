"""A real gateway for each test: its ``run()`` in the test's loop, on real NATS and Postgres.

* ``gateway``: the running gateway (:class:`Gateway`): its URL, an admin
  signed in (``gateway.admin``), :meth:`Gateway.add_user` to create people
  straight in the ``users`` table (the way ``tradebus users create`` does),
  and :meth:`Gateway.client` for an httpx client of the API.
* ``secure_gateway``: the same on a nats-server in operator mode, managing
  people's NATS accounts (``/api/v1/me/nats-credentials``).
* ``Session``: one signed-in person: an httpx client whose requests carry
  their access token.

Execution, strategy hosts and the others are not started here: tests that
need them start them (tests/support/services.py).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import argon2
import httpx
import pytest

from tests.support.secure_nats import SecureNats
from tests.support.services import service
from tradebus.cli.localstack import free_port
from tradebus.common.ids import UserId
from tradebus.gateway.bootstrap import run as run_gateway
from tradebus.gateway.security import Passwords
from tradebus.gateway.settings import GatewaySettings
from tradebus.ledger.pool import create_pool
from tradebus.ledger.users import Role, Users

CHEAP_PASSWORDS = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024))
"""argon2id with the least cost a gateway accepts: the tests' users sign in in ~1 ms."""
ADMIN = "root"
ADMIN_PASSWORD = "root-password-for-tests"


@dataclass
class Session:
    """A signed-in person: ``http`` sends their access token with every request."""

    user: str
    password: str
    http: httpx.AsyncClient
    tokens: dict[str, Any] = field(default_factory=dict)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.get(path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.post(path, **kw)

    async def put(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.put(path, **kw)

    async def patch(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.patch(path, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.delete(path, **kw)


@dataclass
class Gateway:
    """The running gateway of a test."""

    url: str
    settings: GatewaySettings
    database_url: str
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    admin: Session | None = None

    def client(self, **kw: Any) -> httpx.AsyncClient:
        """A plain client of the API (closed at the end of the test)."""
        client = httpx.AsyncClient(base_url=self.url, timeout=15.0, **kw)
        self.clients.append(client)
        return client

    async def add_user(self, user: str, password: str | None = None, role: Role = "user") -> str:
        """Create ``user`` in the ``users`` table; their password."""
        password = password or secrets.token_urlsafe(12)
        pool = await create_pool(self.database_url)
        try:
            hashed = await CHEAP_PASSWORDS.hash(password)
            await Users(pool).create(UserId(user), role, hashed, "test", 1)
        finally:
            await pool.close()
        return password

    async def sign_in(self, user: str, password: str) -> Session:
        """Sign ``user`` in; a :class:`Session` carrying their access token."""
        client = self.client()
        answer = await client.post("/api/v1/auth/login", json={"user": user, "password": password})
        assert answer.status_code == 200, answer.text
        tokens = answer.json()
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        return Session(user=user, password=password, http=client, tokens=tokens)

    async def person(self, user: str, role: Role = "user") -> Session:
        """Create ``user`` and sign them in."""
        return await self.sign_in(user, await self.add_user(user, role=role))


def gateway_settings(nats_url: str, database_url: str, **overrides: Any) -> GatewaySettings:
    """Settings of a test gateway on a free port (``overrides`` win)."""
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": database_url,
        "http_port": free_port(),
        "jwt_secret": secrets.token_urlsafe(32),
        "metrics_port": 0,
        "password_memory_kib": 1024,  # cheap hashes: a test makes a few users
        "password_time_cost": 1,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@asynccontextmanager
async def running_gateway(settings: GatewaySettings, database_url: str) -> AsyncIterator[Gateway]:
    """The gateway of ``settings`` running, with an admin ``root`` signed in."""
    gw = Gateway(url=settings.url, settings=settings, database_url=database_url)
    probe = httpx.AsyncClient(base_url=gw.url, timeout=2.0)

    async def ready() -> bool:
        try:
            return (await probe.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        async with service(run_gateway, settings, ready):
            gw.admin = await gw.person(ADMIN, role="admin")
            yield gw
            for client in gw.clients:
                await client.aclose()
    finally:
        await probe.aclose()


@pytest.fixture
async def gateway(nats_url: str, database_url: str) -> AsyncIterator[Gateway]:
    """A running gateway with an admin ``root`` signed in."""
    async with running_gateway(gateway_settings(nats_url, database_url), database_url) as gw:
        yield gw


@pytest.fixture
async def secure_gateway(secure_nats: SecureNats, database_url: str) -> AsyncIterator[Gateway]:
    """A running gateway on a nats-server in operator mode (``secure_nats``), connected
    with its own ``.creds`` and managing people's NATS accounts (the SYS claims-update
    credentials and both signing keys of ``tradebus nats-init``), as compose runs it."""
    done = secure_nats.installation
    settings = gateway_settings(
        secure_nats.url,
        database_url,
        nats_creds=str(done.creds["gateway"]),
        nats_sys_creds=str(done.sys_creds),
        nats_operator_signing_key_file=str(done.operator_signing_key),
        nats_people_signing_key_file=str(done.people_signing_key),
    )
    async with running_gateway(settings, database_url) as gw:
        yield gw

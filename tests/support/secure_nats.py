"""A nats-server in operator mode, as compose and ``tradebus demo`` run it, for tests.

:func:`secure_nats` makes fresh identities in a temp dir (``tradebus nats-init``'s
:func:`~tradebus.natsauth.identities.init_installation`, with the people of the
shipped accounts file preloaded: alice, bob, carol, dave), starts nats-server
with that config (JetStream in the temp dir) and yields a :class:`SecureNats`:

* ``url``: the server, without credentials;
* ``creds(user)``: the ``.creds`` path of a ``TRADEBUS`` user (a service,
  ``operator``, ``gateway``); ``person_creds(user)``: a person's, written on demand;
* ``identities_dir``, ``installation``: the identities and every path;
* ``registrar()``: a :class:`~tradebus.natsauth.registrar.PeopleRegistrar` built as
  the gateway builds it (closed with the server);
* ``connect(user_or_creds)``: a connection as that user (a ``TRADEBUS`` user, a
  person, or a ``.creds`` path) that records every error the server reports to it.

Used by tests/security, tests/integration/test_nats_permissions.py and others
(the ``secure_nats`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS

from tradebus.cli.localstack import LocalNats
from tradebus.natsauth.accounts import person_account_key, person_credentials
from tradebus.natsauth.identities import Installation, init_installation, write_secret
from tradebus.natsauth.permissions import SYSTEM_USERS
from tradebus.natsauth.registrar import PeopleRegistrar

PEOPLE = ("alice", "bob", "carol", "dave")
"""The people of deploy/config/accounts.yaml, preloaded as nats-init does."""


@dataclass
class Conn:
    """A connection and the errors the server reported to it (lowercased)."""

    nc: NATS
    errors: list[str] = field(default_factory=list)

    async def violations(self) -> list[str]:
        """Permission errors reported so far (after a round trip to the server)."""
        await self.nc.flush()
        await asyncio.sleep(0.05)  # the error callback runs as its own task
        return [e for e in self.errors if "permissions violation" in e]


@dataclass
class SecureNats:
    """The running server and the identities it trusts (module docstring)."""

    url: str
    installation: Installation
    conns: list[NATS] = field(default_factory=list)
    registrars: list[PeopleRegistrar] = field(default_factory=list)

    @property
    def identities_dir(self) -> Path:
        """The directory of ``tradebus nats-init``'s files."""
        return self.installation.directory

    def creds(self, user: str) -> Path:
        """The ``.creds`` file of ``TRADEBUS`` user ``user``."""
        return self.installation.creds[user]

    def person_creds(self, user: str, ttl_seconds: int = 3600) -> Path:
        """A fresh ``.creds`` file for person ``user`` (``<dir>/people/<user>.creds``)."""
        identities = self.installation.identities
        account = person_account_key(identities, user).public_key
        path = self.identities_dir / "people" / f"{user}.creds"
        write_secret(path, person_credentials(identities, user, account, ttl_seconds))
        return path

    def registrar(self) -> PeopleRegistrar:
        """A registrar made from the gateway's files (closed when the server stops)."""
        done = self.installation
        registrar = PeopleRegistrar.from_files(
            self.url,
            str(done.creds["gateway"]),
            str(done.sys_creds),
            str(done.operator_signing_key),
            str(done.people_signing_key),
        )
        self.registrars.append(registrar)
        return registrar

    def creds_of(self, user_or_creds: str | Path) -> Path:
        """The ``.creds`` to connect as ``user_or_creds``: a ``TRADEBUS`` user's, a
        person's (written on demand), or the path itself."""
        if isinstance(user_or_creds, Path):
            return user_or_creds
        if user_or_creds in SYSTEM_USERS:
            return self.creds(user_or_creds)
        return self.person_creds(user_or_creds)

    async def connect(self, user_or_creds: str | Path, **options: Any) -> Conn:
        """Connect as ``user_or_creds`` (:meth:`creds_of`); closed at the end of the test.

        No reconnection unless ``options`` say otherwise: a connection the server
        closes stays closed.
        """
        conn = Conn(nc=NATS())

        async def on_error(exc: Exception) -> None:
            conn.errors.append(str(exc).lower())

        options.setdefault("allow_reconnect", False)
        options.setdefault("error_cb", on_error)
        conn.nc = await nats.connect(
            self.url, user_credentials=str(self.creds_of(user_or_creds)), **options
        )
        self.conns.append(conn.nc)
        return conn

    async def close(self) -> None:
        """Close every connection and registrar made here."""
        for nc in self.conns:
            if not nc.is_closed:
                await nc.close()
        for registrar in self.registrars:
            await registrar.close()


@asynccontextmanager
async def secure_nats(root: Path, people: tuple[str, ...] = PEOPLE) -> AsyncIterator[SecureNats]:
    """A nats-server in operator mode under ``root`` with ``people`` preloaded
    (module docstring); stopped at the end."""
    installation = init_installation(root / "auth", list(people), root / "nats" / "jwt")
    server = LocalNats(root / "nats", installation.conf)
    secure = SecureNats(server.start(), installation)
    try:
        yield secure
    finally:
        await secure.close()
        server.stop()

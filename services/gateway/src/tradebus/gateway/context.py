"""What every route of the gateway works with, built once by the composition root.

Route handlers receive two dependencies by name (registered in :mod:`.app`),
declared with the aliases below:

* ``ctx: Ctx``: the :class:`GatewayContext` (connections, stores, settings);
* ``principal: Caller``: the signed-in caller, a :class:`Principal`; declaring
  this parameter is what makes a route require a valid access token (401
  otherwise). ``ctx`` alone does not.

Request bodies are declared ``data: JSONBody[SomeStruct]`` (litestar.params).

Scoping rule, for every route: a user sees and changes only what they own;
an admin sees everyone's. Another user's resource is answered 404 (never
403, which would confirm it exists), with no part of its data.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg
import msgspec
from litestar.di import NamedDependency
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tradebus.common.clock import Clock
from tradebus.common.ids import UserId
from tradebus.common.markets import MarketCatalog
from tradebus.control.audit import AuditTrail
from tradebus.gateway.live import BotSpecs, BotStatuses
from tradebus.gateway.metrics import GatewayMetrics
from tradebus.gateway.security import AccessTokens, LoginThrottle, Passwords
from tradebus.gateway.settings import GatewaySettings
from tradebus.ledger.users import Role, Sessions, Users


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The caller of a request: their user id and role."""

    user: UserId
    role: Role

    @property
    def is_admin(self) -> bool:
        """True for an admin (sees and acts on every user's resources)."""
        return self.role == "admin"

    def may_see(self, owner: str | None) -> bool:
        """True if the caller may see a resource owned by ``owner`` (admins: all)."""
        return self.is_admin or owner == self.user

    def actor(self) -> str:
        """The ``actor`` of what this caller does (audit log, ``ctl.*`` requests)."""
        return str(self.user)


class NatsPeople(Protocol):
    """Registers people as NATS accounts of their own (operator mode) and issues their
    credentials (:mod:`tradebus.natsauth`); absent when the gateway manages no NATS accounts."""

    async def register(self, user: str) -> str:
        """Create or refresh ``user``'s NATS account; its public key."""
        ...

    async def disable(self, user: str, account_public_key: str) -> None:
        """Stop ``user``'s NATS account from being used (their connections end)."""
        ...

    def credentials(self, user: str, account_public_key: str, ttl_seconds: int) -> str:
        """The text of a ``.creds`` file for ``user``, valid ``ttl_seconds``."""
        ...


class GatewayContext:
    """Connections, stores and settings shared by every request (one per process).

    Attributes
    ----------
    settings
        The gateway's settings.
    pool
        The ledger's connection pool.
    nc, js
        The NATS connection and its JetStream context.
    catalog
        The markets file (bot validation, precision).
    clock
        Times of records (ns).
    users, sessions
        The ``users`` and ``refresh_tokens`` tables.
    passwords, tokens, throttle
        Password hashing, access tokens, failed sign-in counting.
    audit
        Publishes the gateway's audit events (``audit.gateway``).
    people
        NATS accounts of people, or None when not configured.
    seal_public_key
        Execution's public key (base64) that exchange credentials are sealed
        to, or None when not configured (live accounts then cannot be added).
    notify_public_key
        The notifier's public key (base64) that users' notification channels are
        sealed to, or None when not configured (channels then cannot be saved).
    metrics
        The gateway's metrics (None: not counted, as in some tests).
    bots, statuses
        KV ``bots`` and the hosts' bot statuses, each read once for many
        concurrent requests (:mod:`.live`).
    """

    def __init__(
        self,
        *,
        settings: GatewaySettings,
        pool: asyncpg.Pool,
        nc: NATS,
        js: JetStreamContext,
        catalog: MarketCatalog,
        clock: Clock,
        passwords: Passwords,
        tokens: AccessTokens,
        throttle: LoginThrottle,
        audit: AuditTrail,
        people: NatsPeople | None = None,
        seal_public_key: str | None = None,
        notify_public_key: str | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.nc = nc
        self.js = js
        self.catalog = catalog
        self.clock = clock
        self.users = Users(pool)
        self.sessions = Sessions(pool)
        self.passwords = passwords
        self.tokens = tokens
        self.throttle = throttle
        self.audit = audit
        self.people = people
        self.seal_public_key = seal_public_key
        self.notify_public_key = notify_public_key
        self.metrics = metrics
        self.bots = BotSpecs(js)
        self.statuses = BotStatuses(nc)


Ctx = NamedDependency[GatewayContext]
"""Declare ``ctx: Ctx`` to receive the :class:`GatewayContext`."""
Caller = NamedDependency[Principal]
"""Declare ``principal: Caller`` to require a signed-in caller and receive them."""

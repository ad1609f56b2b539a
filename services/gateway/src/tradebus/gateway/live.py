"""What the routes read from the running system: bot specs (KV ``bots``), the hosts' bot
statuses (``ctl.bots.list``) and who owns an account (ledger).

* :class:`BotSpecs`: KV ``bots`` opened once; the whole bucket is read at most
  once per ``ttl`` seconds for listings, shared by every request in that time
  (100 clients listing at once cost one read), and forgotten after any change
  the gateway makes itself, so a caller always sees their own change at once.
  One bot (:meth:`BotSpecs.get`) is always read fresh, with its revision.
* :class:`BotStatuses`: the hosts answer ``ctl.bots.list`` within a second
  (:func:`tradebus.control.bots.gather_statuses`); one gather is shared by
  every request that asks while it runs and for ``ttl`` seconds after, so the
  wait of a listing is bounded by one gather and 100 clients cause one.
  Hosts that do not answer make the statuses ``None``, never an error.
* :func:`account_info`: an account's owner, venue and market-data venue, from
  ``account_configs`` (accounts added through the API) or the ledger's
  ``accounts`` (accounts of the accounts file, once execution loaded them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import asyncpg
import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from tradebus.common.ids import UserId
from tradebus.common.messages import BotStatus
from tradebus.control.bots import bot_statuses
from tradebus.control.botstore import decode_spec, get_spec, open_bots
from tradebus.ledger.reports.pnl import PAPER as PAPER  # the gateway's routes' name
from tradebus.ledger.reports.pnl import account_data_venues, data_venue_of
from tradebus.strategies.registry import BotSpec

log = logging.getLogger(__name__)

T = TypeVar("T")


class SharedRead(Generic[T]):
    """The result of ``read()``, shared by concurrent callers and kept ``ttl`` seconds.

    A call while a read runs waits for that read (single flight); a call within
    ``ttl`` seconds of the last completed read gets its result; :meth:`forget`
    makes the next call read again. A failed read is not kept (its error goes
    to the callers that waited for it).
    """

    def __init__(
        self,
        read: Callable[[], Awaitable[T]],
        ttl: float,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._now = now
        self._value: T | None = None
        self._at = float("-inf")
        self._running: asyncio.Task[T] | None = None
        self._generation = 0

    async def get(self) -> T:
        """The value read at most ``ttl`` seconds ago (reading it if needed)."""
        if self._now() - self._at < self._ttl:
            return self._value  # type: ignore[return-value]  # set with _at
        if self._running is None:
            self._running = asyncio.create_task(self._refresh(self._generation))
        return await asyncio.shield(self._running)

    async def _refresh(self, generation: int) -> T:
        try:
            value = await self._read()
            if generation == self._generation:  # not forgotten meanwhile
                self._value, self._at = value, self._now()
            return value
        finally:
            self._running = None

    def forget(self) -> None:
        """Read again on the next call (after a change the gateway made)."""
        self._generation += 1
        self._value = None
        self._at = float("-inf")
        self._running = None


class BotSpecs:
    """KV ``bots`` for the routes (module docstring). ``ttl``: seconds a listing is kept."""

    def __init__(self, js: JetStreamContext, ttl: float = 1.0) -> None:
        self._js = js
        self._kv: KeyValue | None = None
        self._all: SharedRead[dict[str, tuple[BotSpec, int]]] = SharedRead(self._read_all, ttl)

    async def kv(self) -> KeyValue:
        """KV ``bots`` (created if it does not exist yet)."""
        if self._kv is None:
            self._kv = await open_bots(self._js)
        return self._kv

    async def _read_all(self) -> dict[str, tuple[BotSpec, int]]:
        kv = await self.kv()
        out: dict[str, tuple[BotSpec, int]] = {}
        try:
            keys = await kv.keys()
        except NoKeysError:
            return out
        for key in keys:
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:  # deleted since the listing
                continue
            if entry.value:
                out[key] = (decode_spec(entry.value), int(entry.revision or 0))
        return out

    async def all(self) -> dict[str, tuple[BotSpec, int]]:
        """Every bot by id with its revision (at most ``ttl`` seconds old; fresh after the
        gateway's own changes)."""
        return await self._all.get()

    async def get(self, bot: str) -> tuple[BotSpec, int] | None:
        """``(spec, revision)`` of ``bot`` now, or None (also for an id that is not a
        subject token, which no bot can have)."""
        try:
            return await get_spec(await self.kv(), bot)
        except ValueError:  # SubjectError: not a token
            return None

    def changed(self) -> None:
        """The gateway changed the bucket: listings read it again."""
        self._all.forget()


class BotStatuses:
    """The hosts' statuses of every running bot, by bot id (module docstring)."""

    def __init__(self, nc: NATS, ttl: float = 1.0) -> None:
        self._nc = nc
        self._shared: SharedRead[dict[str, BotStatus] | None] = SharedRead(self._gather, ttl)

    async def _gather(self) -> dict[str, BotStatus] | None:
        try:
            return {s.bot: s for s in await bot_statuses(self._nc)}
        except Exception as exc:  # ControlError, a timeout, NATS away: statuses unknown
            log.warning("bot statuses not gathered", extra={"error": repr(exc)})
            return None

    async def all(self) -> dict[str, BotStatus]:
        """Statuses by bot id; empty when no host answered."""
        return await self._shared.get() or {}

    def changed(self) -> None:
        """A bot was commanded or changed: the next call asks the hosts again."""
        self._shared.forget()


class AccountInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Who owns an account and where it trades.

    ``venue`` is where its orders go (``paper`` or an exchange); ``data_venue``
    the venue whose market data prices it (its own for a live account; the
    ``market_data`` of a paper one); ``active`` False once it was deleted;
    ``source`` ``api`` (``account_configs``) or ``file`` (the accounts file).
    """

    id: str
    owner: UserId
    venue: str
    data_venue: str
    active: bool
    source: str


async def account_info(pool: asyncpg.Pool, account_id: str) -> AccountInfo | None:
    """The account ``account_id`` (module docstring), or None if no table knows it."""
    row = await pool.fetchrow(
        "SELECT user_id, spec::text AS spec, deleted_ns FROM account_configs WHERE account_id = $1",
        account_id,
    )
    if row is not None:
        spec = msgspec.json.decode(row["spec"])
        venue = str(spec.get("venue") or PAPER) if isinstance(spec, dict) else PAPER
        return AccountInfo(
            id=account_id,
            owner=UserId(row["user_id"]),
            venue=venue,
            data_venue=data_venue_of(venue, spec if isinstance(spec, dict) else None),
            active=row["deleted_ns"] is None,
            source="api",
        )
    row = await pool.fetchrow("SELECT user_id, venue FROM accounts WHERE id = $1", account_id)
    if row is None:
        return None
    return AccountInfo(
        id=account_id,
        owner=UserId(row["user_id"]),
        venue=row["venue"],
        data_venue=data_venue_of(row["venue"], None),
        active=True,
        source="file",
    )


async def data_venues(pool: asyncpg.Pool, user: UserId | None) -> dict[str, str]:
    """Account id -> market-data venue of ``user``'s accounts (everyone's for None)
    (:func:`tradebus.ledger.reports.pnl.account_data_venues`)."""
    return await account_data_venues(pool, user)

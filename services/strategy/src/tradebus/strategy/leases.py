"""Strategy host replicas sharing the bots: one lease per replica, rendezvous assignment.

Protocol (KV bucket ``leases``, whose TTL is the lease time; docs/design.md
"Bot lifecycle, resume and replicas" gives the reasoning):

* every replica holds ONE key, ``host.<replica>``, taken with
  *create-if-absent* and renewed each heartbeat with a compare-and-set on
  its revision. Its value is the replica's **view**: the set of replicas it
  assigns bots over. A replica whose renewal fails (its key expired: someone
  else may already run its bots), or that could not renew for a lease time,
  drops every bot at once, touching nothing, and takes its key anew;
* who runs a bot is decided by rendezvous (highest-random-weight) hashing of
  ``(bot, replica)`` over a view (Thaler & Ravishankar, 1998): every replica
  computes the same owner from the same view, the bots spread evenly, and a
  replica joining or leaving moves only its share;
* a replica **claims** the bots it owns under its *published* view, and runs
  only bots it claims. To adopt a new view it first stops (final snapshot,
  published) the bots the new view gives to others, then publishes the view;
* a replica starts a bot only after publishing its view and then reading every
  live lease: no other live replica may claim the bot. Publish-then-read on
  both sides means two replicas whose views disagree can never both start a
  bot (at least one of them reads the other's claim); a replica whose key has
  expired claims nothing.

A dead replica's bots are therefore resumed elsewhere within one lease time
plus about one heartbeat, and a bot moving between live replicas starts on
its new owner only once its old owner's lease shows it released.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus.common import subjects
from tradebus.common.bus import kv_live_entries

log = logging.getLogger(__name__)


def weight(bot: str, replica: str) -> int:
    """Rendezvous weight of ``replica`` for ``bot`` (64 bits of BLAKE2b of both)."""
    digest = hashlib.blake2b(f"{bot}\x00{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preferred_owner(bot: str, replicas: Iterable[str]) -> str | None:
    """The replica of ``replicas`` that should run ``bot`` (None when there is none);
    ties (never seen with 64-bit weights) go to the greater replica id."""
    return max(replicas, key=lambda r: (weight(bot, r), r), default=None)


def assign(bots: Iterable[str], replicas: Iterable[str]) -> dict[str, str]:
    """``bot -> owner`` of every bot over ``replicas`` (:func:`preferred_owner` of each);
    empty when there is no replica."""
    view = sorted(set(replicas))
    if not view:
        return {}
    return {bot: preferred_owner(bot, view) for bot in bots}  # type: ignore[misc]


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """The value of ``host.<replica>`` in KV ``leases``: the replicas it assigns over."""

    view: tuple[str, ...]
    """Sorted replica ids (the holder's own among them)."""

    def claims(self, replica: str, bot: str) -> bool:
        """Whether ``replica`` (the holder of this lease) claims ``bot`` under this view."""
        return preferred_owner(bot, self.view) == replica


_lease = msgspec.json.Decoder(Lease)


def decode_lease(data: bytes) -> Lease | None:
    """A lease value; None for one that is not (an older host's, a stray put)."""
    try:
        return _lease.decode(data)
    except msgspec.DecodeError:
        return None


def claimed_by(leases: dict[str, Lease], bot: str) -> list[str]:
    """The replicas of ``leases`` (replica -> its published lease) claiming ``bot``."""
    return [replica for replica, lease in leases.items() if lease.claims(replica, bot)]


class LeaseLost(Exception):
    """This replica's lease is gone (expired, or taken by another process of its id)."""


class Leases:
    """One replica's side of the protocol (see module docstring).

    Parameters
    ----------
    kv
        The ``leases`` bucket (created with the lease time as TTL).
    replica
        This replica's id (a subject token).
    """

    def __init__(self, kv: KeyValue, replica: str) -> None:
        self._kv = kv
        self.replica = replica
        self._key = subjects.host_key(replica)
        self.revision: int | None = None
        """Revision of our lease entry; None while we hold no lease."""
        self.view: tuple[str, ...] = ()
        """The view published with our lease (empty while we hold none)."""
        self._writing = asyncio.Lock()
        """One write of our key at a time: two compare-and-sets on one revision would
        make the second look like a lost lease."""

    @property
    def held(self) -> bool:
        """Whether this replica holds its lease."""
        return self.revision is not None

    async def acquire(self, view: Iterable[str]) -> bool:
        """Take our key with create-if-absent, publishing ``view``; False while it exists
        (an earlier process of this replica id whose key has not expired yet)."""
        published = tuple(sorted(set(view) | {self.replica}))
        try:
            async with self._writing:
                self.revision = await self._kv.create(self._key, _encode(published))
        except KeyWrongLastSequenceError:
            return False
        except Exception as exc:  # "key exists" is reported as an API error by some servers
            text = str(exc).lower()
            if "wrong last sequence" in text or "key exists" in text:
                return False
            raise
        self.view = published
        return True

    async def renew(self, view: Iterable[str] | None = None) -> None:
        """Renew our lease (compare-and-set on its revision), publishing ``view`` if given
        (else the current one).

        Raises
        ------
        LeaseLost
            If the key expired or changed under us (our revision is forgotten).
        """
        async with self._writing:
            await self._renew(view)

    async def _renew(self, view: Iterable[str] | None) -> None:
        if self.revision is None:
            raise LeaseLost(self.replica)
        published = self.view if view is None else tuple(sorted(set(view) | {self.replica}))
        try:
            self.revision = await self._kv.update(self._key, _encode(published), last=self.revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError) as exc:
            self._forget()
            raise LeaseLost(self.replica) from exc
        except Exception as exc:
            if "wrong last sequence" not in str(exc).lower():
                raise
            self._forget()
            raise LeaseLost(self.replica) from exc
        self.view = published

    def _forget(self) -> None:
        self.revision = None
        self.view = ()
        log.warning("replica lease lost", extra={"replica": self.replica})

    async def read(self) -> dict[str, Lease]:
        """Every live replica's published lease (ours included once published), one read;
        a key whose value is not a lease counts as a replica claiming nothing."""
        entries = await kv_live_entries(self._kv, "host.*")
        out: dict[str, Lease] = {}
        for key, value in entries.items():
            replica = key.split(".", 1)[1]
            out[replica] = decode_lease(value) or Lease(view=())
        return out

    async def live_replicas(self) -> set[str]:
        """Replicas whose lease has not expired (this one included)."""
        return set(await self.read()) | {self.replica}

    async def owners(self, bots: Iterable[str]) -> dict[str, str]:
        """``bot -> replica`` for each of ``bots`` claimed by exactly one live replica (a
        bot claimed by none, or by two whose views disagree for a moment, is left out)."""
        leases = await self.read()
        out = {}
        for bot in bots:
            claimers = claimed_by(leases, bot)
            if len(claimers) == 1:
                out[bot] = claimers[0]
        return out

    async def leave(self) -> None:
        """Give our lease up (clean shutdown, after the bots were handed over or stopped)."""
        async with self._writing:
            revision, self.revision, self.view = self.revision, None, ()
        if revision is None:
            return
        try:
            await self._kv.delete(self._key, last=revision)
        except Exception as exc:  # leaving anyway; the key expires
            log.warning("could not remove the replica lease", extra={"error": repr(exc)})


def _encode(view: tuple[str, ...]) -> bytes:
    return msgspec.json.encode(Lease(view=view))

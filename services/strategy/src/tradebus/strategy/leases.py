"""Strategy host replicas sharing the bots through KV leases.

Protocol (KV bucket ``leases``, whose TTL is the lease time):

* every replica puts ``host.<replica>`` each heartbeat; the live replicas
  are the ``host.*`` keys present (a killed replica's key expires);
* a bot's lease is ``bot.<bot>`` = the replica's id, taken with
  *create-if-absent* and renewed each heartbeat with a compare-and-set on
  its revision; a replica whose renewal fails has lost the bot and drops it
  at once, without cancelling anything (its new owner resumes it);
* who should run a bot is decided by rendezvous (highest-random-weight)
  hashing of ``(bot, replica)`` over the live replicas
  (Thaler & Ravishankar, 1998): every replica computes the same owner, the
  bots spread evenly, and a replica joining or leaving moves only its share.
  A replica releases (after a final snapshot) a bot whose preferred owner is
  another live replica, and claims the unowned bots it prefers.

A dead replica's bots are therefore resumed elsewhere within one lease time
plus one heartbeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus.common import subjects
from tradebus.common.bus import kv_live_entries

log = logging.getLogger(__name__)

RENEW_CONCURRENCY = 256
"""Lease renewals in flight at once."""


def weight(bot: str, replica: str) -> int:
    """Rendezvous weight of ``replica`` for ``bot`` (64 bits of BLAKE2b of both)."""
    digest = hashlib.blake2b(f"{bot}\x00{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preferred_owner(bot: str, replicas: set[str] | list[str]) -> str | None:
    """The live replica that should run ``bot`` (None when there is none)."""
    return max(replicas, key=lambda r: (weight(bot, r), r), default=None)


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
        self.held: dict[str, int] = {}
        """Bot id -> revision of our lease entry."""

    async def beat(self) -> None:
        """Announce that this replica is alive."""
        await self._kv.put(subjects.host_key(self.replica), self.replica.encode())

    async def live_replicas(self) -> set[str]:
        """Replicas whose heartbeat has not expired (this one included)."""
        keys = await kv_live_entries(self._kv, "host.*")
        return {k.split(".", 1)[1] for k in keys} | {self.replica}

    async def owners(self) -> dict[str, str]:
        """Bot id -> replica of every lease currently held (by anyone)."""
        entries = await kv_live_entries(self._kv, "bot.*")
        return {k.split(".", 1)[1]: v.decode() for k, v in entries.items()}

    async def claim(self, bot: str) -> bool:
        """Take the lease of ``bot`` if nobody holds it; True if we now hold it."""
        if bot in self.held:
            return True
        try:
            self.held[bot] = await self._kv.create(subjects.lease_key(bot), self.replica.encode())
            return True
        except KeyWrongLastSequenceError:
            return False
        except Exception as exc:  # "key exists" is reported as an API error by some servers
            if "wrong last sequence" in str(exc).lower() or "key exists" in str(exc).lower():
                return False
            raise

    async def _renew_one(self, bot: str, revision: int) -> bool:
        try:
            self.held[bot] = await self._kv.update(
                subjects.lease_key(bot), self.replica.encode(), last=revision
            )
            return True
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            return False
        except Exception as exc:
            if "wrong last sequence" not in str(exc).lower():
                raise
            return False

    async def renew(self) -> list[str]:
        """Renew every held lease; returns the bots whose lease was lost (and forgets them).

        Renewals go out :data:`RENEW_CONCURRENCY` at a time, so a replica with
        thousands of bots renews them in a few round trips, not thousands.
        """
        lost = []
        items = list(self.held.items())
        for start in range(0, len(items), RENEW_CONCURRENCY):
            chunk = items[start : start + RENEW_CONCURRENCY]
            kept = await asyncio.gather(*(self._renew_one(b, r) for b, r in chunk))
            lost += [bot for (bot, _), ok in zip(chunk, kept, strict=True) if not ok]
        for bot in lost:
            del self.held[bot]
            log.warning("lease lost", extra={"bot": bot, "replica": self.replica})
        return lost

    async def release(self, bot: str) -> None:
        """Give the lease of ``bot`` up (only if it is still ours)."""
        revision = self.held.pop(bot, None)
        if revision is None:
            return
        try:
            await self._kv.delete(subjects.lease_key(bot), last=revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            pass
        except Exception as exc:
            if "wrong last sequence" not in str(exc).lower():
                raise

    async def leave(self) -> None:
        """Release every lease and the heartbeat (clean shutdown)."""
        for bot in list(self.held):
            await self.release(bot)
        try:
            await self._kv.delete(subjects.host_key(self.replica))
        except Exception as exc:  # leaving anyway; the key expires
            log.warning("could not remove heartbeat", extra={"error": repr(exc)})

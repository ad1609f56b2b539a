"""The strategy hosts' JetStream KV buckets: bot specs, bot snapshots, leases, volumes.

* ``bots``: :class:`~tradebus.strategies.registry.BotSpec` JSON by bot id
  (:mod:`tradebus.control.botstore`: bot files and the gateway write it);
  hosts watch it and pick up additions, changes and removals live.
* ``bot_state``: one :class:`BotRecord` per bot: the core's snapshot, the
  stream sequence of the last order event it reflects, its run and lifecycle.
* ``leases``: which replica runs which bot, with a TTL (see :mod:`tradebus.strategy.leases`).
* ``group_volume``: each volume bot's filled buy notional (§4 targets are per group).
"""

from __future__ import annotations

from typing import Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from tradebus.common import subjects
from tradebus.control.botstore import open_bots, open_kv

Lifecycle = Literal["running", "paused", "flattening", "stopped"]
"""``flattening``: a force exit (``ctl.bots.flatten``) waits for its cancels and closes;
the bot gets no ticks and is ``stopped`` once its core is (docs/strategies.md)."""


class BotRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What KV ``bot_state`` keeps of a bot.

    ``state`` is the core's own snapshot (JSON ``null`` right after a fresh start);
    ``event_seq`` the ``EXEC`` stream sequence of the last order event the
    snapshot reflects (resume replays the bot's events after it); ``run`` the
    run number in the bot's intent ids; ``lifecycle`` survives moves between
    replicas, so a paused bot stays paused; ``execute_trades`` whether that run
    sent its orders to its account (false: a dry run, whose simulated venue is
    not kept: such a bot starts fresh, :mod:`tradebus.strategy.dryrun`).
    """

    strategy: str
    run: int
    event_seq: int = 0
    lifecycle: Lifecycle = "running"
    state: msgspec.Raw = msgspec.Raw(b"null")
    execute_trades: bool = True

    @property
    def snapshot(self) -> bytes | None:
        """The core's snapshot bytes, or None when there is none yet."""
        data = bytes(self.state)
        return None if data in (b"", b"null") else data


_record = msgspec.json.Decoder(BotRecord)


def decode_record(data: bytes) -> BotRecord:
    """Decode a ``bot_state`` value (raises ``msgspec.DecodeError`` if it is not one)."""
    return _record.decode(data)


class Buckets(msgspec.Struct, frozen=True, kw_only=True):
    """Handles of the four buckets."""

    bots: KeyValue
    state: KeyValue
    leases: KeyValue
    volume: KeyValue


async def open_buckets(js: JetStreamContext, lease_seconds: float = 10.0) -> Buckets:
    """Open the buckets, creating those that do not exist yet (idempotent).

    ``lease_seconds`` is the TTL of ``leases`` when it is created: a lease or a
    replica heartbeat not renewed for that long disappears.
    """
    return Buckets(
        bots=await open_bots(js),
        state=await open_kv(js, KeyValueConfig(bucket=subjects.KV_BOT_STATE, history=1)),
        leases=await open_kv(
            js, KeyValueConfig(bucket=subjects.KV_LEASES, history=1, ttl=lease_seconds)
        ),
        volume=await open_kv(js, KeyValueConfig(bucket=subjects.KV_GROUP_VOLUME, history=1)),
    )

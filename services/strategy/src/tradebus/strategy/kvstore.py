"""The strategy hosts' JetStream KV buckets: bot specs, bot snapshots, leases, volumes.

* ``bots``: :class:`~tradebus.strategies.registry.BotSpec` JSON by bot id,
  written by :func:`apply_specs` (``tradebus bots apply -f FILE``); hosts
  watch it and pick up additions, changes and removals live.
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
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.strategies.registry import BotSpec

Lifecycle = Literal["running", "paused", "stopped"]


class BotRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What KV ``bot_state`` keeps of a bot.

    ``state`` is the core's own snapshot (JSON ``null`` right after a fresh start);
    ``event_seq`` the ``EXEC`` stream sequence of the last order event the
    snapshot reflects (resume replays the bot's events after it); ``run`` the
    run number in the bot's intent ids; ``lifecycle`` survives moves between
    replicas, so a paused bot stays paused.
    """

    strategy: str
    run: int
    event_seq: int = 0
    lifecycle: Lifecycle = "running"
    state: msgspec.Raw = msgspec.Raw(b"null")

    @property
    def snapshot(self) -> bytes | None:
        """The core's snapshot bytes, or None when there is none yet."""
        data = bytes(self.state)
        return None if data in (b"", b"null") else data


_record = msgspec.json.Decoder(BotRecord)
_spec = msgspec.json.Decoder(BotSpec)


def decode_record(data: bytes) -> BotRecord:
    """Decode a ``bot_state`` value (raises ``msgspec.DecodeError`` if it is not one)."""
    return _record.decode(data)


def decode_spec(data: bytes) -> BotSpec:
    """Decode a ``bots`` value (raises ``msgspec.DecodeError`` if it is not one)."""
    return _spec.decode(data)


async def _bucket(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        return await js.create_key_value(config=config)


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
        state=await _bucket(js, KeyValueConfig(bucket=subjects.KV_BOT_STATE, history=1)),
        leases=await _bucket(
            js, KeyValueConfig(bucket=subjects.KV_LEASES, history=1, ttl=lease_seconds)
        ),
        volume=await _bucket(js, KeyValueConfig(bucket=subjects.KV_GROUP_VOLUME, history=1)),
    )


async def open_bots(js: JetStreamContext) -> KeyValue:
    """Open KV ``bots``, creating it if needed (the only bucket ``bots apply`` touches)."""
    return await _bucket(js, KeyValueConfig(bucket=subjects.KV_BOTS, history=5))


async def read_specs(kv: KeyValue) -> dict[str, BotSpec]:
    """Every spec in KV ``bots`` by bot id."""
    out: dict[str, BotSpec] = {}
    try:
        keys = await kv.keys()
    except Exception as exc:  # nats-py raises NoKeysError on an empty bucket
        if type(exc).__name__ == "NoKeysError":
            return out
        raise
    for key in keys:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            continue
        if entry.value:
            out[key] = decode_spec(entry.value)
    return out


class ApplyResult(msgspec.Struct, kw_only=True):
    """What :func:`apply_specs` changed, as bot ids."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]


async def apply_specs(
    js: JetStreamContext, specs: list[BotSpec], prune: bool = True, dry_run: bool = False
) -> ApplyResult:
    """Make KV ``bots`` hold exactly ``specs`` (validated beforehand).

    Writes new and changed specs; with ``prune`` deletes the bots that are
    not in ``specs`` (their hosts stop them, cancelling per
    ``cancel_on_exit``). ``dry_run`` only computes the result.
    """
    bots = await open_bots(js)  # not open_buckets: that would fix the leases TTL at its default
    current = await read_specs(bots)
    result = ApplyResult(added=[], changed=[], removed=[], unchanged=[])
    for spec in specs:
        old = current.get(spec.id)
        if old is None:
            result.added.append(spec.id)
        elif encode(old) != encode(spec):
            result.changed.append(spec.id)
        else:
            result.unchanged.append(spec.id)
            continue
        if not dry_run:
            await bots.put(spec.id, encode(spec))
    wanted = {s.id for s in specs}
    if prune:
        for bot in sorted(set(current) - wanted):
            result.removed.append(bot)
            if not dry_run:
                await bots.delete(bot)
    return result

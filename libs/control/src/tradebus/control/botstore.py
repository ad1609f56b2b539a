"""The bot specs of JetStream KV ``bots``: one :class:`BotSpec` JSON per bot id.

Strategy hosts watch the bucket and pick up additions, changes and removals
live (added bots start, changed ones take their new parameters, removed or
disabled ones stop, cancelling per ``cancel_on_exit``). Two writers share it:

* a bot file (``tradebus bots apply -f FILE``, compose's ``bots-apply``):
  :func:`apply_specs` makes the bucket hold the file's bots, and with ``prune``
  deletes the *file's* bots that are no longer in it;
* the gateway (people through the web API): :func:`create_spec`,
  :func:`update_spec` and :func:`delete_spec`, one bot at a time, each
  conditional on the revision the caller read (optimistic concurrency: two
  edits of one bot never silently overwrite each other).

``BotSpec.managed_by`` says which writer owns a bot, so a bot file never
prunes or overwrites a bot made through the API, and the API never edits a
bot of the file (:class:`BotManagedElsewhere`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus.common import subjects
from tradebus.common.bus import kv_live_entries
from tradebus.common.codec import encode
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.control.audit import AuditTrail
from tradebus.strategies.botfile import load_specs
from tradebus.strategies.registry import BotSpec

PUTS_IN_FLIGHT = 256
"""Spec writes of :func:`apply_specs` awaited together (a 10,000-bot file wrote one at a
time: seconds of round trips at a host's start)."""
BOTS_HISTORY = 5
"""Revisions KV ``bots`` keeps per bot."""


class BotStoreError(Exception):
    """A change of KV ``bots`` was refused; the message names the bot and why."""


class BotExists(BotStoreError):
    """:func:`create_spec` of a bot id that is taken."""


class BotNotFound(BotStoreError):
    """The bot is not in KV ``bots`` (never was, or was deleted)."""


class BotChanged(BotStoreError):
    """The bot changed since the caller read it (another writer came first): read again."""


class BotManagedElsewhere(BotStoreError):
    """A bot file tried to change a bot of the API, or the other way round."""


_spec = msgspec.json.Decoder(BotSpec)


def decode_spec(data: bytes) -> BotSpec:
    """Decode a ``bots`` value (raises ``msgspec.DecodeError`` if it is not one)."""
    return _spec.decode(data)


async def open_kv(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """Open the bucket of ``config``, creating it if it does not exist yet."""
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        return await js.create_key_value(config=config)


async def open_bots(js: JetStreamContext) -> KeyValue:
    """Open KV ``bots``, creating it if needed."""
    return await open_kv(js, KeyValueConfig(bucket=subjects.KV_BOTS, history=BOTS_HISTORY))


async def read_specs(kv: KeyValue) -> dict[str, BotSpec]:
    """Every spec in KV ``bots`` by bot id (one watch of the live keys,
    :func:`~tradebus.common.bus.kv_live_entries`: ``kv.keys()`` may end before the first
    key arrives on a busy machine)."""
    entries = await kv_live_entries(kv, ">")
    return {key: decode_spec(value) for key, value in sorted(entries.items()) if value}


async def get_spec(kv: KeyValue, bot: str) -> tuple[BotSpec, int] | None:
    """``(spec, revision)`` of ``bot``, or None when it is not in the bucket."""
    try:
        entry = await kv.get(subjects.token(bot, "bot"))
    except KeyNotFoundError:  # KeyDeletedError is one too
        return None
    if not entry.value:
        return None
    return decode_spec(entry.value), int(entry.revision or 0)


async def create_spec(kv: KeyValue, spec: BotSpec) -> int:
    """Add a new bot (validated beforehand); returns its revision.

    Raises
    ------
    BotExists
        If a bot of that id exists.
    """
    try:  # nats-py's create also re-creates a deleted key
        return int(await kv.create(spec.id, encode(spec)))
    except KeyWrongLastSequenceError:
        raise BotExists(f"bot {spec.id!r} exists") from None


async def update_spec(kv: KeyValue, spec: BotSpec, revision: int) -> int:
    """Replace bot ``spec.id`` if it is still at ``revision``; returns the new revision.

    Raises
    ------
    BotNotFound
        If the bot is not in the bucket.
    BotManagedElsewhere
        If the stored bot is managed by the other writer.
    BotChanged
        If the bot changed since ``revision``.
    """
    current = await get_spec(kv, spec.id)
    if current is None:
        raise BotNotFound(f"no bot {spec.id!r}")
    if current[0].managed_by != spec.managed_by:
        raise BotManagedElsewhere(
            f"bot {spec.id!r} is managed by its {current[0].managed_by}, not the {spec.managed_by}"
        )
    try:
        return int(await kv.update(spec.id, encode(spec), last=revision))
    except KeyWrongLastSequenceError:
        raise BotChanged(f"bot {spec.id!r} changed since revision {revision}") from None


async def delete_spec(kv: KeyValue, bot: str, revision: int | None = None) -> None:
    """Delete ``bot`` (its host stops it, cancelling per ``cancel_on_exit``); with
    ``revision``, only if it is still at that revision.

    Raises
    ------
    BotNotFound
        If the bot is not in the bucket.
    BotChanged
        If ``revision`` is given and the bot changed since.
    """
    if await get_spec(kv, bot) is None:
        raise BotNotFound(f"no bot {bot!r}")
    try:
        await kv.delete(bot, last=revision)
    except KeyWrongLastSequenceError:
        raise BotChanged(f"bot {bot!r} changed since revision {revision}") from None


class SpecChange(msgspec.Struct, frozen=True, kw_only=True):
    """One value of a bot spec that a bot file changes.

    ``path``: where, dotted, a strategy parameter by its own name
    (``take_profit_pct``, ``levels.0.price``), any other field of the spec by
    its field name (``enabled``, ``dry_run_wallet.USDT``); ``old`` / ``new``:
    the JSON values (money as strings), ``None`` when absent on that side.
    """

    path: str
    old: Any = None
    new: Any = None


class ApplyResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What :func:`apply_specs` changed, as bot ids; ``changes``: per changed bot, each
    value that changes (:func:`spec_changes`)."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]
    changes: dict[str, list[SpecChange]] = {}


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}.{i}" if prefix else str(i), out)
    else:
        out[prefix] = value


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[SpecChange]:
    return [
        SpecChange(path=p, old=before.get(p), new=after.get(p))
        for p in sorted(before.keys() | after.keys())
        if before.get(p) != after.get(p)
    ]


def spec_changes(old: BotSpec, new: BotSpec) -> list[SpecChange]:
    """Every value that differs between two specs of one bot, by path (:class:`SpecChange`):
    strategy parameters first, then the other fields, each in path order."""
    flat: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for spec in (old, new):
        fields = msgspec.to_builtins(spec)
        params: dict[str, Any] = {}
        _flatten(fields.pop("params", {}) or {}, "", params)
        rest: dict[str, Any] = {}
        for key, value in fields.items():
            _flatten(value, key, rest)
        flat.append((params, rest))
    (old_params, old_rest), (new_params, new_rest) = flat
    return _differences(old_params, new_params) + _differences(old_rest, new_rest)


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def change_lines(result: ApplyResult) -> list[str]:
    """One line per changed value, for people: ``bot: path old → new``
    (``alice-btc: take_profit_pct 1.5 → 2``); ``(unset)`` for a value added or removed."""
    return [
        f"{bot}: {c.path} {_shown(c.old)} \N{RIGHTWARDS ARROW} {_shown(c.new)}"
        for bot in result.changed
        for c in result.changes.get(bot, [])
    ]


async def apply_specs(
    js: JetStreamContext,
    specs: list[BotSpec],
    prune: bool = True,
    dry_run: bool = False,
    audit: AuditTrail | None = None,
    actor: str = "",
) -> ApplyResult:
    """Make KV ``bots`` hold ``specs`` (a bot file's, validated beforehand).

    Writes new and changed specs; with ``prune`` deletes the bots of a file
    (``managed_by == "file"``) that are not in ``specs`` (their hosts stop
    them, cancelling per ``cancel_on_exit``). Bots made through the API are
    never touched. ``dry_run`` only computes the result.

    With ``audit``, each write is recorded as it is made (``bot.create``,
    ``bot.update``, ``bot.delete``; target ``bot:<id>``, user the bot's owner,
    before/after the whole spec, which holds no secret), by ``actor``
    (``cli:<login>``); a dry run records nothing. An event that cannot be
    published is logged, and the write stands (:meth:`AuditTrail.record`).

    Raises
    ------
    BotManagedElsewhere
        If a spec has the id of a bot made through the API (nothing is written).
    """
    bots = await open_bots(js)
    current = await read_specs(bots)
    taken = sorted(s.id for s in specs if s.id in current and current[s.id].managed_by != "file")
    if taken:
        raise BotManagedElsewhere(
            f"bot id(s) {', '.join(taken)} belong to bots made through the API; rename them"
        )
    result = ApplyResult(added=[], changed=[], removed=[], unchanged=[])
    writes: list[tuple[BotSpec, BotSpec | None]] = []
    for spec in specs:
        old = current.get(spec.id)
        if old is None:
            result.added.append(spec.id)
        elif encode(old) != encode(spec):
            result.changed.append(spec.id)
            result.changes[spec.id] = spec_changes(old, spec)
        else:
            result.unchanged.append(spec.id)
            continue
        writes.append((spec, old))
    for start in range(0, 0 if dry_run else len(writes), PUTS_IN_FLIGHT):
        chunk = writes[start : start + PUTS_IN_FLIGHT]
        await asyncio.gather(*(bots.put(spec.id, encode(spec)) for spec, _ in chunk))
        if audit is not None:
            for spec, old in chunk:
                action = "bot.create" if old is None else "bot.update"
                await _record(audit, actor, action, spec.id, spec.user, old, spec)
    wanted = {s.id for s in specs}
    if prune:
        for bot in sorted(set(current) - wanted):
            if current[bot].managed_by != "file":
                continue
            result.removed.append(bot)
            if not dry_run:
                await bots.delete(bot)
                if audit is not None:
                    old = current[bot]
                    await _record(audit, actor, "bot.delete", bot, old.user, old, None)
    return result


async def _record(
    audit: AuditTrail,
    actor: str,
    action: str,
    bot: str,
    user: str,
    before: BotSpec | None,
    after: BotSpec | None,
) -> None:
    """One audit event of a bot file's change."""
    await audit.record(
        actor,
        action,
        f"bot:{bot}",
        user=user,
        before=before,
        after=after,
        details={"managed_by": "file"},
    )


async def apply_file_to(
    js: JetStreamContext,
    path: str | Path,
    markets_file: str | Path | None = None,
    prune: bool = True,
    dry_run: bool = False,
    audit: AuditTrail | None = None,
    actor: str = "",
) -> ApplyResult:
    """Validate the bot file ``path`` and make KV ``bots`` hold its bots (:func:`apply_specs`,
    which records each change to ``audit`` as ``actor`` when given).

    Raises
    ------
    ConfigError
        If the bot file or the markets file is invalid (nothing is written).
    BotManagedElsewhere
        If the file names a bot made through the API (nothing is written).
    """
    catalog = MarketCatalog.load(markets_file or default_markets_path())
    specs = load_specs(path, catalog)
    return await apply_specs(js, specs, prune=prune, dry_run=dry_run, audit=audit, actor=actor)

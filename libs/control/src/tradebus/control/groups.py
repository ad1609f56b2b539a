"""Strategy groups: start, stop, pause, resume and status of every bot of one group.

A group is a block of the bot file's ``strategies`` (``BotSpec.group``): the
bots of all users made from it. Seed 004 runs and reports a volume strategy
as a whole (``--status``: target, total, progress, per-user volume); here the
group verbs are composed from the per-bot ones, so there is one
implementation of each command (:func:`tradebus.control.bots.send_command`,
carried out and audited by the host running the bot):

* :func:`command_group` reads the group's bots from KV ``bots`` and sends
  ``ctl.bots.<verb>`` to each enabled one at once; a disabled bot is left as
  it is and said so;
* :func:`group_status` puts together the group's bots (KV ``bots``), their
  states (``ctl.bots.list``, every host) and, for a volume group, the volumes
  the hosts count toward the target (KV ``group_volume``: each bot's filled
  buy notional, by user). The volumes are read from KV, not from the bots'
  statuses, so a stopped, disabled or moving bot's volume still counts, as
  it does for the bots of the group.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
import nats.errors
from nats.aio.client import Client as NATS
from nats.js.errors import BucketNotFoundError

from tradebus.common import subjects
from tradebus.common.bus import kv_live_entries
from tradebus.common.messages import BotCommand, BotStatus, StartMode, VolumeReport
from tradebus.control.bots import ControlError, bot_statuses, send_command
from tradebus.control.botstore import open_bots, read_specs
from tradebus.strategies.registry import BotSpec
from tradebus.strategies.volume.params import progress_pct

VOLUME = "volume"


class GroupNotFound(Exception):
    """No bot of KV ``bots`` belongs to the group."""

    def __init__(self, group: str) -> None:
        super().__init__(f"no bots of group {group!r} in KV bots")
        self.group = group


class GroupBotResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a group command did to one bot: ``ok`` and the host's ``message``, or the
    refusal's ``error`` code (``unknown_bot``, ``not_running``, ``no_host``, ``disabled``);
    ``state`` the bot's lifecycle after it (None when no host answered)."""

    bot: str
    user: str
    ok: bool
    message: str
    error: str | None = None
    state: str | None = None
    host: str = ""


class GroupCommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """A group command: ``verb`` sent to each bot of ``group``; ``ok`` when every enabled
    bot's host carried it out."""

    group: str
    verb: str
    ok: bool
    bots: list[GroupBotResult]


class GroupBot(msgspec.Struct, frozen=True, kw_only=True):
    """One bot of a group in :class:`GroupStatus`: its lifecycle ``state`` as its host
    reports it (``running``, ``paused``, ``stopped``, ``failed``; ``disabled`` or
    ``not_running`` when no host runs it), its ``phase``, and for a volume bot its filled
    buy notional ``volume`` (quote) and ``target_volume``."""

    bot: str
    user: str
    account: str
    symbol: str | None
    state: str
    phase: str = ""
    volume: Decimal | None = None
    target_volume: Decimal | None = None
    host: str = ""


class GroupStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A group as seed 004's ``--status`` prints a strategy.

    ``strategy`` is the kind (``volume``...), ``strategy_name`` the display name
    (the bots' ``strategy_name`` parameter where they have one, else the group);
    ``is_running`` is true while any bot of the group runs. For a volume group:
    ``target_volume`` (quote; the largest of the bots' targets, which is where the
    last bot stops), ``total_volume`` (the sum of every bot's filled buy notional, the
    figure the bots compare with their target, STRATEGIES.md §4), ``progress``
    (``"7.53%"``: ``total / target * 100`` rounded down to 0.01) and ``user_volumes``
    (user -> their bots' filled buy notional). None / empty for other strategies.
    """

    group: str
    strategy: str
    strategy_name: str
    is_running: bool
    target_volume: Decimal | None
    total_volume: Decimal | None
    progress: str | None
    user_volumes: dict[str, Decimal]
    bots: list[GroupBot]


async def group_specs(nc: NATS, group: str) -> list[BotSpec]:
    """The specs of KV ``bots`` whose group is ``group``, by bot id.

    Raises
    ------
    GroupNotFound
        If there is none.
    """
    specs = await read_specs(await open_bots(nc.jetstream()))
    found = sorted((s for s in specs.values() if s.group_name == group), key=lambda s: s.id)
    if not found:
        raise GroupNotFound(group)
    return found


async def command_group(
    nc: NATS, verb: str, group: str, mode: StartMode = "resume", actor: str = ""
) -> GroupCommandResult:
    """Send ``ctl.bots.<verb>`` (``pause``, ``resume``, ``stop``, ``start`` with ``mode``)
    to every enabled bot of ``group`` at once, as ``actor``; a disabled bot gets nothing
    (error ``disabled``).

    Raises
    ------
    GroupNotFound
        If no bot of KV ``bots`` belongs to the group.
    ValueError
        If ``verb`` is not a command verb.
    """
    specs = await group_specs(nc, group)

    async def one(spec: BotSpec) -> GroupBotResult:
        if not spec.enabled:
            return GroupBotResult(
                bot=spec.id, user=spec.user, ok=False, message="disabled", error="disabled"
            )
        try:
            command = BotCommand(bot=spec.id, mode=mode, actor=actor)
            reply = await send_command(nc, verb, command)
        except ControlError as exc:
            return GroupBotResult(
                bot=spec.id, user=spec.user, ok=False, message=exc.message, error=exc.error
            )
        state = reply.status.state if reply.status is not None else None
        return GroupBotResult(
            bot=spec.id,
            user=spec.user,
            ok=reply.ok,
            message=reply.message,
            state=state,
            host=reply.host,
        )

    results = list(await asyncio.gather(*(one(spec) for spec in specs)))
    ok = all(r.ok for r in results if r.error != "disabled")
    return GroupCommandResult(group=group, verb=verb, ok=ok, bots=results)


async def group_volumes(nc: NATS, group: str) -> dict[str, VolumeReport]:
    """Bot id -> its :class:`VolumeReport` in KV ``group_volume`` under ``<group>.``
    (empty when the bucket does not exist yet or holds nothing of the group)."""
    try:
        kv = await nc.jetstream().key_value(subjects.KV_GROUP_VOLUME)
        raw = await kv_live_entries(kv, subjects.group_volume_keys(group))
    except (BucketNotFoundError, nats.errors.TimeoutError):
        return {}
    out: dict[str, VolumeReport] = {}
    for key, value in raw.items():
        try:
            out[key.partition(".")[2]] = msgspec.json.decode(value, type=VolumeReport)
        except msgspec.DecodeError:
            continue
    return out


def _decimal_param(spec: BotSpec, name: str) -> Decimal | None:
    value = spec.params.get(name)
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


def summarize(
    group: str,
    specs: list[BotSpec],
    statuses: dict[str, BotStatus],
    volumes: dict[str, VolumeReport],
) -> GroupStatus:
    """The :class:`GroupStatus` of ``group`` from its specs, the hosts' statuses of its
    bots (bot id -> status) and its bots' volume reports (bot id -> report). Pure."""
    kind = specs[0].strategy
    names = [str(s.params["strategy_name"]) for s in specs if s.params.get("strategy_name")]
    bots = []
    for spec in specs:
        status = statuses.get(spec.id)
        report = volumes.get(spec.id)
        state = status.state if status else ("not_running" if spec.enabled else "disabled")
        bots.append(
            GroupBot(
                bot=spec.id,
                user=spec.user,
                account=spec.account,
                symbol=spec.symbol,
                state=state,
                phase=status.phase if status else "",
                volume=(report.volume if report else Decimal(0)) if kind == VOLUME else None,
                target_volume=_decimal_param(spec, "target_volume"),
                host=(status.host or "") if status else "",
            )
        )
    target = total = progress = None
    user_volumes: dict[str, Decimal] = {}
    if kind == VOLUME:
        for report in volumes.values():
            user_volumes[report.user] = user_volumes.get(report.user, Decimal(0)) + report.volume
        total = sum(user_volumes.values(), Decimal(0))
        targets = [b.target_volume for b in bots if b.target_volume is not None]
        target = max(targets) if targets else None
        if target is not None:
            progress = f"{progress_pct(total, target)}%"
    return GroupStatus(
        group=group,
        strategy=kind,
        strategy_name=names[0] if names else group,
        is_running=any(b.state == "running" for b in bots),
        target_volume=target,
        total_volume=total,
        progress=progress,
        user_volumes=dict(sorted(user_volumes.items())),
        bots=bots,
    )


async def group_status(nc: NATS, group: str) -> GroupStatus:
    """The status of ``group`` (:func:`summarize` of KV ``bots``, every host's
    ``ctl.bots.list`` answer and KV ``group_volume``).

    Raises
    ------
    GroupNotFound
        If no bot of KV ``bots`` belongs to the group.
    ControlError
        If a host refuses the list query.
    """
    specs = await group_specs(nc, group)
    ids = {s.id for s in specs}
    statuses = {s.bot: s for s in await bot_statuses(nc) if s.bot in ids}
    volumes = await group_volumes(nc, group) if specs[0].strategy == VOLUME else {}
    return summarize(group, specs, statuses, volumes)

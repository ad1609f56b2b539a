"""Which bot is in which capped strategy group: KV ``bots`` followed, read only.

A strategy group's ``total_capital`` (bot file ``strategies.<group>.total_capital``)
is enforced by execution (:mod:`tradebus.engine.group_capital`), where intents are
accepted. Execution learns each bot's group and cap from the specs the strategy hosts
run, KV ``bots``, and not from the intents: a bot is named by its intents' subject
(``intent.<user>.<bot>``), so nothing an intent says can take a bot out of its group,
and every replica of every host, whatever spec it last saw, is held to the cap the
bucket holds now. Execution only reads the bucket (its NATS user may not write it).

:class:`BotGroups` reads every spec before execution takes intents
(:meth:`BotGroups.start` waits for the watch to catch up) and then follows changes:
a bot added, changed, removed or moved to another group or account is counted as it
is now. A bucket that does not exist yet (no bot file applied) is created empty, as
the hosts would (execution may create it, never write a key of it), so the watch
starts with execution and sees the first spec written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE

from tradebus.control.botstore import decode_spec, open_bots
from tradebus.engine.group_capital import GroupCaps, GroupMember

log = logging.getLogger(__name__)

CATCH_UP_SECONDS = 10.0
"""How long :meth:`BotGroups.start` waits for the bucket's current specs."""


class BotGroups:
    """Keeps ``groups`` as KV ``bots`` says (module docstring)."""

    def __init__(self, js: JetStreamContext, groups: GroupCaps) -> None:
        self._js = js
        self._groups = groups
        self._caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow the bucket in a task; return once its current specs are read (or
        :data:`CATCH_UP_SECONDS` passed: logged)."""
        self._task = asyncio.create_task(self._follow(), name="bot-groups")
        try:
            await asyncio.wait_for(self._caught_up.wait(), CATCH_UP_SECONDS)
        except TimeoutError:
            log.error("bot groups: KV bots not read yet; group capital caps wait for it")

    async def close(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        kv = await open_bots(self._js)
        watcher = await kv.watchall()
        async for entry in watcher:
            if entry is None:
                self._caught_up.set()
                continue
            self._apply(entry.key, entry.value, entry.operation in (KV_DEL, KV_PURGE))

    def _apply(self, bot: str, value: bytes | None, deleted: bool) -> None:
        if deleted or not value:
            self._groups.set(bot, None)
            return
        try:
            spec = decode_spec(value)
        except msgspec.DecodeError:
            log.warning("bot groups: a spec that does not decode", extra={"bot": bot})
            self._groups.set(bot, None)
            return
        if spec.total_capital is None:
            self._groups.set(bot, None)
            return
        member = GroupMember(
            user=spec.user,
            account=spec.account,
            group=spec.group_name,
            total_capital=spec.total_capital,
        )
        self._groups.set(bot, member)
        log.info(
            "bot groups: bot in a capped group",
            extra={"bot": bot, "group": member.group, "total_capital": member.total_capital},
        )

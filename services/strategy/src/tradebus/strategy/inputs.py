"""Inputs a bot needs beyond ticks and its own order events, fetched by the host.

A core names the inputs it takes in ``inputs`` (:class:`BotInput`); only
those cores are asked or told:

* **Account balances** (:attr:`BotInput.BALANCES`, ``exec.query.balances``):
  given to ``on_balances`` (martingale checks its worst-case capital before
  its first order, STRATEGIES.md §2), every few seconds and as soon as such
  a bot starts; a dry-run bot is given its simulated account's instead. A
  bot on a perpetual market is asked for too: its status shows its account's
  margin ratio and each of its positions' liquidation price as the venue
  estimates them.
* **Group volume** (:attr:`BotInput.GROUP_VOLUME`, KV ``group_volume``): each
  such bot's filled buy notional (``own_volume``), written by the host that
  runs it; every host sums them per group and tells its bots of the group the
  total and the per-user split (``on_group_volume``; STRATEGIES.md §4: the
  target is the sum over all users of the strategy). A dry-run bot's simulated
  volume is not reported (it traded nothing); it is told the group's total. Each report also says
  whether the bot is in play and holds a turn (``group_turn``), and every
  host hands its bots the group's users in play with their turns, from which
  a bot with ``max_concurrent_users`` takes a turn (docs/strategies.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from decimal import Decimal

import msgspec
from nats.aio.client import Client as NATS
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_balances_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import BalancesQuery, BalancesReply, VolumeReport
from tradebus.strategies.core import BotInput
from tradebus.strategy.host import BotRunner, Dispatcher
from tradebus.strategy.publisher import IntentPublisher

log = logging.getLogger(__name__)


def takes(runner: BotRunner, what: BotInput) -> bool:
    """The bot's core declares the input ``what`` (``Strategy.inputs``)."""
    return what in runner.core.inputs


class Balances:
    """Polls execution for the balances of accounts whose bots want them."""

    def __init__(self, nc: NATS, dispatcher: Dispatcher, interval: float) -> None:
        self._nc = nc
        self._dispatcher = dispatcher
        self._interval = interval
        self.wake = asyncio.Event()

    async def run(self) -> None:
        """Forever: fetch and hand out balances every interval or when woken."""
        while True:
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._interval)
            self.wake.clear()

    async def refresh(self) -> None:
        """One round: ask execution once per account, give each bot of it the answer."""
        by_account: dict[AccountId, list[BotRunner]] = {}
        for runner in self._dispatcher.runners.values():
            wanted = takes(runner, BotInput.BALANCES) or runner.trades_perpetual
            if wanted and runner.dry is not None:  # its simulated account: nothing to ask
                self._dispatcher.on_balances(runner, runner.dry.balances())
            elif wanted and not runner.catching_up:
                by_account.setdefault(runner.spec.account, []).append(runner)
        for account, runners in by_account.items():
            try:
                raw = await request(
                    self._nc, subjects.exec_query("balances"), BalancesQuery(account=account), 2.0
                )
                reply = decode_balances_reply(raw)
            except Exception as exc:  # execution not up yet: try again next round
                log.info("balances unavailable", extra={"account": account, "error": repr(exc)})
                continue
            if not isinstance(reply, BalancesReply):
                continue
            for balances in reply.accounts:
                if balances.account == account:
                    for runner in runners:
                        self._dispatcher.on_balances(runner, balances)


class GroupVolumes:
    """Publishes this host's volume bots' volumes and hands every group's total to them."""

    def __init__(
        self,
        kv: KeyValue,
        dispatcher: Dispatcher,
        publisher: IntentPublisher,
        interval: float,
        members: Callable[[str], Collection[str]] | None = None,
    ) -> None:
        """``members(group)``: the ids of every bot of ``group`` in KV ``bots`` (whichever
        replica runs it); the group's turns are handed out only once each has reported,
        so that every bot decides on the whole group (None: on what was heard)."""
        self._members = members
        self._kv = kv
        self._dispatcher = dispatcher
        self._publisher = publisher
        self._interval = interval
        self._table: dict[str, dict[str, VolumeReport]] = {}
        self._reported: dict[str, tuple[Decimal, bool | None]] = {}

    def totals(self, group: str) -> tuple[Decimal, dict[str, Decimal], dict[str, bool] | None]:
        """``(total, by_user, turns)`` of a group as last heard; ``turns``: its users in
        play and whether each holds a turn (a user with several bots: if any holds one),
        None until every bot of the group has reported. A bot no longer in KV ``bots``
        (removed from the file) holds no turn; its volume still counts."""
        by_user: dict[str, Decimal] = {}
        turns: dict[str, bool] = {}
        reports = self._table.get(group, {})
        members = None if self._members is None else set(self._members(group))
        for bot, report in reports.items():
            by_user[report.user] = by_user.get(report.user, Decimal(0)) + report.volume
            if report.turn is not None and (members is None or bot in members):
                turns[report.user] = turns.get(report.user, False) or report.turn
        total = sum(by_user.values(), Decimal(0))
        if members is not None and not members <= reports.keys():
            return total, by_user, None
        return total, by_user, turns

    def _tell(self, group: str) -> None:
        total, by_user, turns = self.totals(group)
        for runner in self._dispatcher.runners.values():
            if takes(runner, BotInput.GROUP_VOLUME) and runner.core.ctx.group == group:
                self._dispatcher.on_group_volume(runner, total, by_user, turns)

    async def watch(self) -> None:
        """Follow KV ``group_volume`` forever."""
        watcher = await self._kv.watchall()
        async for entry in watcher:
            if entry is None:
                continue
            group, _, bot = entry.key.partition(".")
            if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                self._table.get(group, {}).pop(bot, None)
            else:
                try:
                    self._table.setdefault(group, {})[bot] = msgspec.json.decode(
                        entry.value, type=VolumeReport
                    )
                except msgspec.DecodeError:
                    continue
            self._tell(group)

    async def report(self) -> None:
        """Forever: publish each local volume bot's volume when it changed."""
        while True:
            for runner in self._dispatcher.runners.values():
                if not takes(runner, BotInput.GROUP_VOLUME) or runner.catching_up:
                    continue
                if runner.dry is not None:  # simulated volume is no one's traded volume
                    continue
                volume, turn = runner.core.own_volume(), runner.core.group_turn()
                if runner.lifecycle == "stopped":
                    turn = None
                if self._reported.get(runner.bot) != (volume, turn):
                    self._reported[runner.bot] = (volume, turn)
                    report = VolumeReport(user=runner.spec.user, volume=volume, turn=turn)
                    key = subjects.group_volume_key(runner.core.ctx.group, runner.bot)
                    self._publisher.put_kv(
                        subjects.KV_GROUP_VOLUME, key, msgspec.json.encode(report)
                    )
            await asyncio.sleep(self._interval)

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
  volume is not reported (it traded nothing); it is told the group's total.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal

import msgspec
from nats.aio.client import Client as NATS
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_balances_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import BalancesQuery, BalancesReply
from tradebus.strategies.core import BotInput
from tradebus.strategy.host import BotRunner, Dispatcher
from tradebus.strategy.publisher import IntentPublisher

log = logging.getLogger(__name__)


class VolumeReport(msgspec.Struct, frozen=True, kw_only=True):
    """A value of KV ``group_volume``: one bot's filled buy notional (quote asset)."""

    user: str
    volume: Decimal


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
        self, kv: KeyValue, dispatcher: Dispatcher, publisher: IntentPublisher, interval: float
    ) -> None:
        self._kv = kv
        self._dispatcher = dispatcher
        self._publisher = publisher
        self._interval = interval
        self._table: dict[str, dict[str, VolumeReport]] = {}
        self._reported: dict[str, Decimal] = {}

    def totals(self, group: str) -> tuple[Decimal, dict[str, Decimal]]:
        """``(total, by_user)`` of a group as last heard."""
        by_user: dict[str, Decimal] = {}
        for report in self._table.get(group, {}).values():
            by_user[report.user] = by_user.get(report.user, Decimal(0)) + report.volume
        return sum(by_user.values(), Decimal(0)), by_user

    def _tell(self, group: str) -> None:
        total, by_user = self.totals(group)
        for runner in self._dispatcher.runners.values():
            if takes(runner, BotInput.GROUP_VOLUME) and runner.core.ctx.group == group:
                self._dispatcher.on_group_volume(runner, total, by_user)

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
                volume = runner.core.own_volume()
                if self._reported.get(runner.bot) != volume:
                    self._reported[runner.bot] = volume
                    report = VolumeReport(user=runner.spec.user, volume=volume)
                    key = subjects.group_volume_key(runner.core.ctx.group, runner.bot)
                    self._publisher.put_kv(
                        subjects.KV_GROUP_VOLUME, key, msgspec.json.encode(report)
                    )
            await asyncio.sleep(self._interval)

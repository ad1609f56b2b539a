"""Per-bot position checks (seed 001's real-position check) and their journaling.

For every running bot whose core has a position check on
(:meth:`Strategy.position_check`), the host asks execution for the bot's
account on ``exec.query.balances`` with ``bot_positions`` (one request per
account per round): the venue balances and every order source's ledger
position per base asset. What the account holds for the bot is

``held = venue total of the bot's base asset - the ledger positions of the other bots``

(every source but the bot itself and ``manual``: a manual order is a change
behind the bots' backs). The core's :meth:`Strategy.check_position` compares
and acts (pure: :mod:`tradebus.strategies.position_check`); a correction
(``adopt``, ``reduce``) is saved with the bot's snapshot, then journaled by
execution (``exec.bot_adjust``, idempotent by its ``ref``). An average price
set by hand (``ctl.bots.set-average``, :mod:`tradebus.strategy.control`) is
journaled the same way (:meth:`PositionChecks.journal`).

A bot is checked when it starts, every ``interval_seconds``, and with
``on_tick`` also on its ticks at most once a second. The bots of one account
due in a round are checked in id order on one reply, asked again after a
correction so that the next bots see it. Bots on other replicas may check
at the same moment: let one bot per account and asset adopt or reduce. Its status then shows
the finding (``position_check``, ``position_difference``,
``position_mismatch``); the gauges ``tradebus_strategy_bot_position_mismatch``
and ``tradebus_strategy_bot_average_missing`` (:mod:`tradebus.strategy.bot_metrics`)
carry it to the alert rules.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

from nats.aio.client import Client as NATS

from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.clock import Clock, LiveClock
from tradebus.common.codec import decode_balances_reply, decode_bot_adjust_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import (
    AccountBalances,
    BalancesQuery,
    BalancesReply,
    BotAdjustment,
    BotAdjustReply,
    Intent,
)
from tradebus.strategies.core import Strategy
from tradebus.strategies.position_check import ON_TICK_MIN_SECONDS, PositionCheckResult
from tradebus.strategy.host import BotRunner, Dispatcher

log = logging.getLogger(__name__)

ROUND_SECONDS = 0.25
"""How often the host looks for bots due a check."""
JOURNAL_ATTEMPTS = 3


def held_for(runner: BotRunner, balances: AccountBalances) -> Decimal:
    """What the account holds of the bot's base asset for the bot (module docstring)."""
    base = runner.core.ctx.market.base
    total = next((b.total for b in balances.balances if b.asset == base), Decimal(0))
    others = sum(
        (
            p.qty
            for p in balances.bot_positions
            if p.asset == base and p.source not in (runner.bot, subjects.MANUAL_SOURCE)
        ),
        Decimal(0),
    )
    return total - others


def adjustment(
    runner: BotRunner, result: PositionCheckResult, actor: str, ts: int
) -> BotAdjustment:
    """The journal request of a correction ``result`` of ``runner``'s bot."""
    ctx = runner.core.ctx
    kind = "average" if result.outcome == "average" else result.outcome
    assert kind in ("adopt", "reduce", "average")
    return BotAdjustment(
        account=ctx.account,
        user=ctx.user,
        bot=ctx.bot,
        symbol=ctx.market.symbol,
        asset=ctx.market.base,
        kind=kind,
        qty=result.qty,
        price=result.price,
        old_average=result.old_average,
        new_average=result.new_average,
        held=None if kind == "average" else result.held,
        actor=actor,
        ref=result.ref,
        ts_event=ts,
    )


class PositionChecks:
    """Runs the position checks of this replica's bots (module docstring).

    ``timeout``: seconds to wait for execution's answers.
    """

    def __init__(
        self,
        nc: NATS,
        dispatcher: Dispatcher,
        clock: Clock | None = None,
        timeout: float = 2.0,
    ) -> None:
        self._nc = nc
        self._dispatcher = dispatcher
        self._clock = clock or LiveClock()
        self._timeout = timeout
        self._last: dict[str, float] = {}  # bot -> monotonic time of its last check
        self._seq: dict[str, int] = {}  # bot -> its market's tick count then

    async def run(self) -> None:
        """Forever: check the bots that are due."""
        while True:
            try:
                await self.round()
            except Exception as exc:  # execution away, NATS hiccup: next round
                log.warning("position check round failed", extra={"error": repr(exc)})
            await asyncio.sleep(ROUND_SECONDS)

    def _ticks(self, runner: BotRunner) -> int:
        return runner.markets[0].seq if runner.markets else 0

    def _due(self, runner: BotRunner, now: float) -> bool:
        settings = runner.core.position_check()
        if settings is None or not runner.takes_ticks:
            return False
        last = self._last.get(runner.bot)
        if last is None or now - last >= float(settings.interval_seconds):
            return True
        ticked = self._ticks(runner) != self._seq.get(runner.bot)
        return settings.on_tick and ticked and now - last >= ON_TICK_MIN_SECONDS

    async def round(self) -> None:
        """One round: every due bot, one balances request per account."""
        now = time.monotonic()
        for bot in set(self._last) - set(self._dispatcher.runners):
            self._last.pop(bot, None)
            self._seq.pop(bot, None)
        by_account: dict[AccountId, list[BotRunner]] = {}
        for runner in self._dispatcher.runners.values():
            if self._due(runner, now):
                by_account.setdefault(runner.spec.account, []).append(runner)
        for account, runners in by_account.items():
            balances = await self._balances(account)
            for runner in sorted(runners, key=lambda r: r.bot):
                if balances is None:
                    break
                if runner.bot not in self._dispatcher.runners:
                    continue
                self._last[runner.bot], self._seq[runner.bot] = now, self._ticks(runner)
                result = await self.check(runner, held_for(runner, balances))
                if result is not None and result.outcome in ("adopt", "reduce"):
                    balances = await self._balances(account)  # the next bots see it

    async def _balances(self, account: AccountId) -> AccountBalances | None:
        """The account's balances with every source's ledger position, None if unavailable."""
        query = BalancesQuery(account=account, bot_positions=True)
        raw = await request(self._nc, subjects.exec_query("balances"), query, self._timeout)
        reply = decode_balances_reply(raw)
        if not isinstance(reply, BalancesReply):
            log.info("balances unavailable", extra={"account": account, "error": reply.message})
            return None
        return next((a for a in reply.accounts if a.account == account), None)

    async def check(self, runner: BotRunner, held: Decimal) -> PositionCheckResult | None:
        """Check one bot against ``held``; journal a correction; the status shows it."""
        found: list[PositionCheckResult] = []

        def act(core: Strategy) -> list[Intent]:
            result = core.check_position(held)
            if result is not None:
                found.append(result)
            return []

        self._dispatcher.call(runner, act)
        if not found:
            return None
        result = found[0]
        if result.outcome in ("adopt", "reduce"):
            self._dispatcher.save(runner)  # the snapshot first, then the journal
            await self.journal(runner, result, "strategy")
        elif self._dispatcher.status_events is not None:
            self._dispatcher.status_events.touch(runner)
        if result.outcome != "ok":
            log.warning(
                "position check",
                extra={
                    "bot": runner.bot,
                    "outcome": result.outcome,
                    "position": str(result.position),
                    "held": str(result.held),
                    "difference": str(result.difference),
                },
            )
        return result

    async def journal(self, runner: BotRunner, result: PositionCheckResult, actor: str) -> bool:
        """Have execution journal a correction (``exec.bot_adjust``), retrying a few times;
        False if it could not (logged; the bot's state keeps the correction)."""
        command = adjustment(runner, result, actor, self._clock.now_ns())
        for attempt in range(JOURNAL_ATTEMPTS):
            try:
                raw = await request(self._nc, subjects.EXEC_BOT_ADJUST, command, self._timeout)
                reply = decode_bot_adjust_reply(raw)
            except Exception as exc:
                log.warning(
                    "bot correction not journaled yet",
                    extra={"bot": runner.bot, "ref": result.ref, "error": repr(exc)},
                )
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            if isinstance(reply, BotAdjustReply):
                return True
            log.error(
                "bot correction refused",
                extra={"bot": runner.bot, "ref": result.ref, "error": reply.message},
            )
            return False
        log.error("bot correction not journaled", extra={"bot": runner.bot, "ref": result.ref})
        return False

"""``ctl.bots.*``: list, status, pause, resume, stop, start and flatten bots by request/reply.

Every replica subscribes. A question about all bots (``{}``) is answered by
every replica with its own bots (``BotsReply.host`` says which; gather them
with ``nats req --replies 0``, or use ``tradebus bots list``). A question or
command about one bot is answered by the replica running it; if none runs
it, the replica that *should* run it answers ``unknown_bot`` or
``not_running`` after a short grace, so a request always gets one answer.

Examples (NATS CLI)::

    nats req ctl.bots.status '{"bot":"alice-ladder-btc"}'
    nats req ctl.bots.pause  '{"bot":"alice-ladder-btc"}'
    nats req ctl.bots.start  '{"bot":"alice-ladder-btc","mode":"fresh"}'
    nats req ctl.bots.flatten '{"bot":"alice-ladder-btc"}'
    nats req ctl.bots.list   '{}' --replies 0 --timeout 1s
    nats req ctl.bots.set-average '{"bot":"alice-ladder-btc","price":"50000"}'

``set-average`` (:class:`BotSetAverage`) sets the bot's average entry price by
hand (seed 001); the host saves the bot's snapshot, has execution journal the
correction (``exec.bot_adjust``, kind ``average``: who, when, old and new
average) and records ``bot.set-average`` in the audit log. A bot without a
position, or a price that is not > 0, is refused (``invalid``).

Every command the replica carries out is recorded in the audit log
(``audit.strategy``) before it is answered: action ``bot.<verb>``, target
``bot:<id>``, user the bot's owner, actor the command's ``actor`` (``nats``
when it names none), ``before``/``after`` the bot's state (and the start
mode); a command that changed nothing (pausing a paused bot) is recorded
too, with equal before and after. Commands refused (``unknown_bot``,
``not_running``, ``bad_request``) changed nothing and are not recorded.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tradebus.common import subjects
from tradebus.common.clock import LiveClock
from tradebus.common.codec import (
    decode_bot_command,
    decode_bot_set_average,
    decode_bots_query,
    encode,
)
from tradebus.common.messages import BotCommand, BotCommandReply, BotsReply, ErrorReply
from tradebus.control.audit import AuditTrail
from tradebus.strategy.host import BotRunner
from tradebus.strategy.leases import claimed_by
from tradebus.strategy.position_checks import PositionChecks
from tradebus.strategy.supervisor import Supervisor

log = logging.getLogger(__name__)

ABSENT_GRACE_SECONDS = 0.25
"""How long the preferred replica waits before saying a bot runs nowhere."""
QUERY_VERBS = ("list", "status")
COMMAND_VERBS = ("pause", "resume", "stop", "start", "flatten")
SET_AVERAGE = "set-average"


class Control:
    """The ``ctl.bots.*`` responders of one replica.

    ``audit`` publishes the audit events of the commands carried out
    (default: on ``nc``'s JetStream, stamped by the live clock); ``checks``
    journals an average set by hand (default: on ``nc``).
    """

    def __init__(
        self,
        nc: NATS,
        supervisor: Supervisor,
        audit: AuditTrail | None = None,
        checks: PositionChecks | None = None,
    ) -> None:
        self._nc = nc
        self._sup = supervisor
        self._audit = audit or AuditTrail(nc.jetstream(), "strategy", LiveClock())
        self._checks = checks or PositionChecks(nc, supervisor.dispatcher)
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        """Subscribe to every verb."""
        for verb in QUERY_VERBS:
            self._subs.append(await self._nc.subscribe(subjects.ctl("bots", verb), cb=self._query))
        for verb in COMMAND_VERBS:

            async def handler(msg: Msg, verb: str = verb) -> None:
                await self._command(verb, msg)

            self._subs.append(await self._nc.subscribe(subjects.ctl("bots", verb), cb=handler))
        subject = subjects.ctl("bots", SET_AVERAGE)
        self._subs.append(await self._nc.subscribe(subject, cb=self._set_average))

    async def stop(self) -> None:
        """Unsubscribe."""
        for sub in self._subs:
            await sub.unsubscribe()

    async def _respond(self, msg: Msg, reply: object) -> None:
        if msg.reply:
            await msg.respond(encode(reply))

    async def _query(self, msg: Msg) -> None:
        try:
            query = decode_bots_query(msg.data or b"{}")
        except msgspec.MsgspecError as exc:
            await self._respond(msg, ErrorReply(error="bad_request", message=str(exc)))
            return
        dispatcher = self._sup.dispatcher
        if query.bot is None or query.bot in dispatcher.runners:
            reply = BotsReply(bots=dispatcher.statuses(query.bot), host=self._sup.replica)
            await self._respond(msg, reply)
            return
        await self._absent(msg, query.bot)

    async def _absent(self, msg: Msg, bot: str) -> None:
        """Answer for a bot that does not run here, if this replica is the one to."""
        if self._sup.preferred(bot) != self._sup.replica:
            return
        if claimed_by(self._sup.others, bot):
            return  # another replica's lease claims it: its owner answers
        await asyncio.sleep(ABSENT_GRACE_SECONDS)
        if bot in self._sup.dispatcher.runners:
            return
        spec = self._sup.specs.get(bot)
        if spec is None:
            error = ErrorReply(error="unknown_bot", message=f"no bot {bot!r} in KV bots")
        elif not spec.enabled:
            error = ErrorReply(error="not_running", message=f"bot {bot!r} is disabled")
        else:
            error = ErrorReply(
                error="not_running", message=f"bot {bot!r} is starting or moving; try again"
            )
        await self._respond(msg, error)

    async def _command(self, verb: str, msg: Msg) -> None:
        try:
            command = decode_bot_command(msg.data or b"{}")
        except msgspec.MsgspecError as exc:
            await self._respond(msg, ErrorReply(error="bad_request", message=str(exc)))
            return
        runner = self._sup.dispatcher.runners.get(command.bot)
        if runner is None:
            await self._absent(msg, command.bot)
            return
        owner, before = runner.spec.user, _state(runner)
        message = await self._apply(verb, command)
        runner = self._sup.dispatcher.runners.get(command.bot)
        status = runner.status(self._sup.replica) if runner is not None else None
        log.info("bot command", extra={"bot": command.bot, "verb": verb, "result": message})
        after = _state(runner) if runner is not None else {"state": "absent"}
        if verb == "start":
            after["mode"] = command.mode
        await self._audit.record(
            command.actor,
            f"bot.{verb}",
            f"bot:{command.bot}",
            user=owner,
            before=before,
            after=after,
            details={"host": self._sup.replica, "result": message},
        )
        reply = BotCommandReply(ok=True, message=message, status=status, host=self._sup.replica)
        await self._respond(msg, reply)

    async def _set_average(self, msg: Msg) -> None:
        try:
            command = decode_bot_set_average(msg.data or b"{}")
        except msgspec.MsgspecError as exc:
            await self._respond(msg, ErrorReply(error="bad_request", message=str(exc)))
            return
        dispatcher = self._sup.dispatcher
        runner = dispatcher.runners.get(command.bot)
        if runner is None:
            await self._absent(msg, command.bot)
            return
        if runner.catching_up:  # its state is still being rebuilt from its events
            error = f"bot {command.bot!r} is starting; try again"
            await self._respond(msg, ErrorReply(error="not_running", message=error))
            return
        dispatcher.sync(runner)
        try:
            result = runner.core.set_average(command.price)
        except ValueError as exc:
            error = f"bot {command.bot}: price {command.price}: {exc}"
            await self._respond(msg, ErrorReply(error="invalid", message=error))
            return
        dispatcher.save(runner)  # the snapshot first, then the journal
        actor = command.actor or "nats"
        journaled = await self._checks.journal(runner, result, actor)
        before, after = {"average": result.old_average}, {"average": result.new_average}
        await self._audit.record(
            actor,
            f"bot.{SET_AVERAGE}",
            f"bot:{command.bot}",
            user=runner.spec.user,
            before=before,
            after=after,
            details={"host": self._sup.replica, "ref": result.ref, "journaled": journaled},
        )
        message = f"average price set to {result.new_average} (was {result.old_average})"
        if not journaled:
            message += "; the ledger has not journaled it yet (see the host's log)"
        log.info("bot command", extra={"bot": command.bot, "verb": SET_AVERAGE})
        status = runner.status(self._sup.replica)
        reply = BotCommandReply(ok=True, message=message, status=status, host=self._sup.replica)
        await self._respond(msg, reply)

    async def _apply(self, verb: str, command: BotCommand) -> str:
        dispatcher = self._sup.dispatcher
        runner = dispatcher.runners[command.bot]
        before = runner.lifecycle
        if verb == "pause":
            dispatcher.pause(runner)
            return "paused" if before == "running" else f"was {before}; unchanged"
        if verb == "resume":
            dispatcher.resume(runner)
            return "running" if before != "running" else "already running"
        if verb == "stop":
            if before == "stopped":
                return "already stopped"
            dispatcher.stop(runner)
            return "stopped (orders cancelled per cancel_on_exit)"
        if verb == "flatten":
            return self._flatten(runner)
        if command.mode == "fresh":
            await self._sup.restart_fresh(command.bot)
            return "started fresh (open orders cancelled, state forgotten)"
        dispatcher.resume(runner)
        return "running" if before != "running" else "already running"

    def _flatten(self, runner: BotRunner) -> str:
        """Force exit (docs/strategies.md, "Force exit"); what it did, for the reply."""
        if runner.lifecycle == "flattening":
            return "already flattening"
        self._sup.dispatcher.flatten(runner)
        if runner.lifecycle == "flattening":
            return "flattening: open orders cancelled, the position closes at market, then stopped"
        error = runner.core.status().error
        if runner.core.state.phase == "failed" and error:
            return f"stopped; flatten failed: {error}"
        return "stopped (nothing left to close)"


def _state(runner: BotRunner) -> dict[str, object]:
    """What a command changes, for the audit log: the bot's state (``running``,
    ``paused``, ``stopped``, ``failed``, ``starting``) and run number."""
    return {"state": runner.state_name(), "run": runner.core.ctx.run}

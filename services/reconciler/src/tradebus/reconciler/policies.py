"""What the reconciler does about drift: each account's policy (seed 001, "user sold by hand").

* ``alert`` (the default): the report goes to ``recon.alert.<account>`` and
  the log; nothing else changes.
* ``adjust``: also ask execution (``exec.adjust``, the ledger's one writer)
  to write an adjustment entry per drifting asset, valued at the position's
  average cost; history is never rewritten. The next run is ok.
* ``halt``: also pause every running bot of the account (``ctl.bots.pause``,
  answered by the strategy host that runs it); the account's open orders
  stay, its other state is kept, and the other accounts keep trading. An
  operator resumes the bots (``tradebus bots resume``) once the drift is
  understood.

:class:`DriftActions` carries a policy out and says what it did (the
report's ``action``: ``alert``, ``adjusted``, ``halted:<n> bots``, or
``failed:<why>``). An ``adjust`` or ``halt`` is recorded in the audit log
(``audit.reconciler``, actor ``reconciler``): action ``drift.adjust`` /
``drift.halt``, target ``account:<id>``, user its owner, ``before`` the
drifting assets, ``after`` what was done. What it asked for is recorded by
whoever carried it out, with the same actor: execution's ``ledger.adjust``,
the strategy hosts' ``bot.pause``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client as NATS

from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.clock import LiveClock
from tradebus.common.codec import (
    decode_adjust_reply,
    decode_bot_command_reply,
    decode_bots_reply,
    encode,
)
from tradebus.common.messages import (
    AdjustRequest,
    AdjustRow,
    BotCommand,
    BotsQuery,
    DriftPolicy,
    ErrorReply,
    ReconReport,
)
from tradebus.control.audit import AuditTrail

log = logging.getLogger(__name__)

DEFAULT_KEY = "DEFAULT"
LIST_SECONDS = 1.0
"""How long replies of the strategy hosts to ``ctl.bots.list`` are collected."""
ACTOR = "reconciler"
"""The actor of what a drift policy does (audit log, ``ctl.bots.pause``)."""

OwnerLookup = Callable[[str], Awaitable[str | None]]
"""The user owning an account (None if unknown): the ``user`` of an audit event."""


def policy_for(account: str, policies: dict[str, DriftPolicy]) -> DriftPolicy:
    """The account's policy, else ``DEFAULT``'s, else ``alert``."""
    return policies.get(account, policies.get(DEFAULT_KEY, "alert"))


class DriftActions:
    """Carries out drift policies over NATS (module docstring).

    Parameters
    ----------
    nc
        NATS connection.
    timeout
        Seconds to wait for execution or a strategy host to answer.
    audit
        Publishes the audit events (default: on ``nc``'s JetStream, source
        ``reconciler``, the live clock).
    owner
        Looks up an account's user for the events (default: none, ``user`` None).
    """

    def __init__(
        self,
        nc: NATS,
        timeout: float = 5.0,
        audit: AuditTrail | None = None,
        owner: OwnerLookup | None = None,
    ) -> None:
        self._nc = nc
        self._timeout = timeout
        self._audit = audit or AuditTrail(nc.jetstream(), "reconciler", LiveClock())
        self._owner = owner

    async def act(self, report: ReconReport, policy: DriftPolicy) -> str:
        """Apply ``policy`` to a drifting ``report``; the action taken."""
        if policy not in ("adjust", "halt"):
            return "alert"
        try:
            if policy == "adjust":
                action = await self._adjust(report)
            else:
                action = await self._halt(report.account)
        except (nats.errors.Error, TimeoutError, RuntimeError) as exc:
            log.error(
                "drift policy failed",
                extra={"account": report.account, "policy": policy, "error": repr(exc)},
            )
            action = f"failed:{type(exc).__name__}"
        await self._record(report, policy, action)
        return action

    async def _record(self, report: ReconReport, policy: DriftPolicy, action: str) -> None:
        """The audit event of a policy carried out (or tried)."""
        user = None
        if self._owner is not None:
            try:
                user = await self._owner(report.account)
            except Exception as exc:  # the event still goes out, without its user
                log.warning("account owner unknown", extra={"error": repr(exc)})
        drift = {r.asset: r.drift for r in report.rows if not r.ok}
        await self._audit.record(
            ACTOR,
            f"drift.{policy}",
            f"account:{report.account}",
            user=user,
            before={"drift": drift},
            after={"action": action},
            details={"ledger_watermark": report.ledger_watermark},
        )

    async def _adjust(self, report: ReconReport) -> str:
        rows = [AdjustRow(asset=r.asset, amount=r.drift) for r in report.rows if not r.ok]
        ref = f"recon:{report.account}:{report.ts_event}"
        command = AdjustRequest(account=report.account, ref=ref, rows=rows)
        raw = await request(self._nc, subjects.EXEC_ADJUST, command, timeout=self._timeout)
        reply = decode_adjust_reply(raw)
        if isinstance(reply, ErrorReply):
            raise RuntimeError(f"{reply.error}: {reply.message}")
        return "adjusted"

    async def _halt(self, account: str) -> str:
        paused = 0
        for bot in await self._running_bots(account):
            raw = await self._nc.request(
                subjects.ctl("bots", "pause"),
                encode(BotCommand(bot=bot, actor=ACTOR)),
                timeout=self._timeout,
            )
            reply = decode_bot_command_reply(raw.data)
            if isinstance(reply, ErrorReply):
                log.error("could not pause", extra={"bot": bot, "error": reply.message})
                continue
            paused += 1
            log.warning("bot paused: its account drifted", extra={"bot": bot, "account": account})
        return f"halted:{paused} bots"

    async def _running_bots(self, account: str) -> list[str]:
        """Running bots of ``account``, from every strategy host's ``ctl.bots.list`` reply."""
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox)
        bots: list[str] = []
        try:
            await self._nc.publish(subjects.ctl("bots", "list"), encode(BotsQuery()), reply=inbox)
            deadline = asyncio.get_running_loop().time() + LIST_SECONDS
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    msg = await sub.next_msg(timeout=left)
                except (nats.errors.TimeoutError, TimeoutError):
                    break
                if not msg.data:  # no strategy host is up
                    break
                reply = decode_bots_reply(msg.data)
                if isinstance(reply, ErrorReply):
                    continue
                bots += [s.bot for s in reply.bots if s.account == account and s.state == "running"]
        finally:
            await sub.unsubscribe()
        return sorted(set(bots))

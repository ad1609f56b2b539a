"""The kill switch: stop an account, or every account, from trading at once.

Engaging a switch (``ctl.killswitch``, :class:`KillSwitchCommand`) cancels
every open order of the accounts it covers and refuses their new orders with
``kill_switch`` until it is released; cancels still pass, so bots can clean
up. There is one global switch and one per account, independent of each
other. Engaged switches are kept in the KV bucket ``killswitch`` (``global``,
``account.<id>`` -> reason), so a restarted execution comes back with them
engaged.

:class:`~tradebus.engine.killswitch.KillSwitch` is the pure state (in the
execution core); :class:`KillSwitchControl` is the shell that answers
``ctl.killswitch``, persists the switches and asks the engine to cancel.

Each engage and release is recorded in the audit log (``audit.execution``)
before it is answered: action ``killswitch.engage`` / ``killswitch.release``,
target ``account:<id>`` (user: its owner) or ``global`` (no user), actor the
command's ``actor``, ``before``/``after`` the switch's reason (None while
released) and, after an engage, the orders it canceled.
"""

from __future__ import annotations

import logging
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError

from tradebus.common import subjects
from tradebus.common.bus import kv_live_entries
from tradebus.common.clock import Clock
from tradebus.common.codec import decode_killswitch_command
from tradebus.common.messages import KillSwitchCommand, KillSwitchReply
from tradebus.control.audit import AuditTrail
from tradebus.execution.replies import answer

log = logging.getLogger(__name__)

GLOBAL_KEY = "global"


def account_key(account: str) -> str:
    """``account.<account>``: the KV key of one account's switch."""
    return f"account.{subjects.token(account, 'account')}"


class KillSwitchControl:
    """Answers ``ctl.killswitch`` for execution (module docstring).

    Parameters
    ----------
    engine
        The execution engine: its ``kill`` (:class:`KillSwitch`), ``lock``,
        ``accounts`` and ``cancel_open_orders(account, cancel_id)``.
    metrics
        Execution metrics (``killswitch_engaged`` gauge).
    clock
        Stamps the cancel ids and the audit events.
    audit
        Publishes the audit events (default: built by :meth:`start` on its
        JetStream context, source ``execution``).
    quiet_unknown
        Leave a command naming an account this process does not have unanswered
        (another execution shard owns it: :mod:`.shard`).
    """

    def __init__(
        self,
        engine: Any,
        metrics: Any,
        clock: Clock,
        audit: AuditTrail | None = None,
        quiet_unknown: bool = False,
    ) -> None:
        self._quiet_unknown = quiet_unknown
        self._engine = engine
        self._metrics = metrics
        self._clock = clock
        self._audit = audit
        self._kv: Any = None
        self._sub: Any = None

    async def start(self, nc: Any, js: Any) -> None:
        """Load the engaged switches from KV, then answer ``ctl.killswitch``."""
        if self._audit is None:
            self._audit = AuditTrail(js, "execution", self._clock)
        try:
            self._kv = await js.key_value(subjects.KV_KILLSWITCH)
        except BucketNotFoundError:
            self._kv = await js.create_key_value(
                config=KeyValueConfig(bucket=subjects.KV_KILLSWITCH, history=5)
            )
        # kv_live_entries, not kv.keys(): nats-py's listing may end before the first key
        # arrives on a busy machine, and an engaged switch would be forgotten at restart
        for key, value in sorted((await kv_live_entries(self._kv, ">")).items()):
            reason = value.decode()
            account = None if key == GLOBAL_KEY else key.removeprefix("account.")
            self._apply(account, reason)
            log.warning(
                "kill switch engaged since before this start",
                extra={"alert": "kill_switch", "scope": account or "global", "reason": reason},
            )
        self._sub = await nc.subscribe(subjects.CTL_KILLSWITCH, cb=self._on_request)

    async def stop(self) -> None:
        """Stop answering."""
        if self._sub is not None:
            await self._sub.unsubscribe()

    def _apply(self, account: str | None, reason: str | None) -> None:
        self._engine.kill.set(account, reason)
        scope = account or "global"
        self._metrics.killswitch_engaged.labels(scope=scope).set(0 if reason is None else 1)

    async def _on_request(self, msg: Msg) -> None:
        await answer(
            msg, lambda data: self.handle(decode_killswitch_command(data)), self._quiet_unknown
        )

    async def handle(self, command: KillSwitchCommand) -> KillSwitchReply:
        """Carry out one command; the state after it.

        Raises
        ------
        KeyError
            If ``command.account`` is not a configured account.
        """
        account = command.account
        if account is not None and account not in self._engine.accounts:
            raise KeyError(account)
        if command.action == "status":
            return self._engine.kill.reply()
        key = GLOBAL_KEY if account is None else account_key(account)
        before = self._reason(account)
        if command.action == "release":
            await self._kv.delete(key)
            self._apply(account, None)
            log.warning("kill switch released", extra={"scope": account or "global"})
            await self._record(command, before, {"reason": None})
            return self._engine.kill.reply()
        reason = command.reason.strip() or "engaged by an operator"
        await self._kv.put(key, reason.encode())  # first: a crash now still stops trading
        async with self._engine.lock:
            self._apply(account, reason)
            cancel_id = f"killswitch:{self._clock.now_ns()}"
            targets = sorted(self._engine.accounts) if account is None else [account]
            canceled = 0
            for target in targets:
                canceled += await self._engine.cancel_open_orders(target, cancel_id)
        log.error(
            "kill switch engaged: open orders canceled, new orders refused",
            extra={
                "alert": "kill_switch",
                "scope": account or "global",
                "reason": reason,
                "canceled": canceled,
            },
        )
        await self._record(command, before, {"reason": reason, "canceled": canceled})
        return self._engine.kill.reply(canceled)

    def _reason(self, account: str | None) -> str | None:
        """Why the switch of ``account`` (None: the global one) is engaged; None if not."""
        kill = self._engine.kill
        return kill.global_reason if account is None else kill.accounts.get(account)

    async def _record(
        self, command: KillSwitchCommand, before: str | None, after: dict[str, Any]
    ) -> None:
        """The audit event of an engage or release."""
        if self._audit is None:  # not started: nothing answers commands yet
            return
        account = command.account
        spec = None if account is None else self._engine.accounts.get(account)
        await self._audit.record(
            command.actor,
            f"killswitch.{command.action}",
            "global" if account is None else f"account:{account}",
            user=None if spec is None else spec.user,
            before={"reason": before},
            after=after,
        )

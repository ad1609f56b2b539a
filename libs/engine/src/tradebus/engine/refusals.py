"""Intents answered without a venue order: refusals, halted accounts, venue outages.

:class:`Refusals` records a refused intent in the rejected-intents table and
publishes :class:`OrderRejected`; it also holds the accounts halted by a
``configuration`` error of their venue (bad key, permissions), whose intents
are refused with ``account_halted`` while the other accounts keep trading.

A venue call of an intent that failed without an answer
(:class:`VenueUnavailable`) goes through :meth:`Refusals.unavailable`:
``configuration`` halts the account, anything else raises
:class:`RetryLater` so the intent is not acked and comes again.
"""

from __future__ import annotations

import logging

from tradebus.common.clock import Clock
from tradebus.common.ids import AccountId, IntentId
from tradebus.common.order_status import OrderStatus
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.events import IntentContext, OrderEvents
from tradebus.engine.metrics import EngineMetrics
from tradebus.engine.orders import RetryLater
from tradebus.engine.risk import Refusal
from tradebus.engine.store import OrderStore
from tradebus.engine.venue import VenueUnavailable
from tradebus.ledger.rows import Rejection

log = logging.getLogger(__name__)


class Refusals:
    """Refuses intents and halts accounts (see the module docstring).

    Parameters
    ----------
    store
        Where orders and refusals are kept (:class:`~tradebus.engine.store.OrderStore`).
    accounts
        The configured accounts by id.
    events
        Publishes order events.
    clock
        Stamps row times.
    metrics
        Execution metrics.
    """

    def __init__(
        self,
        store: OrderStore,
        accounts: dict[AccountId, AccountSpec],
        events: OrderEvents,
        clock: Clock,
        metrics: EngineMetrics,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._events = events
        self._clock = clock
        self._metrics = metrics
        self.halted: dict[AccountId, str] = {}  # account -> why (the alert's reason)

    async def refuse(
        self,
        ctx: IntentContext,
        intent_id: IntentId | None,
        account: AccountId | None,
        refusal: Refusal,
    ) -> None:
        """Record and publish a refusal of an intent that never reached a venue."""
        now = self._clock.now_ns()
        self._metrics.rejected(refusal.reason, ctx.user)
        log.info("intent refused", extra={"subject": ctx.subject, "reason": refusal.reason})
        await self._store.record_rejection(
            Rejection(
                stream=ctx.stream or None,
                stream_seq=ctx.stream_seq,
                subject=ctx.subject,
                user_id=ctx.user or None,
                source=ctx.source or None,
                intent_id=intent_id,
                account_id=account,
                reason=refusal.reason,
                message=refusal.message,
                payload=ctx.payload,
                ts=now,
            )
        )
        await self._events.refused(ctx, intent_id, account, refusal.reason, refusal.message)

    async def halt(self, account: AccountSpec, reason: str) -> None:
        """Stop trading ``account`` (a configuration error); alert once.

        The alert is an error log, the gauge ``tradebus_execution_account_halted``
        and :class:`AccountHalted` on ``exec.alert.<user>.<account>``.
        """
        if account.id in self.halted:
            return
        self.halted[account.id] = reason
        message = (
            f"account {account.id} on {account.venue} is halted: the venue refuses its"
            f" configuration ({reason}). Check its API key, secret and permissions, then"
            " restart execution; its intents are refused with account_halted until then."
        )
        log.error(
            "account halted: the venue refuses its configuration (keys, permissions)",
            extra={"alert": "account_halted", "account": account.id, "reason": reason},
        )
        self._metrics.account_halted.labels(account=account.id, reason=reason).set(1)
        await self._events.account_halted(account.user, account.id, account.venue, reason, message)

    async def refuse_halted(
        self, ctx: IntentContext, intent_id: IntentId, account: AccountId
    ) -> None:
        """Refuse an intent of a halted account with ``account_halted``."""
        refusal = Refusal("account_halted", f"account {account} is halted: {self.halted[account]}")
        await self.refuse(ctx, intent_id, account, refusal)

    async def unavailable(
        self, ctx: IntentContext, intent_id: IntentId, account: AccountId, exc: VenueUnavailable
    ) -> None:
        """A venue call of an intent failed without an answer (see the module docstring)."""
        if exc.error.kind != "configuration":
            raise RetryLater(f"{account}: {exc.error.kind}: {exc.error.reason}") from None
        await self.halt(self._accounts[account], exc.error.reason)
        row = await self._store.get_order(ctx.user, intent_id)
        if row is not None and row.account_id == account and row.status == "new":
            await self._store.set_order_status(
                row.user_id,
                row.intent_id,
                OrderStatus.REJECTED,
                self._clock.now_ns(),
                reason="account_halted",
            )
            self._metrics.order_status("rejected", row.user_id)
            await self._events.rejected(row, "account_halted", self.halted[account])
            return
        await self.refuse_halted(ctx, intent_id, account)

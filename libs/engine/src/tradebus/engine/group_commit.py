"""Group commit: a batch of ``PlaceOrder`` intents placed as one group.

:meth:`ExecutionEngine.handle_intents
<tradebus.engine.core.ExecutionEngine.handle_intents>` hands its batch
(intents admitted at the door, taken fairly from every user's lanes:
:mod:`.fair_queue`) to :meth:`GroupCommit.handle`, which processes the batch's
leading ``PlaceOrder`` intents of paper accounts as one group, each step once for all
of them, with the same guarantees as one intent at a time (the engine's
module docstring):

1. each is vetted (a pure function of the state: nothing is counted yet);
2. one statement finds the rows and refusals the ledger already holds for
   their intent ids, and inserts the rows of the vetted intents that have
   neither (one commit, before any venue call). A hit is a redelivery: the
   group stops before it, and it is handled alone (resumed from its row, or
   refused the same way again); rows inserted for the intents after it are
   resumed as theirs when they come again. A value the ledger cannot hold
   fails the statement, and the group is then handled one intent at a time;
3. the venue calls, in stream order; their answers recorded in one statement;
4. every event (accepted, rejected, refused) published, their JetStream acks
   awaited together before this returns (the caller acks after that), or,
   with :meth:`GroupCommit.handle_detached`, handed to the caller, who acks the
   intents once they have come while the engine goes on with the next group
   (pipelined: the next group's lookup and insert overlap this group's acks);
5. late fills booked, as after a single intent.

An intent of a live account, a cancel, a refusal at the door, or an intent
id already in the group ends it. So does a second intent of an account whose
vetting depends on its previous order (a ``clamp_to_free`` sell, or limits
on open orders, daily loss or order rate): such an account has one intent
per group, so each one is vetted against the state its predecessors left,
exactly as one at a time. A bot of a strategy group with a ``total_capital`` also
has one intent per group: its buys are checked against what its group's orders
commit. (An order that fills as it is placed, from the
paper venue's recent events, changes the venue's balances before the next
place of the group, in stream order, as one at a time; its fill is booked
after the group's orders.)

When no group can be formed, the first message is handled alone by the
engine. Every method runs under the engine's lock.

The module also holds the helpers the engine's single-intent path shares with
the group: :func:`invalid` (the refusal of values the ledger or the venue
cannot take) and :func:`new_order` (the order row of a vetted intent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeGuard

from tradebus.common.clock import Clock
from tradebus.common.ids import AccountId
from tradebus.common.messages import PlaceOrder
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.events import IntentContext, OrderEvents, await_acks
from tradebus.engine.intake import Admitted, Refused
from tradebus.engine.metrics import EngineMetrics
from tradebus.engine.orders import VenueOrders
from tradebus.engine.refusals import Refusals
from tradebus.engine.risk import Refusal
from tradebus.engine.store import OrderStore
from tradebus.engine.vetting import Vetting
from tradebus.ledger.errors import LEDGER_REFUSED_VALUE
from tradebus.ledger.rows import IntentKey, NewOrder, OrderRow

INVALID_VALUE_ERRORS: tuple[type[Exception], ...] = (
    *LEDGER_REFUSED_VALUE,
    ValueError,
    ArithmeticError,
)
"""A value the ledger or the venue cannot take (a 10**400 quantity): the intent is invalid
(:func:`invalid`), never retried."""

Batch = Sequence[Admitted | Refused]
"""Intents admitted (or refused) at the door, in the order they are to be handled
(:meth:`tradebus.execution.fair_queue.FairQueue.batch`)."""


class GroupCommit:
    """Places the leading intents of a batch as one group (see the module docstring).

    Parameters
    ----------
    store
        Where orders and refusals are kept (:class:`~tradebus.engine.store.OrderStore`).
    accounts
        Account specs by id.
    vetting
        Vets intents and counts placed orders.
    orders
        Sends persisted orders to their venues.
    refusals
        Refuses intents.
    events
        Publishes order events (deferred, then flushed, for a group).
    clock
        Stamps row times and measures intents.
    metrics
        Execution metrics.
    waiting
        ``account -> True`` if its intents may not be placed now (halted, or
        its venue has not answered since start).
    handle
        Handles one admitted (or refused) message alone, as the engine does.
    record_late_fills
        Books an account's fills that arrived before their orders' answers.
    """

    def __init__(
        self,
        store: OrderStore,
        accounts: dict[AccountId, AccountSpec],
        vetting: Vetting,
        orders: VenueOrders,
        refusals: Refusals,
        events: OrderEvents,
        clock: Clock,
        metrics: EngineMetrics,
        waiting: Callable[[AccountId], bool],
        handle: Callable[[Admitted | Refused], Awaitable[None]],
        record_late_fills: Callable[[AccountId], Awaitable[None]],
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._vetting = vetting
        self._orders = orders
        self._refusals = refusals
        self._events = events
        self._clock = clock
        self._metrics = metrics
        self._waiting = waiting
        self._handle = handle
        self._record_late_fills = record_late_fills

    async def handle(self, batch: Batch) -> int:
        """Process the first messages of ``batch``; how many (at least one).

        The leading intents that can share a group are placed together;
        otherwise (a group of one, too) the first message is handled alone.
        """
        done, acks = await self.handle_detached(batch)
        await await_acks(acks)
        return done

    async def handle_detached(self, batch: Batch) -> tuple[int, list[asyncio.Future[Any]]]:
        """:meth:`handle`, without awaiting the JetStream acks of the group's events: how
        many messages were processed, and the futures of those acks (for
        :func:`~tradebus.engine.events.await_acks`; the messages may be acked only
        after it returns). A message handled alone has its events acked already.
        """
        group, first = self._group(batch)
        if len(group) < 2:
            await self._handle(first)
            return 1, []
        return await self._place_group(group)

    def _group(self, batch: Batch) -> tuple[list[Admitted], Admitted | Refused]:
        """The leading intents of ``batch`` that can be placed as one group, and the first
        message admitted (what to handle alone when the group is empty)."""
        group: list[Admitted] = []
        keys: set[IntentKey] = set()
        shared: dict[AccountId, bool] = {}  # account in the group -> may it take more intents
        first: Admitted | Refused | None = None
        for door in batch:
            if first is None:
                first = door
            if not isinstance(door, Admitted) or not isinstance(door.intent, PlaceOrder):
                break
            spec, intent = door.account, door.intent
            if (
                spec.live  # a venue that may not answer: one intent at a time
                or self._waiting(spec.id)
                or self._orders.has_unknown(spec.id)
            ):
                break
            key = (door.ctx.user, intent.intent_id)
            if key in keys:
                break  # the same intent again: it must see the first one's row
            alone = _needs_its_own_state(spec, intent) or self._vetting.capped(
                spec, door.ctx.source
            )
            if spec.id in shared and (alone or not shared[spec.id]):
                break
            shared[spec.id] = not alone and shared.get(spec.id, True)
            keys.add(key)
            group.append(door)
        assert first is not None, "an empty batch"
        return group, first

    async def _place_group(self, group: list[Admitted]) -> tuple[int, list[asyncio.Future[Any]]]:
        """Place a group of new intents with one round trip per step; how many were handled,
        and the futures of their events' JetStream acks (not awaited here).

        Vetting, then the lookup of earlier rows and refusals and the insert
        of the new rows (one statement, committed before any venue call), the
        venue calls, their answers (one update), then every event, their
        JetStream acks awaited together (module docstring).
        """
        started = self._clock.now_ns()
        plan: list[tuple[Admitted, PlaceOrder | Refusal]] = []
        for door in group:
            try:
                vetted = await self._vetting.vet(door.account, door.intent, door.ctx.source)  # type: ignore[arg-type]
            except (ValueError, ArithmeticError) as exc:
                vetted = invalid(exc)
            plan.append((door, vetted))
        keys = [(d.ctx.user, d.intent.intent_id) for d in group]
        try:
            found, rows = await self._store.find_or_insert_orders(
                keys, [new_order(d.ctx, v, self._clock.now_ns()) for d, v in plan if _placing(v)]
            )
        except INVALID_VALUE_ERRORS:
            # a value the ledger cannot hold; nothing was inserted: one at a time finds which
            for door in group:
                await self._handle(door)
            return len(group), []
        if found:  # a redelivery, or an intent refused before: on its own, in stream order
            first = next(i for i, key in enumerate(keys) if key in found)
            if first == 0:
                await self._handle(group[0])
                return 1, []
            # the rows inserted for the intents after it are resumed when they come again
            group, plan = group[:first], plan[:first]
        sends: list[tuple[OrderRow, int]] = []
        conflicts: list[Admitted] = []
        for door, vetted in plan:
            if isinstance(vetted, PlaceOrder):
                row = rows.get((door.ctx.user, vetted.intent_id))
                if row is None:
                    conflicts.append(door)  # inserted meanwhile by someone else: resume it
                    continue
                self._vetting.on_place(door.account.id)
                sends.append((row, vetted.ts_init))
        self._events.defer()
        try:
            failed = await self._orders.send_group(sends)
            for door, vetted in plan:
                ctx, intent_id = door.ctx, door.intent.intent_id
                refusal = vetted if isinstance(vetted, Refusal) else None
                if (ctx.user, intent_id) in failed:
                    refusal = invalid(failed[(ctx.user, intent_id)])
                if refusal is not None:
                    await self._refusals.refuse(ctx, intent_id, door.intent.account, refusal)
        except BaseException:
            self._events.discard()
            raise
        acks = self._events.detach()
        try:
            for account in {door.account.id for door in group}:
                await self._record_late_fills(account)
            for door in conflicts:
                await self._handle(door)
        except BaseException:
            for future in acks:  # the batch is tried again: its events go out again
                future.add_done_callback(_consume_result)
            raise
        self._metrics.intents_received("PlaceOrder", len(group))
        seconds = (self._clock.now_ns() - started) / 1e9
        for _ in group:
            self._metrics.intent_seconds.observe(seconds)
        return len(group), acks


def _consume_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "exception was never retrieved" warning


def invalid(exc: Exception) -> Refusal:
    """The refusal of an intent holding values the ledger or the venue cannot take."""
    return Refusal("invalid_intent", f"{type(exc).__name__}: {exc}"[:500])


def new_order(ctx: IntentContext, intent: PlaceOrder, now_ns: int) -> NewOrder:
    """The order row of a vetted intent, before the venue is asked."""
    return NewOrder(
        intent_id=intent.intent_id,
        account_id=intent.account,
        user_id=ctx.user,
        source=ctx.source,
        symbol=intent.symbol,
        side=intent.side,
        order_type=intent.order_type,
        price=intent.price,
        qty=intent.qty,
        trigger_ts=intent.trigger_ts,
        stream_seq=ctx.stream_seq,
        ts=now_ns,
        time_in_force=intent.time_in_force,
        reduce_only=intent.reduce_only,
    )


def _placing(vetted: PlaceOrder | Refusal) -> TypeGuard[PlaceOrder]:
    return isinstance(vetted, PlaceOrder)


def _needs_its_own_state(spec: AccountSpec, intent: PlaceOrder) -> bool:
    """True if vetting or placing ``intent`` depends on what the account's previous order
    did (so no other intent of the account may share its group).

    A ``clamp_to_free`` sell is sized by the venue's free balance; the
    account's open-order count, daily P&L and order rate move with every
    order placed or filled.
    """
    limits = spec.risk
    return (
        intent.clamp_to_free
        or limits.max_open_orders is not None
        or limits.max_daily_loss is not None
        or limits.max_orders_per_second is not None
    )

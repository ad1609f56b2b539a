"""The execution engine: intents in, venue orders and ledger rows out, exactly once.

The protocol (DESIGN.md, "Execution: at-least-once in, exactly-once out"):

1. Decode the intent; a bad payload, an unknown account or a user that does
   not own the account is answered with :class:`OrderRejected`, kept in the
   rejected-intents table, and never raises.
2. Vet it (:mod:`.vetting`): the kill switch, the order's shape and the
   account's limits (pure, :mod:`.risk`); size a ``clamp_to_free`` sell by
   the venue's free balance (:mod:`.sizing`).
3. Insert the order row keyed by ``(user, intent_id)`` with its client order
   id, committed before the venue is asked. A row that exists means a
   redelivery: resume from its state, never place twice.
4. Ask the venue; record its answer; publish the event.
5. The caller acks the JetStream message only after this returns.

One intent at a time (:meth:`ExecutionEngine.handle_intent`), or a fetch batch's leading
intents as one group with the same guarantees (:meth:`ExecutionEngine.handle_intents`;
"group commit", :mod:`.group_commit`).

Fills are keyed by ``(venue, account, trade_id)``; a fill and its journal entries are
one transaction and a duplicate is a no-op.

A live venue (:class:`~tradebus.execution.ccxt_venue.CcxtVenue`) may also
fail without an answer (:class:`VenueUnavailable`):

* ``unknown_outcome`` on a place: the row is marked ``unknown`` and the
  intent is not acked (:class:`RetryLater`); before anything else is sent for
  that account, :meth:`ExecutionEngine.resolve_unknown` asks the venue for
  the client id: found -> ``accepted``, not found -> sent now, once. A
  redelivered intent resolves the same way (``_resume``);
* ``configuration`` (bad key, permissions): the account is halted; its
  intents are refused with ``account_halted``, one error is logged, the
  other accounts keep trading;
* ``transient`` (retries used up): the intent is not acked and comes again.

All work runs under one lock, so the venue's state and the ledger move
together: a balances snapshot taken under the lock names the last journal
entry it reflects (its watermark), and a ``clamp_to_free`` sell is sized and
placed with no other order or fill of the account in between.

This module holds :class:`ExecutionEngine` (intake, placing, cancels, fills,
balances); it delegates to :class:`~tradebus.engine.orders.VenueOrders`
(sending persisted orders, open and ``unknown`` orders, cancels at the venue),
:class:`~tradebus.engine.refusals.Refusals` (refused intents, halted
accounts, venue outages) and :class:`~tradebus.engine.group_commit.GroupCommit`
(a fetch batch's intents placed as one group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from tradebus.common.clock import Clock
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import (
    AccountBalances,
    AssetBalance,
    CancelAll,
    CancelOrder,
    PlaceOrder,
    PositionRisk,
)
from tradebus.common.money import ZERO
from tradebus.engine.accounts import AccountSpec, CancelAtStart
from tradebus.engine.events import EmitEvent, EmitNowait, IntentContext, OrderEvents
from tradebus.engine.fills import FillBooker
from tradebus.engine.group_commit import INVALID_VALUE_ERRORS, GroupCommit, invalid, new_order
from tradebus.engine.intake import Admitted, Refused, admit
from tradebus.engine.metrics import EngineMetrics
from tradebus.engine.orders import TRANSIENT_ERRORS, RetryLater, VenueOrders
from tradebus.engine.refusals import Refusals
from tradebus.engine.risk import Refusal, margin_ratio
from tradebus.engine.sizing import is_same_size
from tradebus.engine.store import OrderStore
from tradebus.engine.venue import (
    Venue,
    VenueError,
    VenueFill,
    VenueOpenOrder,
    VenueUnavailable,
)
from tradebus.engine.vetting import Vetting
from tradebus.ledger.rows import OrderRow

__all__ = ["TRANSIENT_ERRORS", "ExecutionEngine", "RetryLater"]

log = logging.getLogger(__name__)


class ExecutionEngine:
    """Turns intents into venue orders and venue fills into ledger entries and events.

    Parameters
    ----------
    store
        Where orders, refusals and fills are kept (:class:`~tradebus.engine.store.OrderStore`:
        the Postgres ledger in the service, :class:`~tradebus.engine.store.MemoryStore`
        in a backtest).
    accounts
        Account specs by id (owner, limits).
    venues
        One venue per account id.
    catalog
        Market specifications.
    emit
        Publishes order events (``exec.evt.<user>.<source>``).
    clock
        Stamps ``ts_event`` of events and row times.
    metrics
        Execution metrics.
    last_price
        ``(market_venue, symbol) -> last trade price`` for notional limits of market orders.
    emit_nowait
        Publishes an event without awaiting its ack (a group's events' acks are
        awaited together); by default each runs ``emit`` as its own task.
    """

    def __init__(
        self,
        store: OrderStore,
        accounts: dict[AccountId, AccountSpec],
        venues: dict[AccountId, Venue],
        catalog: MarketCatalog,
        emit: EmitEvent,
        clock: Clock,
        metrics: EngineMetrics,
        last_price: Callable[[str, str], Decimal | None] = lambda venue, symbol: None,
        emit_nowait: EmitNowait | None = None,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._retired: dict[AccountId, AccountSpec] = {}
        self._venues = venues
        self._catalog = catalog
        self._events = OrderEvents(emit, clock, emit_nowait)
        self._clock = clock
        self._metrics = metrics
        self._last_price = last_price
        self._orders = VenueOrders(store, list(accounts), venues, self._events, clock, metrics)
        self._refusals = Refusals(store, accounts, self._events, clock, metrics)
        self.lock = asyncio.Lock()
        self.connecting: set[AccountId] = set()
        """Live accounts whose venue has not answered since start: their intents wait."""
        self._vetting = Vetting(
            catalog, venues, self._orders.open_count, last_price, clock, store.open_orders
        )
        self.kill = self._vetting.kill
        self.risk = self._vetting.risk
        self.groups = self._vetting.groups
        """Which bot is in which capped strategy group (:mod:`.group_capital`)."""
        self._fills = FillBooker(
            store,
            accounts,
            catalog,
            self._vetting,
            self._orders,
            self._events,
            metrics,
            clock,
            retired=self._retired,
        )
        self._group_commit = GroupCommit(
            store,
            accounts,
            self._vetting,
            self._orders,
            self._refusals,
            self._events,
            clock,
            metrics,
            waiting=lambda account: account in self.halted or account in self.connecting,
            handle=self._handle,
            record_late_fills=self._record_late_fills,
        )

    @property
    def halted(self) -> dict[AccountId, str]:
        """Halted accounts: account -> why (the alert's reason)."""
        return self._refusals.halted

    @property
    def accounts(self) -> dict[AccountId, AccountSpec]:
        """The configured accounts by id."""
        return self._accounts

    async def start(self) -> None:
        """Load the open orders of every account, the risk state (from every booked fill)
        and the ledger's journal watermark."""
        for account in self._accounts:
            await self._orders.load(account)
        for f in await self._store.fill_history():
            spec = self._accounts.get(f.account_id)
            if spec is not None:
                facts = (f.side, f.qty, f.price, f.fee, f.fee_asset)
                self._vetting.on_fill(spec, f.symbol, facts, f.recorded_ns, f.source)  # type: ignore[arg-type]
        self._fills.watermark = await self._store.last_journal_id()
        self._metrics.open_orders.set(self._orders.open_count())

    # -------------------------------------------------------- accounts at run time
    async def add_account(self, spec: AccountSpec, venue: Venue) -> None:
        """Start trading ``spec`` on ``venue`` without a restart. Call under :attr:`lock`.

        Its open orders are loaded from the store and its risk state rebuilt
        from its booked fills (as :meth:`start` does for every account); only
        then is it in :attr:`accounts`, so an intent is admitted for it once
        everything it needs is there.

        Raises
        ------
        ValueError
            If an account with that id is loaded already.
        """
        if spec.id in self._accounts:
            raise ValueError(f"account {spec.id} is loaded already")
        self._retired.pop(spec.id, None)
        self._venues[spec.id] = venue
        self._orders.add_account(spec.id)
        await self._orders.load(spec.id)
        for f in await self._store.fill_history():
            if f.account_id == spec.id:
                facts = (f.side, f.qty, f.price, f.fee, f.fee_asset)
                self._vetting.on_fill(spec, f.symbol, facts, f.recorded_ns, f.source)  # type: ignore[arg-type]
        self._accounts[spec.id] = spec
        self._metrics.open_orders.set(self._orders.open_count())

    def replace_spec(self, spec: AccountSpec) -> AccountSpec:
        """Use ``spec`` for the loaded account of the same id from now on (its limits,
        fees as the engine sees them); the spec it replaces. Call under :attr:`lock`.

        Raises
        ------
        KeyError
            If no such account is loaded.
        """
        before = self._accounts[spec.id]
        self._accounts[spec.id] = spec
        return before

    def remove_account(self, account: AccountId) -> AccountSpec:
        """Stop trading ``account`` without a restart; its spec. Call under :attr:`lock`,
        after :meth:`cancel_open_orders`.

        From now on its intents are refused as ``unknown_account`` (also those
        admitted before and not handled yet), exactly as those of an account
        that never existed; its halt, connecting state and kill switch are
        forgotten. A fill of it that is still reported is booked all the same
        (the money moved at the venue).

        Raises
        ------
        KeyError
            If no such account is loaded.
        """
        spec = self._accounts.pop(account)
        self._retired[account] = spec
        self._orders.remove_account(account)
        self._venues.pop(account, None)
        self._refusals.halted.pop(account, None)
        self.connecting.discard(account)
        self.kill.set(account, None)
        self._vetting.risk.forget(account)
        self._metrics.open_orders.set(self._orders.open_count())
        return spec

    def _current(self, door: Admitted | Refused) -> Admitted | Refused:
        """``door`` as the loaded accounts say now: an intent admitted for an account
        unloaded since is refused ``unknown_account``; one admitted with a replaced spec
        gets the current one."""
        if not isinstance(door, Admitted):
            return door
        spec = self._accounts.get(door.account.id)
        if spec is door.account:
            return door
        if spec is None:
            account = door.intent.account
            refusal = Refusal("unknown_account", f"no account {account!r}")
            return Refused(
                ctx=door.ctx, intent_id=door.intent.intent_id, account=account, refusal=refusal
            )
        return Admitted(ctx=door.ctx, intent=door.intent, account=spec)

    # ------------------------------------------------------------------ intake
    async def handle_intent(self, subject: str, payload: bytes, stream_seq: int | None) -> None:
        """Process one message of ``INTENTS``. Raises only on infrastructure errors."""
        async with self.lock:
            await self._handle(admit(subject, payload, stream_seq, self._accounts))

    async def handle_intents(self, batch: Sequence[Admitted | Refused]) -> int:
        """Process the first intents of ``batch`` (admitted or refused at the door by
        :func:`~tradebus.engine.intake.admit`, in the order to handle them:
        :meth:`~tradebus.execution.fair_queue.FairQueue.batch`); returns how many
        (at least one).

        Leading ``PlaceOrder`` intents that can share a group (:mod:`.group_commit`)
        are processed together; otherwise the first intent alone, as
        :meth:`handle_intent`. The caller acks those messages after this
        returns and hands the rest in again. Raises :class:`RetryLater` when
        the first intent's account must wait (its venue), another of
        :data:`TRANSIENT_ERRORS` when the ledger or the bus is down: then none
        of them may be acked.
        """
        async with self.lock:
            return await self._group_commit.handle([self._current(d) for d in batch])

    async def handle_intents_detached(
        self, batch: Sequence[Admitted | Refused]
    ) -> tuple[int, list[asyncio.Future[Any]]]:
        """:meth:`handle_intents` up to the publish of the events: how many intents were
        processed, and the futures of their events' JetStream acks, awaited by the
        caller (:func:`~tradebus.engine.events.await_acks`) outside the engine's
        lock, so the next batch's ledger round trips overlap them. The intents
        may be acked only after that returns; if it raises (one of
        :data:`TRANSIENT_ERRORS`), they must be handed in again (their rows are
        committed: they resume, and their events go out again under the same
        message ids). Raises as :meth:`handle_intents`.
        """
        async with self.lock:
            return await self._group_commit.handle_detached([self._current(d) for d in batch])

    async def dead_letter(self, door: Admitted | Refused, why: str) -> bool:
        """Give up on an intent that could not be handled (``why``): refuse it with
        ``dead_letter`` (a row and an ``OrderRejected``), unless the ledger already holds
        an order or a refusal for it (then that answer stands). True if refused now.

        Raises only on infrastructure errors (:data:`TRANSIENT_ERRORS`).
        """
        async with self.lock:
            ctx = door.ctx
            intent_id = door.intent.intent_id if isinstance(door, Admitted) else door.intent_id
            account = door.intent.account if isinstance(door, Admitted) else door.account
            if intent_id is not None and ctx.user:
                key = (ctx.user, intent_id)
                if (await self._store.find_intents([key])).get(key) is not None:
                    log.error(
                        "dead letter already answered in the ledger",
                        extra={"user": ctx.user, "intent_id": intent_id, "why": why},
                    )
                    return False
            refusal = Refusal("dead_letter", f"execution gave up on this intent: {why}"[:500])
            await self._refusals.refuse(ctx, intent_id, account, refusal)
            return True

    async def _handle(self, door: Admitted | Refused) -> None:
        started = self._clock.now_ns()
        if isinstance(door, Refused):
            await self._refusals.refuse(door.ctx, door.intent_id, door.account, door.refusal)
            return
        ctx, intent, spec = door.ctx, door.intent, door.account
        self._metrics.intents_received(type(intent).__name__)
        if spec.id in self.halted:
            await self._refusals.refuse_halted(ctx, intent.intent_id, spec.id)
            return
        if spec.id in self.connecting:
            raise RetryLater(f"{spec.id}: its venue has not answered since start")
        try:
            match intent:
                case PlaceOrder():
                    await self._place(ctx, spec, intent)
                case CancelOrder():
                    await self._cancel_one(ctx, intent)
                case CancelAll():
                    await self._cancel_all(ctx, intent)
        except VenueUnavailable as exc:
            await self._refusals.unavailable(ctx, intent.intent_id, spec.id, exc)
        except TRANSIENT_ERRORS:
            raise
        except INVALID_VALUE_ERRORS as exc:
            # values the ledger cannot hold (a 10**400 quantity): the intent is bad
            await self._refusals.refuse(ctx, intent.intent_id, intent.account, invalid(exc))
        await self._record_late_fills(spec.id)
        self._metrics.intent_seconds.observe((self._clock.now_ns() - started) / 1e9)

    async def _record_late_fills(self, account: AccountId) -> None:
        venue = self._venues.get(account)
        fills = venue.take_late_fills() if venue is not None else []
        if fills:
            await self.record_fills(fills)  # a paper order that arrived after its fill

    # ------------------------------------------------------------ live venues
    async def halt(self, account: AccountId, reason: str) -> None:
        """Stop trading ``account`` (a configuration error); alert once (log, metric, bus)."""
        await self._refusals.halt(self._accounts[account], reason)

    async def resolve_unknown(self, account: AccountId) -> None:
        """Resolve every ``unknown`` order of ``account`` by its client id. Call under :attr:`lock`.

        Found at the venue -> ``accepted`` with its id; not found -> sent now,
        once. Raises :class:`VenueUnavailable` (or :class:`RetryLater`) if the
        venue cannot tell yet: nothing else may go out for the account then.
        """
        await self._orders.resolve_unknown(account)

    # ------------------------------------------------------------------ places
    async def _place(self, ctx: IntentContext, spec: AccountSpec, intent: PlaceOrder) -> None:
        await self.resolve_unknown(spec.id)
        key = (ctx.user, intent.intent_id)
        earlier = (await self._store.find_intents([key])).get(key)  # its row, or its refusal
        if isinstance(earlier, OrderRow):
            await self._resume(ctx, intent, earlier)
            return
        if earlier is not None:  # the same intent was refused before: refuse it the same way
            await self._refusals.refuse(ctx, intent.intent_id, intent.account, Refusal(*earlier))
            return
        vetted = await self._vetting.vet(spec, intent, ctx.source)
        if isinstance(vetted, Refusal):
            await self._refusals.refuse(ctx, intent.intent_id, intent.account, vetted)
            return
        intent = vetted
        row, created = await self._store.insert_order(new_order(ctx, intent, self._clock.now_ns()))
        if not created:
            await self._resume(ctx, intent, row)
            return
        self._vetting.on_place(spec.id)
        await self._orders.send(row, intent.ts_init)

    async def _resume(self, ctx: IntentContext, intent: PlaceOrder, row: OrderRow) -> None:
        """A redelivered (or repeated) intent: answer from the row, place at most once.

        A ``clamp_to_free`` sell's row may hold less than the intent asked for.
        """
        same = (row.account_id, row.symbol, row.side, row.price, row.order_type) == (
            intent.account,
            intent.symbol,
            intent.side,
            intent.price,
            intent.order_type,
        )
        if not (same and is_same_size(intent, row.qty)):
            refusal = Refusal(
                "duplicate_intent_id", f"intent id {intent.intent_id!r} was used for another order"
            )
            await self._refusals.refuse(ctx, intent.intent_id, intent.account, refusal)
            return
        if row.status in ("new", "unknown"):
            venue_order_id = await self._venues[row.account_id].find_order(
                str(row.client_order_id), row.symbol, row.created_ns
            )
            if venue_order_id is None:
                await self._orders.send(row, intent.ts_init)  # the venue never got it: send it now
                return
            await self._orders.accepted(row, venue_order_id, 0)
        elif row.status == "rejected":
            await self._events.rejected(row, row.reason or "rejected", "rejected by the venue")
        else:
            await self._events.accepted(row, row.venue_order_id or "")

    # ----------------------------------------------------------------- cancels
    async def _cancel_one(self, ctx: IntentContext, intent: CancelOrder) -> None:
        await self.resolve_unknown(intent.account)
        row = await self._store.get_order(ctx.user, intent.target_intent_id)
        if row is None or row.account_id != intent.account:
            await self._cancel_rejected(
                ctx, intent, "unknown_order", "no such order on that account"
            )
            return
        if not await self._orders.cancel(row, intent.intent_id):
            await self._cancel_rejected(ctx, intent, "not_open", f"order is {row.status}")

    async def _cancel_all(self, ctx: IntentContext, intent: CancelAll) -> None:
        await self.resolve_unknown(intent.account)
        source = ctx.source if intent.scope == "source" else None
        for row in await self._store.open_orders(intent.account, intent.symbol, source):
            await self._orders.cancel(row, intent.intent_id)

    async def cancel_open_orders(self, account: AccountId, cancel_id: IntentId) -> int:
        """Cancel every open order of ``account`` (kill switch); how many. Call under :attr:`lock`.

        A venue that cannot be reached now is logged and skipped: its orders
        stay open, and new ones are refused all the same.
        """
        if account in self.connecting or account in self.halted:
            return 0
        canceled = 0
        try:
            await self.resolve_unknown(account)
            for row in await self._store.open_orders(account):
                canceled += await self._orders.cancel(row, cancel_id)
        except (VenueUnavailable, RetryLater) as exc:
            log.error(
                "kill switch: could not cancel at the venue",
                extra={"account": account, "error": str(exc)},
            )
        return canceled

    async def cancel_at_start(
        self, account: AccountId, scope: CancelAtStart, cancel_id: IntentId
    ) -> tuple[list[VenueOpenOrder], list[OrderRow]]:
        """Cancel the account's open orders as its ``at_start.cancel_open_orders`` says
        (:class:`~tradebus.engine.accounts.AtStart`); the venue's orders the ledger does not
        know that were canceled, and the ledger's orders canceled. Takes :attr:`lock`.

        ``unknown``: every order open at the venue whose client id is not one of the
        account's open orders in the ledger, canceled by its venue id. ``all``: those, and
        every open order of the ledger (canceled as a ``CancelAll`` would: the row closed,
        ``OrderCanceled`` with ``cancel_id`` to its source). ``none``: nothing.

        Raises
        ------
        VenueUnavailable, RetryLater
            If the venue cannot be asked now.
        """
        if scope == "none":
            return [], []
        async with self.lock:
            await self.resolve_unknown(account)
            venue = self._venues[account]
            ours = await self._store.open_orders(account)
            known = {(str(r.client_order_id), r.symbol) for r in ours}
            foreign = []
            for order in await venue.open_orders():
                if (order.client_order_id, order.symbol) in known:
                    continue
                if await venue.cancel_by_venue_id(order.venue_order_id, order.symbol):
                    foreign.append(order)
            canceled = []
            if scope == "all":
                for row in ours:
                    if await self._orders.cancel(row, cancel_id):
                        canceled.append(row)
            return foreign, canceled

    async def _cancel_rejected(
        self, ctx: IntentContext, intent: CancelOrder, reason: str, message: str
    ) -> None:
        self._metrics.cancel_rejected(reason)
        await self._events.cancel_rejected(ctx, intent, reason, message)

    # ------------------------------------------------------------------- fills
    async def book_fills(self, fills: list[VenueFill]) -> None:
        """Book fills a venue reported on its own (a paper venue's on a market event), under
        :attr:`lock` (:meth:`record_fills`)."""
        async with self.lock:
            await self.record_fills(fills)

    def _note_margin(
        self, account: AccountId, balances: list[AssetBalance], positions: list[PositionRisk]
    ) -> Decimal | None:
        """The account's margin ratio from a venue snapshot (:func:`~.risk.margin_ratio`),
        kept for ``max_margin_ratio`` and shown as ``tradebus_execution_margin_ratio``."""
        settle = {p.settle for p in positions}
        held = sum((b.total for b in balances if b.asset in settle), ZERO)
        ratio = margin_ratio(positions, held) if len(settle) == 1 else None
        if ratio is None:
            self._vetting.risk.margin_ratios.pop(account, None)
            with contextlib.suppress(KeyError):  # no series yet
                self._metrics.margin_ratio.remove(account)
            return None
        self._vetting.risk.margin_ratios[account] = ratio
        self._metrics.margin_ratio.labels(account=account).set(float(ratio))
        return ratio

    async def ended_at_venue(self, user: UserId, intent: IntentId, reason: str) -> bool:
        """The venue ended an open order by itself (an IOC's unfilled rest expired, or it
        was canceled at the venue): the ledger marks it canceled and its source hears
        :class:`~tradebus.common.messages.OrderCanceled` with ``reason``. Call under
        :attr:`lock`. False if the order is not open at the venue (not accepted yet, or
        already ended)."""
        row = await self._store.get_order(user, intent)
        return row is not None and await self._orders.ended_at_venue(row, reason)

    async def record_fills(self, fills: list[VenueFill]) -> None:
        """Book venue fills in the ledger and publish them, never dropping one
        (:class:`~tradebus.engine.fills.FillBooker`). Call under :attr:`lock`."""
        await self._fills.record(fills)

    @property
    def healthy(self) -> bool:
        """False while the ledger or the bus refuses writes (fills and intents wait)."""
        return self._fills.healthy

    def set_healthy(self, healthy: bool, why: str = "") -> None:
        """Report the engine (un)healthy: the gauge, and a log on change."""
        self._fills.set_healthy(healthy, why)

    @property
    def watermark(self) -> int:
        """Id of the last journal entry execution wrote or saw at start."""
        return self._fills.watermark

    # ----------------------------------------------------------------- queries
    async def balances(
        self, account: AccountId | None = None, reconcile: bool = False
    ) -> list[AccountBalances]:
        """Venue balances of one or every account, with the ledger watermark they reflect.

        Each carries the account's ``reconciliation`` mode. With ``reconcile`` (the
        reconciler asks), an account whose reconciliation is off is answered without
        asking its venue: no balances, mode ``off``.

        Raises
        ------
        KeyError
            If ``account`` is not configured.
        VenueUnavailable
            If a live venue cannot answer (a bad key also halts the account).
        """
        async with self.lock:
            ids = [account] if account is not None else sorted(self._accounts)
            out = []
            for account_id in ids:
                mode = self._accounts[account_id].reconciliation.mode
                venue = self._venues[account_id]
                if reconcile and mode == "off":
                    out.append(
                        AccountBalances(
                            account=account_id,
                            venue=venue.name,
                            balances=[],
                            ledger_watermark=self.watermark,
                            reconciliation=mode,
                        )
                    )
                    continue
                if account_id in self.connecting:
                    error = VenueError(
                        kind="transient",
                        reason="connecting",
                        message=f"{account_id}: its venue has not answered since start",
                    )
                    raise VenueUnavailable(error)
                try:
                    balances = await venue.balances()
                except VenueUnavailable as exc:
                    if exc.error.kind == "configuration":
                        await self.halt(account_id, exc.error.reason)
                    raise
                positions = venue.positions_seen()
                out.append(
                    AccountBalances(
                        account=account_id,
                        venue=venue.name,
                        balances=balances,
                        ledger_watermark=self.watermark,
                        positions=positions,
                        margin_ratio=self._note_margin(account_id, balances, positions),
                        reconciliation=mode,
                    )
                )
            return out

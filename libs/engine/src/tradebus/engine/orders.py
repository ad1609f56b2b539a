"""Persisted orders at their venues: send, accept, cancel, and resolve unknown outcomes.

:class:`VenueOrders` holds what the engine knows of its orders at the venues:
the open orders of every account, and the accounts that may have an order of
unknown outcome. It asks a venue to place or cancel an order whose ledger row
already exists, records the answer in the ledger and publishes the event.

A place that fails with ``unknown_outcome`` marks the row ``unknown`` and
raises :class:`RetryLater`; :meth:`VenueOrders.resolve_unknown` then asks the
venue for the client id before anything else goes out for the account: found
-> ``accepted``, not found -> sent now, once.

Every method runs under the engine's lock.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from tradebus.common.clock import Clock
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.order_status import OrderStatus
from tradebus.engine.events import OrderEvents
from tradebus.engine.metrics import EngineMetrics
from tradebus.engine.store import OrderStore
from tradebus.engine.venue import Venue, VenueOrder, VenueRejected, VenueUnavailable
from tradebus.ledger.errors import LEDGER_UNAVAILABLE
from tradebus.ledger.rows import IntentKey, OrderRow

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The venue could not be asked now: leave the intent unacked, it is redelivered."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RetryLater,
    OSError,  # TimeoutError (NATS publish acks included) and connection errors
    *LEDGER_UNAVAILABLE,
)
"""Errors that mean "try again later" (database, bus or venue down), not "bad intent"."""


def order_key(user: UserId, intent_id: IntentId) -> str:
    """The key of an order in the open-order sets: its user and intent id."""
    return f"{user}\x00{intent_id}"


class VenueOrders:
    """Sends persisted orders to their venues and tracks open and unknown ones.

    Parameters
    ----------
    store
        Where orders and refusals are kept (:class:`~tradebus.engine.store.OrderStore`).
    accounts
        The configured account ids.
    venues
        One venue per account id.
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
        accounts: list[AccountId],
        venues: dict[AccountId, Venue],
        events: OrderEvents,
        clock: Clock,
        metrics: EngineMetrics,
    ) -> None:
        self._store = store
        self._venues = venues
        self._events = events
        self._clock = clock
        self._metrics = metrics
        self._open: dict[AccountId, set[str]] = {
            a: set() for a in accounts
        }  # account -> intent keys
        self._unknown: set[AccountId] = set()  # accounts that may have orders of unknown outcome

    def add_account(self, account: AccountId) -> None:
        """Track ``account`` (added at run time) with no open order yet (:meth:`load` them)."""
        self._open.setdefault(account, set())

    def remove_account(self, account: AccountId) -> None:
        """Forget ``account`` (unloaded at run time) and whatever of it was still open."""
        self._open.pop(account, None)
        self._unknown.discard(account)

    async def load(self, account: AccountId) -> None:
        """Load the open orders of ``account`` from the ledger (at start)."""
        for row in await self._store.open_orders(account):
            self._open[account].add(order_key(row.user_id, row.intent_id))
            if row.status == "unknown":
                self._unknown.add(account)

    def open_count(self, account: AccountId | None = None) -> int:
        """How many orders of ``account`` (of every account if ``None``) are open."""
        if account is None:
            return sum(len(v) for v in self._open.values())
        return len(self._open[account])

    def has_unknown(self, account: AccountId) -> bool:
        """True if ``account`` may have orders of unknown outcome (resolve them first)."""
        return account in self._unknown

    async def resolve_unknown(self, account: AccountId) -> None:
        """Resolve every ``unknown`` order of ``account`` by its client id.

        Found at the venue -> ``accepted`` with its id; not found -> sent now,
        once. Raises :class:`VenueUnavailable` (or :class:`RetryLater`) if the
        venue cannot tell yet: nothing else may go out for the account then.
        """
        if account not in self._unknown:
            return
        for row in await self._store.open_orders(account):
            if row.status != "unknown":
                continue
            venue_order_id = await self._venues[account].find_order(
                str(row.client_order_id), row.symbol, row.created_ns
            )
            if venue_order_id is None:
                log.warning(
                    "unknown order not at the venue: sending it",
                    extra={"account": account, "intent_id": row.intent_id},
                )
                await self.send(row, 0)
            else:
                log.info(
                    "unknown order found at the venue",
                    extra={"account": account, "intent_id": row.intent_id},
                )
                await self.accepted(row, venue_order_id, 0)
        self._unknown.discard(account)

    async def send(self, row: OrderRow, ts_init: int) -> None:
        """Ask the venue to place a persisted order; record and publish its answer."""
        venue = self._venues[row.account_id]
        try:
            ack = await venue.place(venue_order(row))
        except VenueUnavailable as exc:
            if exc.error.kind != "unknown_outcome":
                raise
            await self._store.set_order_status(
                row.user_id, row.intent_id, OrderStatus.UNKNOWN, self._clock.now_ns()
            )
            self._unknown.add(row.account_id)
            self._metrics.order_status("unknown", row.user_id)
            log.warning(
                "place outcome unknown: resolving by client id before the account sends more",
                extra={
                    "account": row.account_id,
                    "intent_id": row.intent_id,
                    "reason": exc.error.reason,
                },
            )
            raise RetryLater(f"{row.account_id}: unknown outcome of {row.intent_id}") from None
        except VenueRejected as exc:
            log.info(
                "venue rejected",
                extra={"intent_id": row.intent_id, "reason": exc.reason, "detail": exc.message},
            )
            now = self._clock.now_ns()
            await self._store.set_order_status(
                row.user_id, row.intent_id, OrderStatus.REJECTED, now, reason=exc.reason
            )
            self._metrics.rejected(exc.reason, row.user_id)
            self._metrics.order_status("rejected", row.user_id)
            await self._events.rejected(row, exc.reason, exc.message)
            return
        await self.accepted(row, ack.venue_order_id, ts_init)

    async def send_group(self, orders: list[tuple[OrderRow, int]]) -> dict[IntentKey, Exception]:
        """Place persisted ``new`` orders, in order; record every answer in one statement.

        ``orders`` holds ``(row, ts_init)``. Only for venues that always answer
        (paper: no :class:`VenueUnavailable`). Each answer is then recorded as
        :meth:`send` records it, one ledger round trip and one commit for the
        whole group, and its event published (:class:`OrderAccepted` or
        :class:`OrderRejected`; the caller may defer their acks).

        Returns the orders whose venue call raised :class:`ValueError` or
        :class:`ArithmeticError` (a value the venue cannot take), by
        ``(user, intent id)``: their rows stay ``new``, as :meth:`send` leaves them.
        """
        answers: list[tuple[OrderRow, int, str | None, VenueRejected | None]] = []
        failed: dict[IntentKey, Exception] = {}
        for row, ts_init in orders:
            try:
                ack = await self._venues[row.account_id].place(venue_order(row))
            except VenueRejected as exc:
                answers.append((row, ts_init, None, exc))
            except (ValueError, ArithmeticError) as exc:
                failed[(row.user_id, row.intent_id)] = exc
            else:
                answers.append((row, ts_init, ack.venue_order_id, None))
        now = self._clock.now_ns()
        changed = await self._store.set_orders_status(
            [
                (
                    (row.user_id, row.intent_id),
                    OrderStatus.ACCEPTED if rejected is None else OrderStatus.REJECTED,
                    venue_order_id,
                    None if rejected is None else rejected.reason,
                )
                for row, _, venue_order_id, rejected in answers
            ],
            now,
        )
        for row, ts_init, venue_order_id, rejected in answers:
            if rejected is not None:
                log.info(
                    "venue rejected",
                    extra={
                        "intent_id": row.intent_id,
                        "reason": rejected.reason,
                        "detail": rejected.message,
                    },
                )
                self._metrics.rejected(rejected.reason, row.user_id)
                self._metrics.order_status("rejected", row.user_id)
                await self._events.rejected(row, rejected.reason, rejected.message)
                continue
            assert venue_order_id is not None
            key = order_key(row.user_id, row.intent_id)
            open_keys = self._open[row.account_id]
            if (row.user_id, row.intent_id) in changed and key not in open_keys:
                open_keys.add(key)
                self._metrics.open_orders.inc()
            self._metrics.order_status("accepted", row.user_id)
            if ts_init:
                self._metrics.intent_to_ack.observe(max(0, now - ts_init) / 1e9)
            await self._events.accepted(row, venue_order_id)
        return failed

    async def accepted(self, row: OrderRow, venue_order_id: str, ts_init: int) -> None:
        """The venue has the order of ``row`` as ``venue_order_id``: record and publish."""
        now = self._clock.now_ns()
        changed = await self._store.set_order_status(
            row.user_id,
            row.intent_id,
            OrderStatus.ACCEPTED,
            now,
            venue_order_id=venue_order_id,
        )
        key = order_key(row.user_id, row.intent_id)
        if changed and key not in self._open[row.account_id]:
            self._open[row.account_id].add(key)
            self._metrics.open_orders.inc()
        self._metrics.order_status("accepted", row.user_id)
        if ts_init:
            self._metrics.intent_to_ack.observe(max(0, now - ts_init) / 1e9)
        await self._events.accepted(row, venue_order_id)

    async def cancel(self, row: OrderRow, cancel_intent_id: IntentId) -> bool:
        """Cancel one open order at the venue; publish :class:`OrderCanceled`. False if not open."""
        if row.status not in ("accepted", "partially_filled"):
            return False
        if not await self._venues[row.account_id].cancel(str(row.client_order_id), row.symbol):
            return False
        now = self._clock.now_ns()
        await self._store.set_order_status(row.user_id, row.intent_id, OrderStatus.CANCELED, now)
        self.forget_open(row)
        self._metrics.order_status("canceled", row.user_id)
        await self._events.canceled(row, cancel_intent_id)
        return True

    async def ended_at_venue(self, row: OrderRow, reason: str) -> bool:
        """The venue ended open ``row`` itself (no cancel intent): mark it canceled and tell
        its source, with ``reason``. False unless it is accepted or partially filled."""
        if row.status not in ("accepted", "partially_filled"):
            return False
        now = self._clock.now_ns()
        await self._store.set_order_status(row.user_id, row.intent_id, OrderStatus.CANCELED, now)
        self.forget_open(row)
        self._metrics.order_status("canceled", row.user_id)
        await self._events.canceled(row, None, reason)
        return True

    def forget_open(self, row: OrderRow) -> None:
        """``row`` is no longer open (canceled or filled)."""
        keys = self._open.get(row.account_id)
        if keys is None:
            return  # an account unloaded since
        key = order_key(row.user_id, row.intent_id)
        if key in keys:
            keys.discard(key)
            self._metrics.open_orders.dec()


def venue_order(row: OrderRow, qty: Decimal | None = None) -> VenueOrder:
    """The venue order of a persisted row, for ``qty`` (default: the row's whole quantity)."""
    return VenueOrder(
        client_order_id=str(row.client_order_id),
        intent_id=row.intent_id,
        symbol=row.symbol,
        side=row.side,  # type: ignore[arg-type]
        order_type=row.order_type,  # type: ignore[arg-type]
        price=row.price,
        qty=row.qty if qty is None else qty,
        trigger_ts=row.trigger_ts,
        time_in_force=row.time_in_force,  # type: ignore[arg-type]
        reduce_only=row.reduce_only,
    )

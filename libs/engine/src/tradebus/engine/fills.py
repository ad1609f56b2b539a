"""Booking venue fills: ledger first, then the event, and never a fill dropped.

:class:`FillBooker` books each fill in one ledger transaction keyed by
``(venue, account, trade id)`` (a duplicate is a no-op), updates the risk
state and open orders, then publishes :class:`OrderFilled`. While the
database or NATS refuses writes it retries with back-off, under the
engine's lock, so nothing else moves meanwhile; it reports the engine
unhealthy (``tradebus_execution_healthy`` 0, an error log) and healthy
again when it catches up. A fill booked whose event could not be published
is published again before anything else (same message id: stored once).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec

from tradebus.common.clock import Clock
from tradebus.common.ids import AccountId
from tradebus.common.markets import MarketCatalog
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.booking import fill_row
from tradebus.engine.events import OrderEvents
from tradebus.engine.metrics import EngineMetrics
from tradebus.engine.orders import TRANSIENT_ERRORS
from tradebus.engine.store import OrderStore
from tradebus.engine.venue import VenueFill
from tradebus.engine.vetting import Vetting
from tradebus.ledger.rows import OrderRow

log = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 5.0


class FillBooker:
    """Books fills for the engine (module docstring). Call :meth:`record` under the lock.

    Parameters
    ----------
    store, accounts, catalog
        Where fills go (:class:`~tradebus.engine.store.OrderStore`), the accounts, the markets.
    vetting
        Told of every booked fill (the risk state).
    orders
        Forgets orders that are filled (``forget_open``).
    events
        Publishes :class:`OrderFilled`.
    metrics, clock
        Counters, gauges and the time.
    retired
        Accounts unloaded at run time: a fill of theirs still reported is booked
        with their last spec (the money moved at the venue).
    """

    def __init__(
        self,
        store: OrderStore,
        accounts: dict[AccountId, AccountSpec],
        catalog: MarketCatalog,
        vetting: Vetting,
        orders: Any,
        events: OrderEvents,
        metrics: EngineMetrics,
        clock: Clock,
        retired: dict[AccountId, AccountSpec] | None = None,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._retired = retired if retired is not None else {}
        self._catalog = catalog
        self._vetting = vetting
        self._orders = orders
        self._events = events
        self._metrics = metrics
        self._clock = clock
        self.watermark = 0
        """Id of the last journal entry written (or seen at start)."""
        self.healthy = True
        self._unpublished: list[tuple[OrderRow, VenueFill]] = []

    async def record(self, fills: list[VenueFill]) -> None:
        """Book and publish ``fills``, retrying until the database and NATS take them."""
        attempt = 0
        while True:
            try:
                while self._unpublished:
                    row, fill = self._unpublished[0]
                    await self._events.filled(row, fill)
                    self._unpublished.pop(0)
                for fill in fills:
                    await self._book(fill)
            except TRANSIENT_ERRORS as exc:
                self.set_healthy(False, f"fills wait: {type(exc).__name__}")
                attempt += 1
                await asyncio.sleep(min(MAX_RETRY_SECONDS, 0.1 * 2**attempt))
                continue
            self.set_healthy(True)
            return

    def set_healthy(self, healthy: bool, why: str = "") -> None:
        """Report whether writes go through: the gauge, and a log on change."""
        if healthy == self.healthy:
            return
        self.healthy = healthy
        self._metrics.healthy.set(1 if healthy else 0)
        if healthy:
            log.warning("execution healthy again: catching up")
        else:
            log.error("execution unhealthy: intents wait in JetStream", extra={"why": why})

    async def _book(self, fill: VenueFill) -> None:
        spec = self._accounts.get(fill.account) or self._retired[fill.account]
        market = self._catalog.get(spec.market_data, fill.symbol)
        if fill.market_kind == "perpetual" and fill.realized_pnl is None:
            realized = self._vetting.price_pnl(spec, fill.symbol, fill.side, fill.qty, fill.price)
            fill = msgspec.structs.replace(fill, realized_pnl=realized)
        now = self._clock.now_ns()
        result = await self._store.record_fill(fill_row(fill, market, now))
        if result is None:
            return  # already booked
        self.watermark, row = result
        facts = (fill.side, fill.qty, fill.price, fill.fee, fill.fee_asset)
        self._vetting.on_fill(spec, fill.symbol, facts, now, row.source)
        self._metrics.fill_booked(fill.venue, row.user_id)
        self._metrics.fill_to_ledger.observe(max(0, self._clock.now_ns() - now) / 1e9)
        if row.status == "filled":
            self._orders.forget_open(row)
            self._metrics.order_status("filled", row.user_id)
        self._unpublished.append((row, fill))  # until its event is out
        await self._events.filled(row, fill)
        self._unpublished.pop()

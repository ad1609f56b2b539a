"""Execution's part of a backtest: intents to paper-venue orders, and the events back.

What the execution service does between a bot and the paper venue, without
the bus and the ledger: a place is checked
(:func:`~tradebus.engine.risk.check_order_shape`), a ``clamp_to_free``
spot sell sized by the free base balance
(:func:`~tradebus.engine.sizing.clamp_to_free`), then placed with
``trigger_ts`` = the current event's ``ts_recv`` (live from the next event,
STRATEGIES.md paper fill model rule 1); cancels and cancel-alls are answered
as execution answers them; fills become :class:`OrderFilled` with
``cum_qty``/``leaves_qty`` as execution's ``events.py`` computes them.
"""

from __future__ import annotations

from decimal import Decimal

from tradebus.cli.backtest.setup import ACCOUNT, BOT_ID, USER, VENUE, Setup
from tradebus.common.messages import (
    CancelAll,
    CancelOrder,
    CancelRejected,
    Intent,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
)
from tradebus.common.money import ZERO
from tradebus.engine.accounts import trades_perpetual
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.engine.risk import Refusal, check_order_shape
from tradebus.engine.sizing import clamp_to_free, wants_free_balance
from tradebus.engine.venue import VenueFill, VenueOrder, VenueRejected


class _Order:
    """Execution's view of one order: its intent, client id, placed and filled quantity."""

    __slots__ = ("client_id", "filled", "intent", "open", "qty")

    def __init__(self, intent: PlaceOrder, client_id: str, qty: Decimal) -> None:
        self.intent = intent
        self.client_id = client_id
        self.qty = qty
        self.filled = ZERO
        self.open = True


class PaperDesk:
    """One paper account (:data:`ACCOUNT`) and the orders the bot placed on it.

    Attributes
    ----------
    exchange
        The paper venue (opened with ``late_orders=False``: every order is
        placed before the next event is fed, so no event ever needs replaying).
    placed, rejected
        Orders accepted by the venue, and places refused (shape, balance, venue).
    """

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.exchange = PaperExchange(setup.catalog, VENUE, late_orders=False)
        self.exchange.open_account(
            ACCOUNT,
            dict(setup.balances),
            setup.maker_fee_bps,
            setup.taker_fee_bps,
            market_kind=setup.market_kind,
            leverage=setup.leverage,
        )
        self.markets = {m.symbol: m for m in setup.markets}
        self._orders: dict[str, _Order] = {}
        self._client_seq = 0
        self.placed = 0
        self.rejected = 0

    def open_orders(self) -> int:
        """Orders placed and neither filled nor canceled."""
        return sum(1 for o in self._orders.values() if o.open)

    def execute(self, intent: Intent, ts: int) -> list[OrderEvent]:
        """The events one intent causes at time ``ts`` (ns), as execution would publish them."""
        if type(intent) is PlaceOrder:
            event = self._place(intent, ts)
            return [event] if event is not None else []
        if type(intent) is CancelOrder:
            return [self._cancel(intent, ts)]
        return self._cancel_all(intent, ts)  # type: ignore[arg-type]

    def filled(self, fill: VenueFill) -> OrderFilled:
        """Record a venue fill against its order; the event the bot hears."""
        order = self._orders[fill.intent_id]
        order.filled += fill.qty
        leaves = order.qty - order.filled
        if leaves <= 0:
            order.open = False
        return OrderFilled(
            intent_id=fill.intent_id,
            user=USER,
            source=BOT_ID,
            account=ACCOUNT,
            symbol=fill.symbol,
            side=fill.side,
            trade_id=fill.trade_id,
            price=fill.price,
            qty=fill.qty,
            fee=fill.fee,
            fee_asset=fill.fee_asset,
            liquidity=fill.liquidity,
            cum_qty=order.filled,
            leaves_qty=leaves,
            ts_event=fill.ts_event,
        )

    def _reject(self, intent: PlaceOrder, reason: str, message: str, ts: int) -> OrderRejected:
        self.rejected += 1
        return OrderRejected(
            intent_id=intent.intent_id,
            user=USER,
            source=BOT_ID,
            account=intent.account,
            reason=reason,
            message=message,
            ts_event=ts,
        )

    def _place(self, intent: PlaceOrder, ts: int) -> OrderEvent | None:
        if intent.intent_id in self._orders:
            return self._reject(
                intent, "duplicate_intent_id", f"intent id {intent.intent_id!r} already used", ts
            )
        market = self.markets.get(intent.symbol)
        if market is None:
            return self._reject(intent, "unknown_symbol", f"no market {intent.symbol}", ts)
        refusal = check_order_shape(intent, market)
        perpetual = trades_perpetual(self.setup.market_kind, market)
        if refusal is None and wants_free_balance(intent, perpetual):
            bal = self.exchange.accounts[ACCOUNT].balance(market.base)
            sized = clamp_to_free(intent, market, bal.total - bal.locked)
            if isinstance(sized, Refusal):
                refusal = sized
            else:
                intent, refusal = sized, check_order_shape(sized, market)
        if refusal is not None:
            return self._reject(intent, refusal.reason, refusal.message, ts)
        self._client_seq += 1
        client_id = str(self._client_seq)
        order = VenueOrder(
            client_order_id=client_id,
            intent_id=intent.intent_id,
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            price=intent.price,
            qty=intent.qty,
            trigger_ts=ts,
        )
        try:
            ack = self.exchange.place(ACCOUNT, order)
        except VenueRejected as exc:
            return self._reject(intent, exc.reason, exc.message, ts)
        self.placed += 1
        self._orders[intent.intent_id] = _Order(intent, client_id, intent.qty)
        return OrderAccepted(
            intent_id=intent.intent_id,
            user=USER,
            source=BOT_ID,
            account=ACCOUNT,
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            price=intent.price,
            qty=intent.qty,
            client_order_id=client_id,
            venue_order_id=ack.venue_order_id,
            ts_event=ts,
        )

    def _canceled(self, order: _Order, cancel_id: str, ts: int) -> OrderCanceled:
        order.open = False
        return OrderCanceled(
            intent_id=order.intent.intent_id,
            user=USER,
            source=BOT_ID,
            account=ACCOUNT,
            symbol=order.intent.symbol,
            filled_qty=order.filled,
            cancel_intent_id=cancel_id,
            ts_event=ts,
        )

    def _cancel(self, intent: CancelOrder, ts: int) -> OrderEvent:
        order = self._orders.get(intent.target_intent_id)
        if order is None:
            reason, message = "unknown_order", "no such order on that account"
        elif order.open and self.exchange.cancel(order.client_id):
            return self._canceled(order, intent.intent_id, ts)
        else:
            reason, message = "not_open", "order is not open"
        return CancelRejected(
            intent_id=intent.intent_id,
            user=USER,
            source=BOT_ID,
            target_intent_id=intent.target_intent_id,
            reason=reason,
            message=message,
            ts_event=ts,
        )

    def _cancel_all(self, intent: CancelAll, ts: int) -> list[OrderEvent]:
        out: list[OrderEvent] = []
        for order in list(self._orders.values()):
            if not order.open or (intent.symbol and order.intent.symbol != intent.symbol):
                continue
            if self.exchange.cancel(order.client_id):
                out.append(self._canceled(order, intent.intent_id, ts))
        return out

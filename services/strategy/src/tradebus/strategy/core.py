"""What every strategy core shares: its identity, its orders, and its interface.

A strategy core is a pure, deterministic object (DESIGN.md, "Strategy host"):
it reads no clock and does no I/O; the host passes every market event and
order event in, and publishes the intents it returns. The same inputs always
give the same intents, with the same deterministic ids ``<bot>:<cycle>:<leg>``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Protocol

import msgspec

from tradebus.common.ids import intent_id
from tradebus.common.markets import Market
from tradebus.common.messages import (
    BotStatus,
    CancelOrder,
    Intent,
    OrderEvent,
    PlaceOrder,
    QuoteTick,
    Side,
    TradeTick,
)
from tradebus.common.money import ZERO

OrderStatus = Literal["pending", "accepted", "filled", "canceled", "rejected"]
TERMINAL: frozenset[str] = frozenset({"filled", "canceled", "rejected"})


class BotContext(msgspec.Struct, frozen=True, kw_only=True):
    """Who a bot is and what it trades: fixed for the bot's life."""

    bot: str
    user: str
    account: str
    strategy: str
    venue: str
    market: Market


class TrackedOrder(msgspec.Struct, kw_only=True):
    """A bot's view of one of its orders (quantities in base, price in quote)."""

    intent_id: str
    leg: str
    side: Side
    price: Decimal | None
    qty: Decimal
    filled: Decimal = ZERO
    status: OrderStatus = "pending"
    cancel_sent: bool = False

    @property
    def is_open(self) -> bool:
        """Not yet filled, canceled or rejected."""
        return self.status not in TERMINAL


class OrderTracker(msgspec.Struct, kw_only=True):
    """The orders a bot placed, keyed by intent id, with counts for its status block."""

    orders: dict[str, TrackedOrder] = msgspec.field(default_factory=dict)
    placed: int = 0
    filled: int = 0

    def place(
        self,
        ctx: BotContext,
        cycle: int,
        leg: str,
        side: Side,
        price: Decimal,
        qty: Decimal,
        ts: int,
        trigger_ts: int | None,
    ) -> PlaceOrder:
        """Record and return a GTC limit order intent ``<bot>:<cycle>:<leg>``."""
        iid = intent_id(ctx.bot, cycle, leg)
        self.orders[iid] = TrackedOrder(intent_id=iid, leg=leg, side=side, price=price, qty=qty)
        self.placed += 1
        return PlaceOrder(
            intent_id=iid,
            account=ctx.account,
            symbol=ctx.market.symbol,
            side=side,
            qty=qty,
            price=price,
            order_type="limit",
            ts_init=ts,
            trigger_ts=trigger_ts,
        )

    def cancel(self, ctx: BotContext, order: TrackedOrder, ts: int) -> CancelOrder | None:
        """A cancel intent for ``order`` (id ``<order id>:x``), once; None if already sent."""
        if order.cancel_sent or not order.is_open:
            return None
        order.cancel_sent = True
        return CancelOrder(
            intent_id=f"{order.intent_id}:x",
            account=ctx.account,
            target_intent_id=order.intent_id,
            ts_init=ts,
        )

    def open_orders(self, side: Side | None = None) -> list[TrackedOrder]:
        """Open orders, optionally of one side, in placement order."""
        return [o for o in self.orders.values() if o.is_open and (side is None or o.side == side)]

    def forget_closed(self) -> None:
        """Drop terminal orders (keeps snapshots small once a cycle is over)."""
        self.orders = {k: o for k, o in self.orders.items() if o.is_open}


class Strategy(Protocol):
    """The interface the host drives. Every method returns the intents to publish."""

    ctx: BotContext

    def on_quote(self, tick: QuoteTick) -> list[Intent]:
        """A new best bid/ask of the bot's market."""
        ...

    def on_trade(self, tick: TradeTick) -> list[Intent]:
        """A public trade of the bot's market."""
        ...

    def on_order_event(self, event: OrderEvent) -> list[Intent]:
        """An event about one of the bot's orders."""
        ...

    def on_stop(self) -> list[Intent]:
        """The bot is being stopped: return the cancels its config asks for."""
        ...

    def status(self) -> BotStatus:
        """The bot's status block."""
        ...

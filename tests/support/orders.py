"""Order events for tests: what execution would answer a bot's intents, and paper-venue orders.

:class:`OrderEvents` builds the events of one bot (its :class:`BotContext`
gives user, source and account): the order echoes its intent's symbol, side,
type, price and quantity; its client and venue order ids are the intent id, a
fill's trade id ``<intent id>:<cum qty>``; fees are charged in the quote asset
of the order's market; every event has ``ts_event`` 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import count
from typing import TypedDict

from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.messages import (
    CancelOrder,
    CancelRejected,
    Intent,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
)
from tradebus.engine.venue import VenueOrder
from tradebus.strategies.core import BotContext


class _Who(TypedDict):
    """Who every event of a bot names."""

    user: UserId
    source: str
    account: AccountId


class OrderEvents:
    """The order events of the bot ``ctx``.

    ``liquidity`` is that of every fill; ``reject_message`` the message of
    every rejection that does not give its own.
    """

    def __init__(
        self, ctx: BotContext, liquidity: Liquidity = "taker", reject_message: str = "no"
    ) -> None:
        self.ctx = ctx
        self.liquidity: Liquidity = liquidity
        self.reject_message = reject_message
        self.who = _Who(user=ctx.user, source=ctx.bot, account=ctx.account)

    def accepted(self, p: Intent, qty: Decimal | None = None) -> OrderAccepted:
        """``p`` accepted, for ``qty`` if execution placed less (clamped to the free balance)."""
        assert isinstance(p, PlaceOrder)
        return OrderAccepted(
            intent_id=p.intent_id,
            symbol=p.symbol,
            side=p.side,
            order_type=p.order_type,
            price=p.price,
            qty=p.qty if qty is None else qty,
            client_order_id=p.intent_id,
            venue_order_id=p.intent_id,
            ts_event=0,
            **self.who,
        )

    def filled(
        self,
        p: Intent,
        price: str | Decimal,
        fee: str | Decimal = "0",
        qty: Decimal | None = None,
        cum: Decimal | None = None,
    ) -> OrderFilled:
        """A fill of ``qty`` (all of ``p``) at ``price``; ``cum``: filled so far (``qty``)."""
        assert isinstance(p, PlaceOrder)
        q = p.qty if qty is None else qty
        c = q if cum is None else cum
        return OrderFilled(
            intent_id=p.intent_id,
            symbol=p.symbol,
            side=p.side,
            trade_id=f"{p.intent_id}:{c}",
            price=Decimal(price),
            qty=q,
            fee=Decimal(fee),
            fee_asset=self.ctx.market_of(p.symbol).quote,
            liquidity=self.liquidity,
            cum_qty=c,
            leaves_qty=p.qty - c,
            ts_event=0,
            **self.who,
        )

    def canceled(self, p: Intent, filled_qty: Decimal = Decimal(0)) -> OrderCanceled:
        """The order of ``p`` canceled, ``filled_qty`` of it filled before.

        ``p`` is the order's place, or the cancel that targeted it.
        """
        if isinstance(p, CancelOrder):
            intent_id, symbol = p.target_intent_id, self.ctx.market.symbol
        else:
            assert isinstance(p, PlaceOrder)
            intent_id, symbol = p.intent_id, p.symbol
        return OrderCanceled(
            intent_id=intent_id,
            symbol=symbol,
            filled_qty=filled_qty,
            ts_event=0,
            **self.who,
        )

    def rejected(
        self, p: Intent, reason: str = "insufficient_balance", message: str | None = None
    ) -> OrderRejected:
        """``p`` refused for ``reason``."""
        assert isinstance(p, PlaceOrder)
        return OrderRejected(
            intent_id=p.intent_id,
            reason=reason,
            message=self.reject_message if message is None else message,
            ts_event=0,
            **self.who,
        )

    def cancel_rejected(self, c: Intent) -> CancelRejected:
        """The cancel ``c`` refused: its target is no longer open."""
        assert isinstance(c, CancelOrder)
        return CancelRejected(
            intent_id=c.intent_id,
            user=self.ctx.user,
            source=self.ctx.bot,
            target_intent_id=c.target_intent_id,
            reason="not_open",
            message="not open",
            ts_event=0,
        )


_venue_ids = count(1)


def venue_order(
    side: Side,
    price: str | None,
    qty: str = "0.1",
    trigger: int | None = None,
    symbol: str = "BTCUSDT",
    order_type: OrderType = "limit",
) -> VenueOrder:
    """An order for the paper venue, with client order id ``<n>`` and intent id ``i<n>``,
    ``n`` new on every call; ``trigger``: the time of the event that caused it."""
    n = next(_venue_ids)
    return VenueOrder(
        client_order_id=str(n),
        intent_id=IntentId(f"i{n}"),
        symbol=symbol,
        side=side,
        order_type=order_type,
        price=None if price is None else Decimal(price),
        qty=Decimal(qty),
        trigger_ts=trigger,
    )


def places(intents: Sequence[Intent]) -> list[PlaceOrder]:
    """``intents``, each checked to be a :class:`PlaceOrder`."""
    out = [i for i in intents if isinstance(i, PlaceOrder)]
    assert len(out) == len(intents), f"not only places: {intents}"
    return out


def cancels(intents: Sequence[Intent]) -> list[CancelOrder]:
    """``intents``, each checked to be a :class:`CancelOrder`."""
    out = [i for i in intents if isinstance(i, CancelOrder)]
    assert len(out) == len(intents), f"not only cancels: {intents}"
    return out


def whole_fill(
    user: str,
    source: str,
    side: Side,
    qty: str,
    price: str,
    fee: str = "0",
    *,
    liquidity: Liquidity = "maker",
    n: int = 1,
    trade_id: str | None = None,
) -> OrderFilled:
    """A fill of all of order ``i-<n>`` of bot ``source`` of ``user`` on ``<user>-paper``
    (BTCUSDT, fee in USDT, nothing left), at ``ts_event`` 1.7e18 ns; trade id
    ``t-<user>-<n>`` unless given. Amounts are decimal strings."""
    return OrderFilled(
        intent_id=IntentId(f"i-{n}"),
        user=UserId(user),
        source=source,
        account=AccountId(f"{user}-paper"),
        symbol="BTCUSDT",
        side=side,
        trade_id=trade_id or f"t-{user}-{n}",
        price=Decimal(price),
        qty=Decimal(qty),
        fee=Decimal(fee),
        fee_asset="USDT",
        liquidity=liquidity,
        cum_qty=Decimal(qty),
        leaves_qty=Decimal(0),
        ts_event=1_700_000_000_000_000_000,
    )

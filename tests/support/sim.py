"""A synchronous, in-process loop of strategy cores and the paper exchange, for tests.

It follows the paper fill model's event order (STRATEGIES.md rule 5): each
market event first fills live orders, the bots see those fills, then the bots
see the event; intents are executed at once (place/cancel on the exchange)
and their answers fed back. No NATS, no database: it tests the pure cores
together. Intents are kept so tests can inspect them.

With ``lag`` the bots hear of their orders late, as over a real bus: every
order event is held back for ``lag()`` market events (the venue acts at
once). A core must stay within its limits whatever it has not heard yet.

Also here: :func:`paper_exchange` (a venue with accounts open) and
:func:`committed_at_venue` (an account's capital at the venue).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from itertools import count
from typing import Any

from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import (
    CancelAll,
    CancelOrder,
    CancelRejected,
    Intent,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    QuoteTick,
    TradeTick,
)
from tradebus.common.positions import Position
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.engine.venue import VenueFill, VenueOrder, VenueRejected
from tradebus.strategies.core import Strategy


def paper_exchange(
    markets: Sequence[Market], balances: Mapping[str, Decimal], *accounts: str, **kw: Any
) -> PaperExchange:
    """A paper venue ``binance`` trading ``markets``, each of ``accounts`` opened with
    ``balances``, maker fee 1 bps and taker fee 5 bps.

    ``kw``: the account's other settings (``market_kind``, ``leverage``).
    """
    exchange = PaperExchange(MarketCatalog({"binance": list(markets)}), "binance")
    for account in accounts:
        exchange.open_account(
            account, dict(balances), maker_fee_bps=Decimal(1), taker_fee_bps=Decimal(5), **kw
        )
    return exchange


class Sim:
    """Bots and a :class:`PaperExchange` wired together without I/O."""

    def __init__(
        self, exchange: PaperExchange, bots: list[Strategy], lag: Callable[[], int] | None = None
    ) -> None:
        self.exchange = exchange
        self.bots = {b.ctx.bot: b for b in bots}
        self._lag = lag
        self._held: list[tuple[int, Strategy, object]] = []  # (due event number, bot, event)
        self._events_seen = 0
        self.intents: list[Intent] = []
        self.fills: list[VenueFill] = []
        self._ids = count(1)
        self._orders: dict[str, tuple[str, str]] = {}  # intent id -> (client id, bot)
        self._clients: dict[str, tuple[str, str]] = {}  # client id -> (intent id, bot)

    def _tell(self, bot: Strategy, event: object) -> None:
        """Deliver an order event now, or hold it back when the bots lag."""
        if self._lag is None:
            self._execute(bot, bot.on_order_event(event))  # type: ignore[arg-type]
        else:
            self._held.append((self._events_seen + self._lag(), bot, event))

    def _deliver_due(self) -> None:
        while True:
            due = [h for h in self._held if h[0] <= self._events_seen]
            if not due:
                return
            self._held = [h for h in self._held if h[0] > self._events_seen]
            for _, bot, event in due:
                self._execute(bot, bot.on_order_event(event))  # type: ignore[arg-type]

    def _execute(self, bot: Strategy, intents: list[Intent]) -> None:
        for intent in intents:
            self.intents.append(intent)
            for event in self._answer(bot, intent):
                self._tell(bot, event)

    def _answer(self, bot: Strategy, intent: Intent) -> list:
        ctx = bot.ctx
        base = {"user": ctx.user, "source": ctx.bot, "account": ctx.account}
        if isinstance(intent, PlaceOrder):
            cid = str(next(self._ids))
            order = VenueOrder(
                client_order_id=cid,
                intent_id=intent.intent_id,
                symbol=intent.symbol,
                side=intent.side,
                order_type=intent.order_type,
                price=intent.price,
                qty=intent.qty,
                trigger_ts=intent.trigger_ts,
            )
            try:
                ack = self.exchange.place(ctx.account, order)
            except VenueRejected as exc:
                return [
                    OrderRejected(
                        intent_id=intent.intent_id,
                        reason=exc.reason,
                        message=exc.message,
                        ts_event=0,
                        **base,
                    )
                ]
            self._orders[intent.intent_id] = (cid, ctx.bot)
            self._clients[cid] = (intent.intent_id, ctx.bot)
            return [
                OrderAccepted(
                    intent_id=intent.intent_id,
                    symbol=intent.symbol,
                    side=intent.side,
                    order_type=intent.order_type,
                    price=intent.price,
                    qty=intent.qty,
                    client_order_id=cid,
                    venue_order_id=ack.venue_order_id,
                    ts_event=0,
                    **base,
                )
            ]
        if isinstance(intent, CancelOrder):
            cid, _ = self._orders.get(intent.target_intent_id, ("", ""))
            if cid and self.exchange.cancel(cid):
                return [
                    OrderCanceled(
                        intent_id=intent.target_intent_id,
                        symbol=ctx.market.symbol,
                        filled_qty=Decimal(0),
                        cancel_intent_id=intent.intent_id,
                        ts_event=0,
                        **base,
                    )
                ]
            return [
                CancelRejected(
                    intent_id=intent.intent_id,
                    user=ctx.user,
                    source=ctx.bot,
                    target_intent_id=intent.target_intent_id,
                    reason="not_open",
                    message="not open",
                    ts_event=0,
                )
            ]
        assert isinstance(intent, CancelAll)
        raise NotImplementedError("CancelAll is not used by the strategy cores")

    def on_event(self, tick: QuoteTick | TradeTick) -> None:
        """One market event: fills first (in placement order), then every bot sees the event."""
        self._events_seen += 1
        self._deliver_due()
        if isinstance(tick, TradeTick):
            fills = self.exchange.on_trade(tick)
        else:
            self.exchange.on_quote(tick)
            fills = []
        for fill in fills:
            self.fills.append(fill)
            intent_id, bot_id = self._clients[fill.client_order_id]
            bot = self.bots[bot_id]
            event = OrderFilled(
                intent_id=intent_id,
                user=bot.ctx.user,
                source=bot_id,
                account=fill.account,
                symbol=fill.symbol,
                side=fill.side,
                trade_id=fill.trade_id,
                price=fill.price,
                qty=fill.qty,
                fee=fill.fee,
                fee_asset=fill.fee_asset,
                liquidity=fill.liquidity,
                cum_qty=fill.qty,
                leaves_qty=Decimal(0),
                ts_event=fill.ts_event,
            )
            self._tell(bot, event)
        for bot in self.bots.values():
            if bot.ctx.market.symbol != tick.symbol:
                continue
            intents = bot.on_trade(tick) if isinstance(tick, TradeTick) else bot.on_quote(tick)  # type: ignore[arg-type]
            self._execute(bot, intents)

    def stop(self) -> None:
        """Stop every bot, execute its cancels, deliver everything held back."""
        for bot in self.bots.values():
            self._execute(bot, bot.on_stop())
        self._lag = None
        held, self._held = self._held, []
        for _, bot, event in held:
            self._execute(bot, bot.on_order_event(event))  # type: ignore[arg-type]


def committed_at_venue(sim: Sim, account: str) -> Decimal:
    """Open buy notional of ``account`` plus the cost of its position, as the venue knows them."""
    held = Position()
    for fill in sim.fills:
        if fill.account == account:
            held.apply(fill.side, fill.qty, fill.price, Decimal(0))
    orders = sim.exchange.open_orders(account)
    open_buys = sum((o.price * o.qty for o in orders if o.side == "buy" and o.price), Decimal(0))
    return open_buys + held.open_cost

"""The grid bot: buys rest at the levels below the price; each filled buy is sold one
level up; each sold level buys again (README.md, "Rules").

A pure core (:class:`tradebus.strategies.core.Strategy`): no clock, no I/O, all of
its memory in :class:`~tradebus_grid.state.GridState`. New capital (a buy) is
committed only on market events; order events only place the sell of what a
buy filled.
"""

from __future__ import annotations

from decimal import Decimal

from tradebus.common.messages import (
    BotStatus,
    Intent,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    QuoteTick,
    Side,
    TradeTick,
)
from tradebus.common.money import ZERO, floor_to
from tradebus.strategies.core import (
    BotBase,
    BotContext,
    TrackedOrder,
    apply_fill,
    booked_change,
    flatten_long,
    is_close,
    note_quote,
    note_trade,
)
from tradebus_grid.params import GridError, GridParams, buy_qty, level_prices
from tradebus_grid.state import GridLevel, GridState, grid_status


class GridBot(BotBase[GridParams, GridState]):
    """A grid bot on one spot market.

    Legs: ``b<i>`` the buy of level ``i`` at ``price_i``, ``s<i>`` the sale of
    that buy at ``price_(i+1)`` (``s<i>r<k>`` the ``k``-th, if one is placed
    again); a buy and its sales are one round, whose number is the cycle ``n``
    of their intent ids ``<bot>:<run>.<n>:<leg>`` (rounds numbered bot-wide
    from 1), so tradebus books each round's realized P&L on its own
    (STRATEGIES.md, fill model rule 6).
    """

    state_type = GridState

    def __init__(self, ctx: BotContext, params: GridParams, state: GridState | None = None):
        super().__init__(ctx, params, state)
        self._prices: list[Decimal] | None = None  # derived from params: rebuilt, not stored

    # ------------------------------------------------------------ market input
    def on_trade(self, tick: TradeTick) -> list[Intent]:
        """A trade sets the reference price ``p`` and market time; then buys are placed."""
        note_trade(self.state, tick)
        return self._on_market()

    def on_quote(self, tick: QuoteTick) -> list[Intent]:
        """A quote moves market time; it sets ``p`` to the mid only until the first trade."""
        note_quote(self.state, tick)
        return self._on_market()

    def _on_market(self) -> list[Intent]:
        s = self.state
        if s.phase == "waiting" and s.last_price is not None:
            if not self._plan():
                return []
            s.phase = "running"
        if s.phase != "running":
            return []
        return self._place_sells() + self._place_buys()

    def _plan(self) -> bool:
        """Check the grid against the market once: levels a tick apart, every buy
        above the market's minimum; fail the bot naming what is wrong."""
        try:
            prices = level_prices(self.params, self.ctx.market)
            for price in prices[:-1]:
                buy_qty(price, self.params, self.ctx.market)
        except GridError as exc:
            self._fail(str(exc))
            return False
        self._prices = prices
        return True

    def _levels(self) -> list[Decimal]:
        if self._prices is None:
            self._prices = level_prices(self.params, self.ctx.market)
        return self._prices

    def _place_buys(self) -> list[Intent]:
        """A buy at every idle level (no order, nothing held) strictly below ``p``."""
        s, prices, out = self.state, self._levels(), []
        p = s.last_price
        assert p is not None
        for i, price in enumerate(prices[:-1]):  # the top level only sells
            if price >= p:
                break
            level = s.levels.get(i)
            if level is not None and (level.order is not None or level.held > 0):
                continue
            qty = buy_qty(price, self.params, self.ctx.market)
            out.append(self._place(i, "buy", price, qty))
        return out

    def _place_sells(self) -> list[Intent]:
        """The sale of every level holding base without an open order, one level up.

        A remainder too small to sell (below ``step_size``, ``min_qty`` or
        ``min_notional``) stays in the position, and the level buys again.
        """
        s, prices, m, out = self.state, self._levels(), self.ctx.market, []
        for i, level in sorted(s.levels.items()):
            if level.order is not None or level.held <= 0:
                continue
            price, qty = prices[i + 1], floor_to(level.held, m.step_size)
            if qty <= 0 or qty < m.min_qty or qty * price < m.min_notional:
                level.held = level.cost = level.proceeds = ZERO
                continue
            out.append(self._place(i, "sell", price, qty))
        return out

    def _place(self, i: int, side: Side, price: Decimal, qty: Decimal) -> Intent:
        s = self.state
        level = s.levels.setdefault(i, GridLevel())
        level.placed += 1
        if side == "buy":  # a buy starts a round: the cycle its sells share
            s.rounds += 1
            level.round, level.sells = s.rounds, 0
            leg = f"b{i}"
        else:
            level.sells += 1
            leg = f"s{i}" if level.sells == 1 else f"s{i}r{level.sells}"
        place = s.orders.place(self.ctx, level.round, leg, side, price, qty, s.last_ts, s.last_ts)
        level.order = place.intent_id
        return place

    def _fail(self, error: str) -> None:
        self.state.phase, self.state.error = "failed", error

    # ------------------------------------------------------------ order events
    def on_order_event(self, event: OrderEvent) -> list[Intent]:
        """Track fills; once a buy is done, sell what it bought one level up."""
        s = self.state
        order = s.orders.find(event.intent_id)
        if order is None:
            return []
        if is_close(order):
            self._on_close_event(order, event)
            return self._flatten_step() if s.phase == "flattening" else []
        match event:
            case OrderAccepted():
                order.accept(event.qty)
            case OrderFilled():
                self._apply_fill(order, event)
            case OrderCanceled():
                order.status = "canceled"
                self._release(order)
            case OrderRejected():
                order.status = "rejected"
                self._release(order)
                self._fail(f"{order.side} {order.leg} at {order.price} rejected: "
                           f"{event.reason}: {event.message}")  # fmt: skip
        if s.phase == "flattening":
            return self._flatten_step()
        return self._place_sells() if s.phase == "running" else []

    def _level_of(self, order: TrackedOrder) -> GridLevel:
        index = int(order.leg[1:].split("r", 1)[0])  # b<i>, s<i> or s<i>r<k>
        return self.state.levels.setdefault(index, GridLevel())

    def _release(self, order: TrackedOrder) -> None:
        level = self._level_of(order)
        if level.order == order.intent_id:
            level.order = None

    def _apply_fill(self, order: TrackedOrder, fill: OrderFilled) -> None:
        s, level = self.state, self._level_of(order)
        done = s.orders.record_fill(order, fill.qty)
        qty, fee = booked_change(fill, self.ctx.market)
        if fill.side == "buy":
            level.held += qty
            level.cost += fill.qty * fill.price + fee
            s.bought_quote += fill.qty * fill.price
            s.bought_qty += qty
            apply_fill(s.position, fill, self.ctx.market)
        else:
            sold = min(qty, max(s.position.qty, ZERO))
            level.held -= qty
            level.proceeds += fill.qty * fill.price - fee
            if sold > 0:
                s.position.apply("sell", sold, fill.price, fee)
        if not done:
            return
        self._release(order)
        if fill.side == "sell":  # a round trip: the level is idle and buys again
            s.grid_profit += level.proceeds - level.cost
            level.round_trips += 1
            s.round_trips += 1
            level.held = level.cost = level.proceeds = ZERO
            s.orders.forget_closed()

    # --------------------------------------------------------------- lifecycle
    def on_stop(self) -> list[Intent]:
        """Stop trading; cancel every open order if ``cancel_on_exit``."""
        s = self.state
        if s.phase != "stopped":
            s.resume_phase = s.phase
        s.phase = "stopped"
        if not self.params.cancel_on_exit:
            return []
        return s.orders.cancel_all(self.ctx, s.orders.open_orders(), s.last_ts)

    def on_restart(self) -> list[Intent]:
        """Go on from the state: the next market event re-places what the stop canceled."""
        s = self.state
        if s.phase == "stopped":
            s.phase = s.resume_phase
        return []

    def flatten(self) -> list[Intent]:
        """Force exit (tradebus docs/strategies.md, "Force exit"): cancel every open order,
        then sell the whole position at market (clamped to the free base balance); the
        bot is ``stopped`` once sold, at once when nothing is open or held."""
        self.state.phase = "flattening"
        return self._flatten_step()

    def _flatten_step(self) -> list[Intent]:
        s = self.state
        out = flatten_long(self.ctx, s, s.position.qty, 0, s.last_ts)
        if out is not None:
            return out
        for level in s.levels.values():  # nothing left to sell: every level is idle
            level.held = level.cost = level.proceeds = ZERO
        s.phase = "stopped"
        return []

    def _on_close_event(self, order: TrackedOrder, event: OrderEvent) -> None:
        """A force exit's market sell: it sells the position, not a level's buy."""
        s = self.state
        match event:
            case OrderAccepted():
                cut = order.accept(event.qty)  # the account held less (sold by hand)
                if cut > 0 and s.position.qty > 0:
                    s.position.write_off(min(cut, s.position.qty))
            case OrderFilled():
                s.orders.record_fill(order, event.qty)
                qty, fee = booked_change(event, self.ctx.market)
                sold = min(qty, max(s.position.qty, ZERO))
                if sold > 0:
                    s.position.apply("sell", sold, event.price, fee)
            case OrderCanceled():
                order.status = "canceled"
            case OrderRejected():
                order.status = "rejected"
                self._fail(f"force exit sell rejected: {event.reason}: {event.message}")

    def _on_restore(self) -> None:
        self._prices = None

    def status(self) -> BotStatus:
        """The status block (:func:`~tradebus_grid.state.grid_status`)."""
        return grid_status(self.ctx, self.params, self.state)

"""The ``martingale`` strategy: a base order, safety orders below it, one take-profit above.

Source: shared/STRATEGIES.md §2 (seed 002). A cycle opens with a marketable
limit buy of ``base_quote`` at ``floor_tick(p * 1.005)``; once it is filled at
``P_base``, up to ``N`` safety buys rest at ``P_base * (1 - dev_j/100)``. After
every buy fill the take-profit is (re)placed as a limit sell of the whole
position at ``floor_tick(avg * (1 + T/100))``. If ``p <= avg * (1 - S/100)``
everything is canceled and the position sold at ``floor_tick(p * 0.995)``. A
cycle ends when its position is sold; the next starts at the first event whose
market time (``ts_recv``) is >= the close + ``cooldown_seconds``; with 0, at the
closing event itself, at its price, without waiting for the leftover safety
orders' cancels (a buy of the old cycle that fills later joins the position
the next cycle's take-profit sells). With ``trailing_take_profit_pct`` Tr no
take-profit rests: reaching ``floor_tick(avg * (1 + T/100))`` arms a trailing
exit that follows the highest price since and sells at ``floor_tick(p * 0.995)``
once ``p <= peak * (1 - Tr/100)`` (docs/strategies.md; the stop-loss first).
Before its first order the bot waits for the account's balances (phase
``checking``) and fails if the free quote balance is below the worst-case
capital ``base_quote + sum(quote_j)``.

The bot hears of its orders after the venue acts on them, so: at most one
sell is ever open (the old take-profit locks the base asset, so the new one
is placed once the old one is confirmed canceled or filled, and for what is
left of the position); new capital (base and safety orders) is placed only on
market events, and (with a cooldown) a new cycle only once every order of the
last one is done; a buy that fills after the sale, before that, reopens the cycle.

This module holds the bot (how it trades); the parameters and the pure
planning of orders are in :mod:`~tradebus.strategies.martingale.params`, the
state and status block in :mod:`~tradebus.strategies.martingale.state`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from tradebus.common.ids import intent_id
from tradebus.common.messages import (
    AccountBalances,
    BotStatus,
    Intent,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    QuoteTick,
    TradeTick,
)
from tradebus.common.money import HUNDRED, ONE, ZERO, floor_to
from tradebus.strategies.core import (
    BotBase,
    BotContext,
    BotInput,
    TrackedOrder,
    booked_change,
    cancel_all_but_closes,
    note_quote,
    note_trade,
    place_close,
)
from tradebus.strategies.martingale.params import (
    MartingaleParams,
    base_order,
    cooldown_ns,
    plan_safety_orders,
    take_profit_price,
    worst_case_capital,
)
from tradebus.strategies.martingale.state import (
    MARKET_EXITS,
    RUNNING,
    MartingaleState,
    martingale_status,
)

STOP_LOSS_SELL_FACTOR = Decimal("0.995")


class MartingaleBot(BotBase[MartingaleParams, MartingaleState]):
    """A martingale bot: a pure core (:class:`~tradebus.strategies.core.Strategy`).

    Legs: ``b`` base, ``s<j>`` safety j (``s<j>r<k>`` re-placed after restart
    k), ``tp<n>`` the n-th take-profit, ``sl``/``sl<n>`` stop-loss sells,
    ``tt``/``tt<n>`` trailing take-profit sells.
    Input: the account's balances (:attr:`BotInput.BALANCES`), checked against
    the worst-case capital before the first cycle.
    """

    state_type = MartingaleState
    inputs = frozenset({BotInput.BALANCES})

    def __init__(
        self, ctx: BotContext, params: MartingaleParams, state: MartingaleState | None = None
    ):
        super().__init__(ctx, params, state)
        self.worst_case = worst_case_capital(params)
        self._cooldown_ns = cooldown_ns(params)
        self._sl_trigger: Decimal | None = None  # avg * (1 - S/100), reset when avg moves

    # ------------------------------------------------------------ market input
    def on_trade(self, tick: TradeTick) -> list[Intent]:
        """A trade sets the reference price ``p`` and market time; then the cycle logic runs."""
        note_trade(self.state, tick)
        return self._on_market()

    def on_quote(self, tick: QuoteTick) -> list[Intent]:
        """A quote moves market time; it sets ``p`` to the mid only until the first trade."""
        note_quote(self.state, tick)
        return self._on_market()

    def on_balances(self, balances: AccountBalances) -> list[Intent]:
        """Before the first cycle: check the free quote balance against the worst-case capital."""
        s, quote = self.state, self.ctx.market.quote
        if s.phase != "checking" or balances.account != self.ctx.account:
            return []
        free = next((b.free for b in balances.balances if b.asset == quote), ZERO)
        if free < self.worst_case:
            p = self.params
            self._fail(
                f"worst-case capital {self.worst_case} {quote} (base_quote {p.base_quote} + "
                f"{p.max_safety_orders} safety orders of safety_quote {p.safety_quote} * "
                f"volume_scale {p.volume_scale}**(j-1)) exceeds the free balance {free} {quote}"
            )
        else:
            s.phase = "waiting"
        return []

    def _on_market(self) -> list[Intent]:
        s = self.state
        if s.end_pending:  # the cycle ended at the first market event after its sale
            s.cycle_end_ts, s.end_pending = s.last_ts, False
        if s.phase == "waiting" or (s.phase == "cooldown" and self._cooled_down()):
            return self._start_cycle()
        if s.phase in ("entering", "active"):
            if self._stop_loss_reached():  # first: the stop-loss has priority
                s.phase, s.safeties_due = "stop_loss", False
            elif self._trailing_fell_back():
                s.phase, s.safeties_due = "trailing_exit", False
        out = self._place_safeties() if s.phase == "active" and s.safeties_due else []
        return out + self._manage()

    def _cooled_down(self) -> bool:
        s = self.state
        end = s.cycle_end_ts
        if not self._cooldown_ns:  # the closing event itself starts the next cycle (§2)
            return True
        return (end is None or s.last_ts >= end + self._cooldown_ns) and not self._busy()

    def _stop_loss_reached(self) -> bool:
        """``S > 0`` and ``p <= avg * (1 - S/100)`` (STRATEGIES.md §2)."""
        s, sl = self.state, self.params.stop_loss_pct
        if not sl or s.position.qty <= 0 or s.last_price is None:
            return False
        if self._sl_trigger is None:
            self._sl_trigger = s.position.open_cost / s.position.qty * (ONE - sl / HUNDRED)
        return s.last_price <= self._sl_trigger

    def _trailing_fell_back(self) -> bool:
        """The trailing take-profit (docs/strategies.md): with ``Tr > 0`` and a position,
        ``p >= floor_tick(avg * (1 + T/100))`` arms it (``trail_peak = p``), a higher ``p``
        raises the peak, and ``p <= peak * (1 - Tr/100)`` sells (True)."""
        s, tr = self.state, self.params.trailing_take_profit_pct
        p, avg = s.last_price, s.position.avg_price
        if not tr or s.sold or s.position.qty <= 0 or p is None or avg is None:
            return False
        peak = s.trail_peak
        if peak is None:
            if p >= take_profit_price(avg, self.params, self.ctx.market):
                s.trail_peak = p
            return False
        if p > peak:
            s.trail_peak = p
            return False
        return p <= peak * (ONE - tr / HUNDRED)

    # ------------------------------------------------------------------ cycles
    def _start_cycle(self) -> list[Intent]:
        s, m = self.state, self.ctx.market
        assert s.last_price is not None
        price, qty = base_order(s.last_price, self.params, m)
        if qty <= 0 or price * qty < self.params.min_order_quote:
            self._fail(
                f"base order of base_quote={self.params.base_quote} at {price} is "
                f"{price * qty} {m.quote}, below min_order_quote={self.params.min_order_quote} "
                f"(step_size={m.step_size}); raise base_quote"
            )
            return []
        s.orders.forget_closed()
        s.cycle += 1
        s.base_price, s.safeties_due, s.safety_ids, s.unsettled = None, False, {}, {}
        s.base_filled_quote = s.base_filled_qty = s.cycle_filled_quote = s.cycle_filled_qty = ZERO
        s.safety_filled = s.tp_count = s.sl_count = 0
        s.tp_stale = s.sold = s.end_pending = False
        s.cycle_end_ts = s.trail_peak = None
        s.tt_count = 0
        s.phase = "entering"
        return [s.orders.place(self.ctx, s.cycle, "b", "buy", price, qty, s.last_ts, s.last_ts)]

    def _place_safeties(self) -> list[Intent]:
        """Place every planned safety level that has no order yet (or lost it to a stop)."""
        s = self.state
        s.safeties_due = False
        if s.base_price is None:
            return []
        out: list[Intent] = []
        for lv in plan_safety_orders(s.base_price, self.params, self.ctx.market):
            prev = s.orders.find(s.safety_ids.get(lv.index))
            if prev is not None and (prev.filled > 0 or self._is_busy(prev)):
                continue
            leg = f"s{lv.index}" if prev is None else f"s{lv.index}r{s.restarts}"
            place = s.orders.place(
                self.ctx, s.cycle, leg, "buy", lv.price, lv.qty, s.last_ts, s.last_ts
            )
            s.safety_ids[lv.index] = place.intent_id
            out.append(place)
        return out

    def _manage(self) -> list[Intent]:
        """Drive the running phases from the state; idempotent, so it runs after every event."""
        s = self.state
        if s.phase == "entering":
            base = s.orders.orders.get(intent_id(self.ctx.bot, self.ctx.run, s.cycle, "b"))
            if base is not None and not self._is_busy(base):
                if base.filled > 0:  # P_base: the base order's average fill price
                    s.base_price = s.base_filled_quote / s.base_filled_qty
                    s.phase, s.safeties_due = "active", True
                elif s.position.qty <= 0:  # canceled unfilled: a new cycle at the next price
                    s.phase = "waiting"
                    return []
        if s.phase in ("entering", "active"):
            if not s.sold:
                return self._manage_take_profit()
            s.phase, s.safeties_due = "closing", False
        if s.phase in MARKET_EXITS:
            return self._manage_market_exit()
        if s.phase == "closing":  # with cooldown 0 the cancels are not waited for (§2)
            out = self._cancel(s.orders.open_orders())
            if not self._cooldown_ns or not self._busy():
                self._complete()
            return out
        return []

    def _manage_take_profit(self) -> list[Intent]:
        """(Re)place the take-profit after a buy fill: cancel the old one, wait, place anew."""
        s = self.state
        if not s.tp_stale:
            return []
        sells = self._busy("sell")
        if sells:  # its base asset is locked at the venue until the cancel is confirmed
            return self._cancel(sells)
        s.tp_stale = False
        qty, avg = self._sellable(), s.position.avg_price
        if qty <= 0 or avg is None or self.params.trailing_take_profit_pct:
            return []
        price = take_profit_price(avg, self.params, self.ctx.market)
        s.tp_count += 1
        return [self._sell(f"tp{s.tp_count}", price, qty)]

    def _manage_market_exit(self) -> list[Intent]:
        """Stop-loss or trailing take-profit: cancel everything else; once no other sell
        is open, sell at ``floor_tick(p * 0.995)`` (legs ``sl<n>`` / ``tt<n>``)."""
        s = self.state
        prefix = MARKET_EXITS[s.phase]
        out = self._cancel([o for o in s.orders.open_orders() if not o.leg.startswith(prefix)])
        qty = self._sellable()
        if qty > 0 and s.last_price is not None and not self._busy("sell"):
            if prefix == "sl":
                s.sl_count += 1
                count = s.sl_count
            else:
                s.tt_count += 1
                count = s.tt_count
            leg = prefix if count == 1 else f"{prefix}{count}"
            price = floor_to(s.last_price * STOP_LOSS_SELL_FACTOR, self.ctx.market.tick_size)
            out.append(self._sell(leg, price, qty))
        elif qty <= 0 and not self._busy():
            self._complete()
        return out

    def _complete(self) -> None:
        s = self.state
        s.cycles_completed += 1
        s.phase, s.safeties_due = "cooldown", False
        s.trail_peak = None

    def _sell(self, leg: str, price: Decimal, qty: Decimal) -> Intent:
        s = self.state
        return s.orders.place(
            self.ctx, s.cycle, leg, "sell", price, qty, s.last_ts, s.last_ts, clamp_to_free=True
        )

    def _cancel(self, orders: list[TrackedOrder]) -> list[Intent]:
        return self.state.orders.cancel_all(self.ctx, orders, self.state.last_ts)

    def _is_busy(self, order: TrackedOrder) -> bool:
        """Open, or canceled with reported fills not yet heard."""
        return order.is_open or order.intent_id in self.state.unsettled

    def _busy(self, side: Literal["buy", "sell"] | None = None) -> list[TrackedOrder]:
        orders = self.state.orders.orders.values()
        return [o for o in orders if self._is_busy(o) and side in (None, o.side)]

    def _sellable(self) -> Decimal:
        qty = self.state.position.qty
        return floor_to(qty, self.ctx.market.step_size) if qty > 0 else ZERO

    def _fail(self, error: str) -> None:
        self.state.phase, self.state.error = "failed", error

    # ------------------------------------------------------------ order events
    def on_order_event(self, event: OrderEvent) -> list[Intent]:
        """Track orders and position; manage what is exposed (take-profit, stop-loss, cancels)."""
        s = self.state
        order = s.orders.find(event.intent_id)
        if order is None:
            return []
        match event:
            case OrderAccepted():
                if cut := order.accept(event.qty):  # a clamped sell: sold by hand (seed 001)
                    self._write_off(cut)
            case OrderFilled():
                self._apply_fill(order, event)
            case OrderCanceled():
                order.status = "canceled"
                if event.filled_qty > order.filled:
                    s.unsettled[order.intent_id] = event.filled_qty
            case OrderRejected():
                order.status = "rejected"
                self._rejected(order, event)
        if s.phase == "flattening":
            return self._flatten_step()
        return self._manage() if s.phase in RUNNING else []

    def _rejected(self, order: TrackedOrder, event: OrderRejected) -> None:
        s, why = self.state, f"{event.reason}: {event.message}"
        if order.side == "sell" and order.clamp_to_free and event.reason == "insufficient_balance":
            base = self.ctx.market.base  # nothing left to sell: sold by hand
            s.error = (
                f"sell {order.leg} skipped: the account holds less than one step of the bot's "
                f"{order.qty} {base} ({event.message}); the bot's {s.position.qty} {base} "
                "is written off and the cycle closed"
            )
            self._write_off(s.position.qty)
        elif order.side == "sell":
            self._fail(f"sell {order.leg} rejected: {why}")
        elif order.leg == "b":
            self._fail(f"base order rejected: {why}")
        else:  # the cycle goes on with its other safety orders; the status shows why
            s.error = f"safety order {order.leg} rejected: {why}"

    def _write_off(self, qty: Decimal) -> None:
        """The account holds less than the bot bought: drop the difference (seed 001)."""
        s = self.state
        qty = min(qty, s.position.qty)
        if qty > 0:
            s.position.write_off(qty)
            self._sl_trigger = None
            if self._sellable() <= 0:
                s.sold = s.end_pending = True

    def _apply_fill(self, order: TrackedOrder, fill: OrderFilled) -> None:
        s = self.state
        if s.orders.record_fill(order, fill.qty):
            s.safety_filled += order.intent_id in s.safety_ids.values()
        reported = s.unsettled.get(order.intent_id)
        if reported is not None and order.filled >= reported:  # every fill now heard
            del s.unsettled[order.intent_id]
        moved, fee = booked_change(fill, self.ctx.market)
        qty = moved
        if fill.side == "sell":  # spot: never below zero, whatever was written off
            qty = min(moved, max(s.position.qty, ZERO))
            if qty <= 0:
                return
            fee = fee * qty / moved
        s.position.apply(fill.side, qty, fill.price, fee)
        self._sl_trigger = None
        if fill.side == "buy":
            s.cycle_filled_quote += qty * fill.price
            s.cycle_filled_qty += qty
            if order.leg == "b":
                s.base_filled_quote += qty * fill.price
                s.base_filled_qty += qty
            s.tp_stale, s.sold, s.end_pending, s.cycle_end_ts = True, False, False, None
            s.trail_peak = None  # the take-profit level moved: trailing re-arms at the new one
            if s.phase == "closing":  # a buy filled after the sale: the cycle goes on
                s.phase = "active"
        elif self._sellable() <= 0:
            s.sold = s.end_pending = True

    # --------------------------------------------------------------- lifecycle
    def on_stop(self) -> list[Intent]:
        """Stop trading; cancel every open order if ``cancel_on_exit``."""
        s = self.state
        if s.phase != "stopped":
            s.resume_phase = s.phase
        s.phase = "stopped"
        return self._cancel(s.orders.open_orders()) if self.params.cancel_on_exit else []

    def flatten(self) -> list[Intent]:
        """Force exit (docs/strategies.md, "Force exit"): cancel every open order, then
        sell the position at market once nothing is open or unsettled; ``stopped`` once
        sold. Started again, the bot opens a new cycle (``checking`` if it never had one)."""
        s = self.state
        s.phase, s.safeties_due = "flattening", False
        return self._flatten_step()

    def _flatten_step(self) -> list[Intent]:
        s = self.state
        out = cancel_all_but_closes(self.ctx, s, s.last_ts)
        if self._busy():
            return out
        qty = self._sellable()
        if qty > 0:
            return [
                *out,
                place_close(self.ctx, s, s.cycle, "sell", qty, s.last_ts, clamp_to_free=True),
            ]
        s.phase, s.resume_phase = "stopped", "waiting" if s.cycle else "checking"
        return out

    def on_restart(self) -> list[Intent]:
        """Go on from the state: the next market event re-places what the stop canceled.

        A bot that never opened a cycle (also one that failed the balance check)
        checks its balance again; a bot that failed later stays failed.
        """
        s = self.state
        if s.phase != "stopped":
            return []
        s.restarts += 1
        s.phase = "checking" if s.cycle == 0 else s.resume_phase
        if s.phase in ("entering", "active"):
            s.safeties_due = s.phase == "active"
            if self._sellable() > 0 and not self._busy("sell"):
                s.tp_stale = True
        return []

    def _on_restore(self) -> None:
        self._sl_trigger = None

    def status(self) -> BotStatus:
        """The status block of STRATEGIES.md §2, martingale figures in ``details``."""
        return martingale_status(self.ctx, self.params, self.state)

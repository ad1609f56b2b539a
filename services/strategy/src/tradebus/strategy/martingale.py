"""The ``martingale`` strategy: a base order, safety orders below it, one take-profit above.

Source: shared/STRATEGIES.md §2 (seed 002). A cycle opens with a marketable
limit buy of ``base_quote`` at ``floor_tick(p * 1.005)``; once it is filled at
``P_base``, up to ``N`` safety buys rest at ``P_base * (1 - dev_j/100)``. After
every buy fill the take-profit is (re)placed as a limit sell of the whole
position at ``floor_tick(avg * (1 + T/100))``. If ``p <= avg * (1 - S/100)``
everything is canceled and the position sold at ``floor_tick(p * 0.995)``. A
cycle ends when its position is sold; the next starts ``cooldown_seconds`` of
market time (``ts_recv``) later. Before its first order the bot waits for the
account's balances (phase ``checking``) and fails if the free quote balance
is below the worst-case capital ``base_quote + sum(quote_j)``.

The bot hears of its orders after the venue acts on them, so: at most one
sell is ever open (the old take-profit locks the base asset, so the new one
is placed once the old one is confirmed canceled or filled, and for what is
left of the position); new capital (base and safety orders) is placed only on
market events, and a new cycle only once every order of the last one is done;
a buy that fills after the sale reopens the cycle.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.ids import intent_id
from tradebus.common.markets import Market
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
from tradebus.common.positions import Position
from tradebus.strategy.core import BotBase, BotContext, OrderTracker, TrackedOrder

NS_PER_SECOND = 1_000_000_000
BASE_BUY_FACTOR = Decimal("1.005")
STOP_LOSS_SELL_FACTOR = Decimal("0.995")
MAX_SAFETY_ORDERS = 20


class MartingaleParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of STRATEGIES.md §2: money in the quote asset, percents in percent.

    ``cooldown_seconds`` is market time between a cycle's end and the next
    cycle; ``stop_loss_pct`` 0 means no stop-loss.
    """

    base_quote: Decimal
    safety_quote: Decimal
    max_safety_orders: int
    price_deviation_pct: Decimal
    take_profit_pct: Decimal
    step_scale: Decimal = ONE
    volume_scale: Decimal = ONE
    stop_loss_pct: Decimal = ZERO
    cooldown_seconds: Decimal = ZERO
    min_order_quote: Decimal = Decimal(10)
    cancel_on_exit: bool = True

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid field as ``(field, message)``; empty when valid."""
        out: list[tuple[str, str]] = []

        def check(name: str, ok: bool, message: str) -> None:
            if not ok:
                out.append((name, message))

        def ok(value: Decimal, low: Decimal, high: Decimal | None = None) -> bool:
            return value.is_finite() and value >= low and (high is None or value < high)

        n, d = self.max_safety_orders, self.price_deviation_pct
        check("base_quote", ok(self.base_quote, ZERO) and self.base_quote > 0, "must be > 0")
        sq = self.safety_quote
        check("safety_quote", ok(sq, ZERO) and (sq > 0 or n == 0), "must be > 0")
        check("max_safety_orders", 0 <= n <= MAX_SAFETY_ORDERS, "must be between 0 and 20")
        check("price_deviation_pct", ok(d, ZERO, HUNDRED) and d > 0, "must be > 0 and < 100")
        check("step_scale", ok(self.step_scale, ONE), "must be >= 1")
        check("volume_scale", ok(self.volume_scale, ONE), "must be >= 1")
        t = self.take_profit_pct
        check("take_profit_pct", ok(t, ZERO) and t > 0, "must be > 0")
        check(
            "stop_loss_pct",
            ok(self.stop_loss_pct, ZERO, HUNDRED),
            "must be >= 0 and < 100 (0 = none)",
        )
        check("cooldown_seconds", ok(self.cooldown_seconds, ZERO), "must be >= 0")
        check("min_order_quote", ok(self.min_order_quote, ZERO), "must be >= 0")
        if not out and n and deviation_pct(n, self) >= HUNDRED:
            deepest = deviation_pct(n, self)
            out.append(
                (
                    "price_deviation_pct",
                    f"safety order {n} would be {deepest} % below"
                    " the base price; the deepest must be < 100 %",
                )
            )
        return out


class SafetyLevel(msgspec.Struct, frozen=True, kw_only=True):
    """Safety order ``index`` (1..N): cumulative deviation (%), limit price, quantity, quote."""

    index: int
    deviation_pct: Decimal
    price: Decimal
    qty: Decimal
    quote: Decimal


def deviation_pct(j: int, params: MartingaleParams) -> Decimal:
    """``dev_j = d * (1 + s + ... + s**(j-1))`` in percent (STRATEGIES.md §2)."""
    s = params.step_scale
    return params.price_deviation_pct * sum((s**i for i in range(j)), ZERO)


def worst_case_capital(params: MartingaleParams) -> Decimal:
    """``base_quote + sum(safety_quote * v**(j-1), j = 1..N)`` in the quote asset (§2)."""
    v, n = params.volume_scale, params.max_safety_orders
    return params.base_quote + sum((params.safety_quote * v**j for j in range(n)), ZERO)


def base_order(p: Decimal, params: MartingaleParams, market: Market) -> tuple[Decimal, Decimal]:
    """``(price, qty)`` of the base order at reference price ``p`` (§2).

    ``price = floor_tick(p * 1.005)`` (marketable), ``qty = floor_step(base_quote / price)``,
    so the notional never exceeds ``base_quote``.
    """
    price = floor_to(p * BASE_BUY_FACTOR, market.tick_size)
    qty = floor_to(params.base_quote / price, market.step_size) if price > 0 else ZERO
    return price, qty


def plan_safety_orders(
    p_base: Decimal, params: MartingaleParams, market: Market
) -> list[SafetyLevel]:
    """The safety orders of a cycle whose base order filled at ``p_base`` (§2).

    ``price_j = floor_tick(P_base * (1 - dev_j/100))``,
    ``quote_j = safety_quote * v**(j-1)``, ``qty_j = floor_step(quote_j / price_j)``;
    a level whose price is not positive or whose notional is below
    ``min_order_quote`` is skipped.
    """
    levels = []
    for j in range(1, params.max_safety_orders + 1):
        dev = deviation_pct(j, params)
        price = floor_to(p_base * (ONE - dev / HUNDRED), market.tick_size)
        if price <= 0:
            continue
        quote = params.safety_quote * params.volume_scale ** (j - 1)
        qty = floor_to(quote / price, market.step_size)
        if qty > 0 and price * qty >= params.min_order_quote:
            levels.append(
                SafetyLevel(index=j, deviation_pct=dev, price=price, qty=qty, quote=quote)
            )
    return levels


Phase = Literal["checking", "waiting", "entering", "active", "stop_loss", "closing", "cooldown",
                "stopped", "failed"]  # fmt: skip
"""``checking``: waits for balances; ``waiting``: the next market event opens a cycle;
``entering``: the base order is out; ``active``: safety orders and take-profit rest;
``stop_loss``: cancels, then sells; ``closing``: sold, leftover orders being canceled;
``cooldown``: cycle done, the next waits for ``cooldown_until``."""
RUNNING = frozenset({"entering", "active", "stop_loss", "closing"})


class MartingaleState(msgspec.Struct, kw_only=True):
    """Everything a martingale bot remembers; ``snapshot()`` is this, encoded.

    ``safety_ids`` maps level j to the intent id of its latest order;
    ``unsettled`` maps a canceled order to the filled quantity its cancel
    reported, while some of those fills are still unheard; ``sold``: the
    position was sold (cycle over once nothing is open); ``end_pending``: the
    next market event stamps ``cycle_end_ts``.
    """

    phase: Phase = "checking"
    resume_phase: Phase = "checking"
    cycle: int = 0
    restarts: int = 0
    base_price: Decimal | None = None
    base_filled_quote: Decimal = ZERO
    base_filled_qty: Decimal = ZERO
    cycle_filled_quote: Decimal = ZERO
    cycle_filled_qty: Decimal = ZERO
    safeties_due: bool = False
    safety_ids: dict[int, str] = msgspec.field(default_factory=dict)
    safety_filled: int = 0
    tp_count: int = 0
    sl_count: int = 0
    tp_stale: bool = False
    sold: bool = False
    end_pending: bool = False
    cycle_end_ts: int | None = None
    unsettled: dict[str, Decimal] = msgspec.field(default_factory=dict)
    last_price: Decimal | None = None
    has_trade: bool = False
    last_ts: int = 0
    cycles_completed: int = 0
    error: str | None = None
    position: Position = msgspec.field(default_factory=Position)
    orders: OrderTracker = msgspec.field(default_factory=OrderTracker)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class MartingaleBot(BotBase):
    """A martingale bot: a pure core driven by the host (:class:`~tradebus.strategy.core.Strategy`).

    Legs: ``b`` base, ``s<j>`` safety j (``s<j>r<k>`` re-placed after restart
    k), ``tp<n>`` the n-th take-profit, ``sl``/``sl<n>`` stop-loss sells.
    """

    state_type = MartingaleState

    def __init__(
        self, ctx: BotContext, params: MartingaleParams, state: MartingaleState | None = None
    ):
        self.ctx = ctx
        self.params = params
        self.state = state or MartingaleState()
        self.worst_case = worst_case_capital(params)
        self._cooldown_ns = int(params.cooldown_seconds * NS_PER_SECOND)
        self._sl_trigger: Decimal | None = None  # avg * (1 - S/100), reset when avg moves

    # ------------------------------------------------------------ market input
    def on_trade(self, tick: TradeTick) -> list[Intent]:
        """A trade sets the reference price ``p`` and market time; then the cycle logic runs."""
        s = self.state
        s.last_price, s.has_trade, s.last_ts = tick.price, True, tick.ts_recv
        return self._on_market()

    def on_quote(self, tick: QuoteTick) -> list[Intent]:
        """A quote moves market time; it sets ``p`` to the mid only until the first trade."""
        s = self.state
        s.last_ts = tick.ts_recv
        if not s.has_trade:
            s.last_price = tick.mid
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
        if s.phase in ("entering", "active") and self._stop_loss_reached():
            s.phase, s.safeties_due = "stop_loss", False
        out = self._place_safeties() if s.phase == "active" and s.safeties_due else []
        return out + self._manage()

    def _cooled_down(self) -> bool:
        s = self.state
        end = s.cycle_end_ts
        return (end is None or s.last_ts >= end + self._cooldown_ns) and not self._busy()

    def _stop_loss_reached(self) -> bool:
        """``S > 0`` and ``p <= avg * (1 - S/100)`` (STRATEGIES.md §2)."""
        s, sl = self.state, self.params.stop_loss_pct
        if not sl or s.position.qty <= 0 or s.last_price is None:
            return False
        if self._sl_trigger is None:
            self._sl_trigger = s.position.open_cost / s.position.qty * (ONE - sl / HUNDRED)
        return s.last_price <= self._sl_trigger

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
        s.cycle_end_ts = None
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
            prev = s.orders.orders.get(s.safety_ids.get(lv.index, ""))
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
        if s.phase == "stop_loss":
            return self._manage_stop_loss()
        if s.phase == "closing":
            out = self._cancel(s.orders.open_orders())
            if not self._busy():
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
        if qty <= 0 or avg is None:
            return []
        price = floor_to(
            avg * (ONE + self.params.take_profit_pct / HUNDRED), self.ctx.market.tick_size
        )
        s.tp_count += 1
        return [self._sell(f"tp{s.tp_count}", price, qty)]

    def _manage_stop_loss(self) -> list[Intent]:
        """Cancel everything else; once no other sell is open, sell at ``floor_tick(p * 0.995)``."""
        s = self.state
        out = self._cancel([o for o in s.orders.open_orders() if not o.leg.startswith("sl")])
        qty = self._sellable()
        if qty > 0 and s.last_price is not None and not self._busy("sell"):
            s.sl_count += 1
            leg = "sl" if s.sl_count == 1 else f"sl{s.sl_count}"
            price = floor_to(s.last_price * STOP_LOSS_SELL_FACTOR, self.ctx.market.tick_size)
            out.append(self._sell(leg, price, qty))
        elif qty <= 0 and not self._busy():
            self._complete()
        return out

    def _complete(self) -> None:
        s = self.state
        s.cycles_completed += 1
        s.phase, s.safeties_due = "cooldown", False

    def _sell(self, leg: str, price: Decimal, qty: Decimal) -> Intent:
        s = self.state
        return s.orders.place(
            self.ctx, s.cycle, leg, "sell", price, qty, s.last_ts, s.last_ts, clamp_to_free=True
        )

    def _cancel(self, orders: list[TrackedOrder]) -> list[Intent]:
        s = self.state
        cancels = (s.orders.cancel(self.ctx, o, s.last_ts) for o in orders)
        return [c for c in cancels if c is not None]

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
        order = s.orders.orders.get(event.intent_id or "")
        if order is None:
            return []
        match event:
            case OrderAccepted():
                if order.status == "pending":
                    order.status = "accepted"
                if order.clamp_to_free and event.qty < order.qty:  # sold by hand (seed 001)
                    self._write_off(order.qty - event.qty)
                    order.qty = event.qty
            case OrderFilled():
                self._apply_fill(order, event)
            case OrderCanceled():
                order.status = "canceled"
                if event.filled_qty > order.filled:
                    s.unsettled[order.intent_id] = event.filled_qty
            case OrderRejected():
                order.status = "rejected"
                self._rejected(order, event)
        return self._manage() if s.phase in RUNNING else []

    def _rejected(self, order: TrackedOrder, event: OrderRejected) -> None:
        s, why = self.state, f"{event.reason}: {event.message}"
        if order.side == "sell" and order.clamp_to_free and event.reason == "insufficient_balance":
            self._write_off(s.position.qty)  # nothing left to sell: sold by hand
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
        s, market = self.state, self.ctx.market
        order.filled += fill.qty
        if order.filled >= order.qty and order.status != "filled":
            order.status = "filled"
            s.orders.filled += 1
            s.safety_filled += order.intent_id in s.safety_ids.values()
        reported = s.unsettled.get(order.intent_id)
        if reported is not None and order.filled >= reported:  # every fill now heard
            del s.unsettled[order.intent_id]
        fee = fill.fee if fill.fee_asset == market.quote else ZERO
        if fill.fee_asset == market.base:
            fee = fill.fee * fill.price
        qty = fill.qty
        if fill.side == "sell":  # spot: never below zero, whatever was written off
            qty = min(qty, max(s.position.qty, ZERO))
            if qty <= 0:
                return
            fee = fee * qty / fill.qty
        s.position.apply(fill.side, qty, fill.price, fee)
        self._sl_trigger = None
        if fill.side == "buy":
            s.cycle_filled_quote += qty * fill.price
            s.cycle_filled_qty += qty
            if order.leg == "b":
                s.base_filled_quote += qty * fill.price
                s.base_filled_qty += qty
            s.tp_stale, s.sold, s.end_pending, s.cycle_end_ts = True, False, False, None
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
        s, pos, prm, tick = self.state, self.state.position, self.params, self.ctx.market.tick_size
        p, avg = s.last_price, pos.avg_price
        unrealized = pos.unrealized_pnl(p) if p is not None else ZERO
        cost = pos.open_cost + pos.open_fees
        progress = tp_price = sl_price = None
        if avg is not None:
            tp_price = floor_to(avg * (ONE + prm.take_profit_pct / HUNDRED), tick)
            if prm.stop_loss_pct:
                sl_price = floor_to(avg * (ONE - prm.stop_loss_pct / HUNDRED), tick)
            if p is not None:
                pct = (p - avg) / avg * HUNDRED / prm.take_profit_pct * HUNDRED
                progress = max(ZERO, min(HUNDRED, pct))
        safeties = [o.price for o in s.orders.open_orders("buy") if o.leg != "b" and o.price]
        end = s.cycle_end_ts
        return BotStatus(
            bot=self.ctx.bot,
            user=self.ctx.user,
            account=self.ctx.account,
            strategy=self.ctx.strategy,
            venue=self.ctx.venue,
            symbol=self.ctx.market.symbol,
            phase=s.phase,
            run=self.ctx.run,
            cycle=s.cycle,
            orders_placed=s.orders.placed,
            orders_filled=s.orders.filled,
            open_orders=len(s.orders.open_orders()),
            filled_quote=s.cycle_filled_quote,
            filled_qty=s.cycle_filled_qty,
            avg_price=avg,
            position=pos.qty,
            last_price=p,
            position_value=pos.qty * p if p is not None else ZERO,
            unrealized_pnl=unrealized,
            unrealized_pct=unrealized / cost * HUNDRED if cost else ZERO,
            take_profit_progress_pct=progress or ZERO,
            cycles_completed=s.cycles_completed,
            realized_pnl=pos.realized_pnl,
            error=s.error,
            details={
                "worst_case_capital": str(self.worst_case),
                "base_price": _text(s.base_price),
                "safety_orders_filled": s.safety_filled,
                "max_safety_orders": prm.max_safety_orders,
                "take_profit_price": _text(tp_price),
                "stop_loss_price": _text(sl_price),
                "next_safety_price": _text(max(safeties, default=None)),
                "cooldown_until_ns": None if end is None else end + self._cooldown_ns,
            },
        )

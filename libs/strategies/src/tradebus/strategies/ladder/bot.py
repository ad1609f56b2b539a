"""The ``ladder`` strategy: incremental limit buys below the price, take-profit above.

Source: shared/STRATEGIES.md §1 (seeds 000 and 001). A cycle starts at the
reference price ``P0`` and rests ``n`` GTC limit buys down to
``P0 * (1 - D/100)``, each larger than the last by ``I`` percent. When the
price is ``T`` percent above the average fill price, the cycle's open buys are
cancelled and the position is sold with a marketable limit at
``floor_tick(p * 0.995)``; when that sell fills the cycle closes and (by
default) a new one starts at the current price. If no buy fills within ``M``
minutes, the buys are cancelled and a new cycle starts at the current price.

Exits beyond §1 (docs/strategies.md, "Exits"):
with ``stop_loss_pct`` S the position is sold the same way once
``p <= avg * (1 - S/100)`` (checked before the take-profit), and the bot then
stops unless ``restart_after_stop_loss``; with ``trailing_take_profit_pct`` Tr
reaching the take-profit only arms a trailing exit that follows the highest
price since and sells once ``p <= peak * (1 - Tr/100)`` (a buy fill disarms
it: the take-profit level moved).

Time is market time: the ``ts_recv`` of the events the host passes in, so a
replay behaves exactly like the live run it recorded.

New capital is committed only on market events (a new cycle starts at the
next price after the last one closed), never in answer to an order event, so
a paused bot (which the host no longer gives ticks) opens nothing new.

The take-profit sell asks execution to clamp it to the account's free base
balance (``clamp_to_free``): if the user sold part of the position by hand,
the accepted quantity is smaller and the bot writes the difference off its
position at average cost (seed 001's real-position check). If the account
holds less than one step, execution refuses the sell before anything reaches
the venue (``insufficient_balance``): the bot skips that take-profit (or
stop-loss), says so in its status ``error``, writes the position off and
closes the cycle.

The bot hears of its orders after the venue acts on them. So a new cycle
(new capital) starts only once every order of the last one is done: after a
take-profit when nothing is open and the position is sold; after a no-fill
restart when its cancels are confirmed, and only if nothing filled meanwhile
(if something did, the bot keeps it and takes profit on it instead). A bot
never has more than ``total_quote`` at the venue, however late it hears.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from tradebus.common.messages import (
    BotStatus,
    CancelRejected,
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
from tradebus.strategies.core import (
    BotBase,
    BotContext,
    TrackedOrder,
    Wake,
    apply_fill,
    flatten_long,
    is_close,
    note_quote,
    note_trade,
)
from tradebus.strategies.ladder.params import LadderError, LadderParams, plan_levels
from tradebus.strategies.ladder.state import Exit, LadderState
from tradebus.strategies.position_check import PositionCheck
from tradebus.strategies.status_fields import bot_status, position_figures, text_or_none

NS_PER_MINUTE = 60_000_000_000
TAKE_PROFIT_SELL_FACTOR = Decimal("0.995")
_EXIT_NAMES: dict[str, str] = {"take_profit": "take-profit", "stop_loss": "stop-loss"}
TP_SCREEN_MARGIN = Decimal("1e-20")
"""Relative margin of the cached take-profit screen; the exact test decides near the line."""


class LadderBot(BotBase[LadderParams, LadderState]):
    """A ladder bot: a pure core (:class:`~tradebus.strategies.core.Strategy`).

    Its parameters are :class:`~tradebus.strategies.ladder.params.LadderParams`,
    its memory :class:`~tradebus.strategies.ladder.state.LadderState`.
    """

    state_type = LadderState

    def __init__(self, ctx: BotContext, params: LadderParams, state: LadderState | None = None):
        super().__init__(ctx, params, state)
        self._no_fill_ns = int(params.no_fill_restart_minutes * NS_PER_MINUTE)
        self._tp_floor: Decimal | None = None  # below this price take-profit cannot be reached
        self._sl_trigger: Decimal | None = None  # avg * (1 - S/100), reset when avg moves

    # ------------------------------------------------------------ market input
    def on_trade(self, tick: TradeTick) -> list[Intent]:
        """A trade sets the reference price ``p``; then the cycle logic runs."""
        note_trade(self.state, tick)
        return self._on_price()

    def on_quote(self, tick: QuoteTick) -> list[Intent]:
        """A quote sets ``p`` to the mid only until the first trade; time moves on."""
        if note_quote(self.state, tick):
            return self._on_price()
        phase = self.state.phase  # p is the last trade price: a quote only moves time
        if phase == "waiting":
            return self._start_cycle()
        return self._on_time() if phase == "buying" else []

    def _on_price(self) -> list[Intent]:
        s = self.state
        if s.phase == "waiting":
            return self._start_cycle()
        if s.phase not in ("buying", "restarting"):
            return []
        if s.position.qty > 0:
            if self._stop_loss_reached():  # first: the stop-loss has priority
                return self._exit("stop_loss")
            if self._take_profit_due():
                return self._exit("take_profit")
        return self._on_time() if s.phase == "buying" else []

    def _on_time(self) -> list[Intent]:
        """No-fill restart: no buy filled ``M`` minutes (market time) into the cycle.

        The buys are cancelled first; the new cycle starts at the first price
        after the cancels are confirmed (:meth:`_maybe_restart`).
        """
        s = self.state
        waited = s.last_ts - s.cycle_start_ts
        if self._no_fill_ns and not s.cycle_buy_fills and waited >= self._no_fill_ns:
            s.phase = "restarting"
            cancels = self._cancel_open("buy")
            if cancels:
                return cancels
            self._maybe_restart()
            return self._start_cycle() if s.phase == "waiting" else []
        return []

    def _maybe_restart(self) -> None:
        """Wait for the next cycle once no buy is open; keep a position that filled meanwhile."""
        s = self.state
        if s.orders.open_orders("buy"):
            return
        # a buy filled before its cancel: hold it and take profit on it
        s.phase = "buying" if s.position.qty > 0 else "waiting"

    def _stop_loss_reached(self) -> bool:
        """``S > 0`` and ``p <= avg * (1 - S/100)`` (docs/strategies.md)."""
        trigger = self._stop_loss_trigger()
        p = self.state.last_price
        return trigger is not None and p is not None and p <= trigger

    def _stop_loss_trigger(self) -> Decimal | None:
        """``avg * (1 - S/100)``, cached until the average moves; None when S is 0."""
        sl, avg = self.params.stop_loss_pct, self.state.position.avg_price
        if not sl or avg is None:
            return None
        if self._sl_trigger is None:
            self._sl_trigger = avg * (ONE - sl / HUNDRED)
        return self._sl_trigger

    def _take_profit_due(self) -> bool:
        """Sell now for the take-profit? At once without trailing; with trailing
        ``Tr``, reaching the take-profit arms it (``trail_peak = p``), a higher
        ``p`` raises the peak, and ``p <= peak * (1 - Tr/100)`` sells."""
        s = self.state
        peak, p = s.trail_peak, s.last_price
        if peak is not None and p is not None:
            if p > peak:
                s.trail_peak = p
                return False
            return p <= self._trailing_trigger(peak)
        if not self._take_profit_reached():
            return False
        if not self.params.trailing_take_profit_pct:
            return True
        s.trail_peak = p
        return False

    def _trailing_trigger(self, peak: Decimal) -> Decimal:
        """``peak * (1 - Tr/100)``: at or below it an armed trailing take-profit sells."""
        return peak * (ONE - self.params.trailing_take_profit_pct / HUNDRED)

    def _take_profit_reached(self) -> bool:
        """``(p - avg) / avg * 100 >= T`` (STRATEGIES.md §1), screened by a cached price."""
        avg = self.state.position.avg_price
        p = self.state.last_price
        if not avg or p is None:  # no average (or zero: set it by hand, seed 001)
            return False
        if p < self._take_profit_floor(avg):
            return False
        return (p - avg) / avg * HUNDRED >= self.params.take_profit_pct

    def _take_profit_floor(self, avg: Decimal) -> Decimal:
        """A price a hair below ``avg * (1 + T/100)``: below it take-profit is not reached."""
        if self._tp_floor is None:
            trigger = avg * (ONE + self.params.take_profit_pct / HUNDRED)
            self._tp_floor = trigger - abs(trigger) * TP_SCREEN_MARGIN
        return self._tp_floor

    def wake(self) -> Wake | None:
        """The ticks that can make the bot act (see :meth:`Strategy.wake`).

        Every tick until the first trade (quote mids move ``p``) and while
        ``waiting`` (any price starts a cycle). Otherwise, while a position is
        held (``buying`` or ``restarting``): a trade at or above the
        take-profit screen (or, once the trailing take-profit is armed, at or
        above its peak, which such a trade raises), and a trade at or below the
        higher of the stop-loss trigger and the trailing trigger; and, while
        ``buying`` with no fill, the first tick ``M`` minutes into the cycle.
        ``closing``, ``flattening``, ``stopped`` and ``failed`` bots act on order
        events only.
        """
        s = self.state
        if not s.has_trade or s.phase == "waiting":
            return None
        above = below = None
        avg = s.position.avg_price
        if s.phase in ("buying", "restarting") and s.position.qty > 0 and avg:
            peak = s.trail_peak
            above = self._take_profit_floor(avg) if peak is None else peak
            lows = [self._stop_loss_trigger()]
            if peak is not None:
                lows.append(self._trailing_trigger(peak))
            below = max((x for x in lows if x is not None), default=None)
        at_ns = None
        if s.phase == "buying" and self._no_fill_ns and not s.cycle_buy_fills:
            at_ns = s.cycle_start_ts + self._no_fill_ns
        return Wake(trade_at_or_above=above, trade_at_or_below=below, at_ns=at_ns)

    # ------------------------------------------------------------------ cycles
    def _start_cycle(self) -> list[Intent]:
        s = self.state
        assert s.last_price is not None
        s.orders.forget_closed()
        s.cycle += 1
        s.cycle_start_ts = s.last_ts
        s.cycle_buy_fills = 0
        s.cycle_filled_quote = ZERO
        s.cycle_filled_qty = ZERO
        s.sells = 0
        s.trail_peak = None
        s.exit = "take_profit"
        try:
            levels = plan_levels(s.last_price, self.params, self.ctx.market)
        except LadderError as exc:
            s.phase = "failed"
            s.error = str(exc)
            return []
        s.phase = "buying"
        return [
            s.orders.place(
                self.ctx, s.cycle, f"b{lv.index}", "buy", lv.price, lv.qty, s.last_ts, s.last_ts
            )
            for lv in levels
        ]

    def _cancel_open(self, side: Literal["buy", "sell"] | None = None) -> list[Intent]:
        s = self.state
        return s.orders.cancel_all(self.ctx, s.orders.open_orders(side), s.last_ts)

    def _sell_position(self) -> list[Intent]:
        s = self.state
        qty = floor_to(s.position.qty, self.ctx.market.step_size)
        if qty <= 0 or s.last_price is None:
            return []
        price = floor_to(s.last_price * TAKE_PROFIT_SELL_FACTOR, self.ctx.market.tick_size)
        s.sells += 1
        return [
            s.orders.place(
                self.ctx,
                s.cycle,
                f"s{s.sells}",
                "sell",
                price,
                qty,
                s.last_ts,
                s.last_ts,
                clamp_to_free=True,
            )
        ]

    def _exit(self, why: Exit) -> list[Intent]:
        """Take profit or stop the loss: cancel the open buys, sell the position marketably."""
        self.state.phase, self.state.exit = "closing", why
        intents = self._cancel_open("buy") + self._sell_position()
        if intents:
            return intents
        self._maybe_close()
        return self._start_cycle() if self.state.phase == "waiting" else []

    def _maybe_close(self) -> list[Intent]:
        """Close the cycle once nothing is open; sell what late buy fills left over.

        A closed cycle waits for the next price to start the next one.
        """
        s = self.state
        if s.orders.open_orders():
            return []
        leftover = self._sell_position()
        if leftover:
            return leftover
        s.cycles_completed += 1
        s.trail_peak = None
        if s.exit == "stop_loss":
            s.stop_losses += 1
            restart = self.params.restart_after_stop_loss
        else:
            restart = self.params.restart_after_take_profit
        s.phase = "waiting" if restart else "stopped"
        return []

    # ------------------------------------------------------------ order events
    def on_order_event(self, event: OrderEvent) -> list[Intent]:
        """Track the bot's orders and position; close the cycle when its sell is done."""
        s = self.state
        order = s.orders.find(event.intent_id)
        if order is None:
            return []
        match event:
            case OrderAccepted():
                if cut := order.accept(event.qty):  # a clamped sell: sold by hand (seed 001)
                    self._write_off(cut)
            case OrderFilled():
                self._apply_fill(event)
            case OrderCanceled():
                order.status = "canceled"
            case OrderRejected():
                order.status = "rejected"
                if order.clamp_to_free and event.reason == "insufficient_balance":
                    self._skip_exit(order, event)  # nothing left to sell: sold by hand
                elif order.side == "sell":
                    what = "force exit" if is_close(order) else _EXIT_NAMES[s.exit]
                    s.phase = "failed"
                    s.error = f"{what} sell rejected: {event.reason}: {event.message}"
                else:  # the cycle goes on with its other levels; the status shows why
                    s.error = f"buy {order.leg} rejected: {event.reason}: {event.message}"
            case CancelRejected():
                pass
        if s.phase == "closing":
            return self._maybe_close()
        if s.phase == "flattening":
            return self._flatten_step()
        if s.phase == "restarting":
            self._maybe_restart()
        return []

    def _skip_exit(self, order: TrackedOrder, event: OrderRejected) -> None:
        """The account holds less than one step of the base asset: skip the sell, say why,
        and write the position off (the cycle then closes, :meth:`_maybe_close`)."""
        s, base = self.state, self.ctx.market.base
        s.error = (
            f"{_EXIT_NAMES[s.exit]} skipped: the account holds less than one step of the "
            f"bot's {order.qty} {base} ({event.message}); the bot's {s.position.qty} {base} "
            "is written off and the cycle closed"
        )
        self._write_off(s.position.qty)

    def _write_off(self, qty: Decimal) -> None:
        """The account holds less than the bot bought: drop the difference (seed 001)."""
        qty = min(qty, self.state.position.qty)
        if qty > 0:
            self.state.position.write_off(qty)
            self._tp_floor = self._sl_trigger = None

    def _apply_fill(self, fill: OrderFilled) -> None:
        s = self.state
        s.orders.record_fill(s.orders.orders[fill.intent_id], fill.qty)
        apply_fill(s.position, fill, self.ctx.market)
        self._tp_floor = self._sl_trigger = None  # the average moved
        if fill.side == "buy":
            s.trail_peak = None  # the take-profit level moved: trailing re-arms at the new one
            s.cycle_buy_fills += 1
            s.cycle_filled_quote += fill.qty * fill.price
            s.cycle_filled_qty += fill.qty

    # --------------------------------------------------------------- lifecycle
    def on_stop(self) -> list[Intent]:
        """Stop trading; cancel every open order if ``cancel_on_exit``."""
        self.state.phase = "stopped"
        return self._cancel_open() if self.params.cancel_on_exit else []

    def flatten(self) -> list[Intent]:
        """Force exit (docs/strategies.md, "Force exit"): cancel the open orders, then sell
        the position at market (clamped to the free base balance); ``stopped`` once sold."""
        self.state.phase = "flattening"
        return self._flatten_step()

    def _flatten_step(self) -> list[Intent]:
        s = self.state
        out = flatten_long(self.ctx, s, s.position.qty, s.cycle, s.last_ts)
        if out is None:
            s.phase = "stopped"
            return []
        return out

    def _on_restore(self) -> None:
        self._tp_floor = self._sl_trigger = None

    def on_restart(self) -> list[Intent]:
        """Started again after a stop: take profit on a held position, else a new cycle."""
        s = self.state
        if s.phase == "stopped":
            s.phase = "buying" if s.position.qty > 0 or s.orders.open_orders() else "waiting"
        return []

    def status(self) -> BotStatus:
        """The status block of STRATEGIES.md §1, with in ``details``: the ladder's resting
        buy levels (``open_levels``, the highest ``next_level_price`` and the lowest
        ``last_level_price``) and the take-profit price ``avg * (1 + T/100)``
        (``take_profit_price``) with its distance from the last price in percent
        (``take_profit_distance_pct``, ``(tp - p) / p * 100``; None without a position);
        the exits of docs/strategies.md: ``stop_loss_price`` ``avg * (1 - S/100)`` (None
        when off or without a position), ``stop_losses`` (cycles a stop-loss closed),
        ``trailing_peak`` and ``trailing_stop_price`` ``peak * (1 - Tr/100)`` (None
        until the trailing take-profit is armed)."""
        s, pos, t = self.state, self.state.position, self.params.take_profit_pct
        p, avg = s.last_price, pos.avg_price
        progress = ZERO
        tp_price = tp_distance = None
        if avg and p is not None:
            progress = max(ZERO, min(HUNDRED, (p - avg) / avg * HUNDRED / t * HUNDRED))
        if avg is not None and pos.qty > 0:
            tp_price = avg * (ONE + t / HUNDRED)
            if p:
                tp_distance = (tp_price - p) / p * HUNDRED
        levels = sorted(
            (o.price for o in s.orders.open_orders("buy") if o.price is not None), reverse=True
        )
        details: dict[str, str | int | bool | None] = {
            "open_levels": len(levels),
            "next_level_price": text_or_none(levels[0] if levels else None),
            "last_level_price": text_or_none(levels[-1] if levels else None),
            "take_profit_price": text_or_none(tp_price),
            "take_profit_distance_pct": text_or_none(tp_distance),
            "stop_loss_price": text_or_none(self._stop_loss_trigger() if pos.qty > 0 else None),
            "stop_losses": s.stop_losses,
            "trailing_peak": text_or_none(s.trail_peak),
            "trailing_stop_price": text_or_none(
                None if s.trail_peak is None else self._trailing_trigger(s.trail_peak)
            ),
        }
        return bot_status(
            self.ctx,
            s.orders,
            symbol=self.ctx.market.symbol,
            phase=s.phase,
            cycle=s.cycle,
            filled_quote=s.cycle_filled_quote,
            filled_qty=s.cycle_filled_qty,
            **position_figures(pos, p),
            take_profit_progress_pct=progress,
            cycles_completed=s.cycles_completed,
            error=s.error,
            details=details,
        )

    # ---------------------------------------------------------- position check
    def position_check(self) -> PositionCheck | None:
        """``params.position_check`` when enabled (docs/strategies.md "Position check")."""
        settings = self.params.position_check
        return settings if settings.enabled else None

    def tracked_position(self) -> Position:
        """The bot's position (base units, average cost in quote)."""
        return self.state.position

    def _reference_price(self) -> Decimal | None:
        return self.state.last_price

    def _position_moved(self) -> None:
        """An adoption, a write-off or a new average moves the take-profit line."""
        self._tp_floor = None

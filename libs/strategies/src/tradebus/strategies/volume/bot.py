"""The ``volume`` strategy: a one-triggers-other buy->sell loop toward a group volume target.

Source: shared/STRATEGIES.md §4 (seed 004). Every ``trade_interval_seconds``
of market time (the ``ts_recv`` of the ticks) the bot places a limit buy of
``single_trade_quote`` at ``floor_tick(p * (1 + buy_offset_pct/100))``; when it
is done at average fill price ``F``, a limit sell of the filled quantity at
``floor_tick(F * (1 + sell_profit_pct/100))``. A buy and its sell are a *loop*,
numbered as the intent ids' cycle (legs ``b``, ``s``; ``s2``... for a sell
placed again). The first interval fires at the first market event, later ones
at the first event at or after each point of the grid ``first + k * interval``
(no catching up after a gap). An interval that cannot buy (the last buy is
open, or ``max_open_sells`` loops wait for their sells) is skipped.

Group volume: the bots of one ``ctx.group`` share ``target_volume`` (quote,
summed filled buy notional). The bot takes the input
:attr:`~tradebus.strategies.core.BotInput.GROUP_VOLUME`: the host reads
:meth:`VolumeBot.own_volume` and reports the group through
:meth:`VolumeBot.on_group_volume`; the bot counts
``max(group total, own volume)``. It checks the target whenever that changes
(an own buy fill, a report) and at every interval; once reached it enters
``target_reached`` at once, cancels its open buy and buys no more. Resting
sells are kept: they close loops already bought.

One-triggers-other: seed 004 places OTO orders (the sell goes live when the buy
fills). The bot emulates them on every venue: it places the sell itself when it
hears of the buy's fill. No venue tradebus trades offers that order through ccxt's
unified API (:mod:`tradebus.execution.oto`); the status says ``oto: emulated`` and
why (``oto_why``, from the market's ``oto``).

Capital: a buy is placed only on a market event and only while fewer than
``max_open_sells`` loops hold base, so the quote at the venue (open buy plus
held cost) stays within ``single_trade_quote * max_open_sells`` however late
the bot hears of its fills. Order events only manage exposure (the sell after
a buy, cancels).

Partial fills: a buy is done when fully filled, or when it ends (cancelled,
rejected) after a partial fill; the sell is the quantity that filled. Sells
are clamped to the free base balance (``clamp_to_free``); a smaller accepted
quantity is written off at average cost (seed 001). A sell cancelled by
someone else, or by a stop, is placed again at the next interval of a running
bot; one rejected for another reason keeps its loop's slot and shows its
error until the bot is restarted.

Realized P&L is booked per loop (§4, rule 6; :class:`~tradebus.common.positions.CycleBook`
keyed by the loop's intent ids): a sell realizes against its own loop's buy,
``proceeds - cost - both fees``, whatever other loops are open.

Seed 004's group settings (docs/strategies.md): with ``max_price_volatility_pct``
the buys pause while the reference price moved more than that within
``volatility_window_seconds`` of market time; with ``max_concurrent_users`` the
bot buys only while it holds one of the group's turns (:meth:`VolumeBot.group_turn`,
the host's report in :meth:`VolumeBot.on_group_volume`).

This module holds the bot; the parameters and the pure pricing are in
:mod:`~tradebus.strategies.volume.params`, the loops and the state in
:mod:`~tradebus.strategies.volume.state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal

from tradebus.common.ids import cycle_of
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
from tradebus.common.money import HUNDRED, ZERO, floor_to
from tradebus.common.positions import CycleBook, Position
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
from tradebus.strategies.status_fields import bot_status, position_figures
from tradebus.strategies.volume.params import (
    PROGRESS_PLACES,
    VolumeParams,
    buy_order,
    interval_ns,
    progress_pct,
    sell_price,
    window_ns,
)
from tradebus.strategies.volume.state import Loop, PriceAt, VolumeState

OTO_EMULATION = "the bot places each sell when its buy fills"
"""How the volume loop's one-triggers-other order is made on every venue (STRATEGIES.md §4)."""
NO_OTO_OFFER = "no live venue reported an OTO order for this market (paper venue, markets file)"
"""The reason shown when the market's ``oto`` is empty (no ccxt venue answered for it)."""
IN_PLAY = ("waiting", "trading")
"""Phases in which a bot buys, or will: it holds or seeks a turn (``max_concurrent_users``)."""


class VolumeBot(BotBase[VolumeParams, VolumeState]):
    """A volume bot: a pure core (:class:`~tradebus.strategies.core.Strategy`).

    Input: its group's volume (:attr:`BotInput.GROUP_VOLUME`).
    """

    state_type = VolumeState
    inputs = frozenset({BotInput.GROUP_VOLUME})

    def __init__(self, ctx: BotContext, params: VolumeParams, state: VolumeState | None = None):
        super().__init__(ctx, params, state)
        self._interval_ns = interval_ns(params)
        self._window_ns = window_ns(params)

    # ------------------------------------------------------------ group volume
    def own_volume(self) -> Decimal:
        """This bot's filled buy notional: sum of fill qty * price (quote)."""
        return self.state.own_volume

    def group_volume(self) -> Decimal:
        """The group's volume as the bot knows it: ``max(reported total, own volume)``."""
        return max(self.state.group_volume, self.state.own_volume)

    def on_group_volume(
        self,
        total: Decimal,
        by_user: dict[str, Decimal],
        turns: Mapping[str, bool] | None = None,
    ) -> list[Intent]:
        """The host's report of the group's filled buy notional, in total and per user, and
        of its users in play (``turns``: user -> holds a turn, :meth:`group_turn`).

        Volume reports only raise what the bot knows (volume never shrinks; a
        stale report changes nothing). Places nothing; if the target is
        reached it cancels the open buy and enters ``target_reached`` at once.
        ``turns`` (None: not reported) replaces the bot's view of the group's
        turns, from which it may take one (``max_concurrent_users``).
        """
        s = self.state
        if total.is_finite():
            s.group_volume = max(s.group_volume, total)
        for user, volume in by_user.items():
            if volume.is_finite():
                s.user_volumes[user] = max(s.user_volumes.get(user, ZERO), volume)
        if turns is not None:
            s.turns = dict(turns)
        out = self._check_target()
        self._decide_turn()
        return out

    def group_turn(self) -> bool | None:
        """For the host's group report: None if the bot is out of play (stopped, or the
        target reached), else whether it holds a turn (always, without
        ``max_concurrent_users``)."""
        if self.state.phase not in IN_PLAY:
            return None
        return self.state.turn or not self.params.max_concurrent_users

    def _decide_turn(self) -> None:
        """Take a turn if one is free (docs/strategies.md): a bot holding one keeps it while
        in play; free turns (``max_concurrent_users`` minus the other users holding one)
        go to the waiting users in play, this one included, in the order of their names.
        No turn is taken before the host's first report of the group."""
        s, n = self.state, self.params.max_concurrent_users
        if s.phase not in IN_PLAY:
            s.turn = False
        elif not n:
            s.turn = True
        elif not s.turn and s.turns is not None:
            me = self.ctx.user
            holding = sum(1 for user, held in s.turns.items() if held and user != me)
            waiting = sorted({user for user, held in s.turns.items() if not held} | {me})
            s.turn = me in waiting[: max(0, n - holding)]

    def _turn_text(self) -> str:
        """The status of the bot's turn (``max_concurrent_users``)."""
        s, n = self.state, self.params.max_concurrent_users
        if s.turn:
            return "trading"
        if s.phase not in IN_PLAY:
            return "out of play"
        if s.turns is None:
            return "waiting for a turn: the group not heard yet"
        me = self.ctx.user
        holders = sorted(user for user, held in s.turns.items() if held and user != me)
        return f"waiting for a turn: {len(holders)} of {n} users trading ({', '.join(holders)})"

    def _reached(self) -> bool:
        return self.group_volume() >= self.params.target_volume

    def _check_target(self) -> list[Intent]:
        if self.state.phase in ("waiting", "trading") and self._reached():
            self.state.phase = "target_reached"
            return self._cancel(self.state.orders.open_orders("buy"))
        return []

    # ------------------------------------------------------------ market input
    def on_trade(self, tick: TradeTick) -> list[Intent]:
        """A trade sets the reference price ``p`` and moves time."""
        note_trade(self.state, tick)
        return self._on_event()

    def on_quote(self, tick: QuoteTick) -> list[Intent]:
        """A quote moves time; its mid is ``p`` only until the first trade."""
        note_quote(self.state, tick)
        return self._on_event()

    def _on_event(self) -> list[Intent]:
        """Run an interval if one is due (grid anchored at the first market event)."""
        s = self.state
        if s.phase == "waiting":
            s.phase = "trading"
        if s.phase in ("stopped", "flattening"):
            return []
        if s.next_buy_ts is None:
            s.next_buy_ts = s.last_ts
        if self.params.max_price_volatility_pct:
            self._watch_volatility()
        if s.last_ts < s.next_buy_ts:
            return []
        s.next_buy_ts += ((s.last_ts - s.next_buy_ts) // self._interval_ns + 1) * self._interval_ns
        out = self._resell()
        if self._reached():
            return out + self._check_target()
        s.phase = "trading"  # a raised target (new params on a restored state) resumes
        self._decide_turn()
        return out + self._buy()

    def _watch_volatility(self) -> None:
        """Keep the window's high and low of ``p`` and pause or resume the buys
        (``max_price_volatility_pct``; docs/strategies.md)."""
        s, p, now = self.state, self.state.last_price, self.state.last_ts
        if p is None:
            return
        highs, lows = s.highs, s.lows
        while highs and highs[-1].price <= p:
            highs.pop()
        highs.append(PriceAt(now, p))
        while lows and lows[-1].price >= p:
            lows.pop()
        lows.append(PriceAt(now, p))
        start = now - self._window_ns
        while highs[0].ts < start:
            highs.pop(0)
        while lows[0].ts < start:
            lows.pop(0)
        high, low, limit = highs[0].price, lows[0].price, self.params.max_price_volatility_pct
        moved = (high - low) / low * HUNDRED if low > 0 else ZERO
        s.pause = None
        if moved > limit:
            s.pause = (
                f"buying paused: the price moved {moved.quantize(PROGRESS_PLACES, ROUND_DOWN)}% "
                f"({low} to {high}) within {self.params.volatility_window_seconds} s, "
                f"above max_price_volatility_pct={limit}"
            )

    def _buy(self) -> list[Intent]:
        """The interval's buy, unless the last buy is open or too many sells wait."""
        s, market = self.state, self.ctx.market
        p, quote = s.last_price, self.params.single_trade_quote
        busy = s.orders.open_orders("buy") or self._waiting_sells() >= self.params.max_open_sells
        if p is None or busy or s.pause is not None or not s.turn:
            return []
        price, qty = buy_order(p, self.params, market)
        if qty <= 0 or price * qty < self.params.min_order_quote:
            s.buy_error = (
                f"buy skipped: single_trade_quote={quote} buys {qty} at {price} (step "
                f"{market.step_size}), below min_order_quote={self.params.min_order_quote}"
            )
            return []
        s.buy_error = None
        s.orders.forget_closed()
        s.loop += 1
        order = s.orders.place(self.ctx, s.loop, "b", "buy", price, qty, s.last_ts, s.last_ts)
        s.loops.append(Loop(cycle=s.loop, buy_id=order.intent_id))
        return [order]

    # ------------------------------------------------------------------- loops
    def _waiting_sells(self) -> int:
        """Loops whose buy is done and whose base is not yet sold."""
        step = self.ctx.market.step_size
        return sum(1 for lp in self.state.loops if lp.buy_done and floor_to(lp.unsold, step) > 0)

    def _sell_open(self, loop: Loop) -> bool:
        order = self.state.orders.find(loop.sell_id)
        return order is not None and order.is_open

    def _may_sell(self) -> bool:
        """Sells are placed while trading, and while stopped if the orders were to stay."""
        phase = self.state.phase
        return phase in ("trading", "target_reached") or (
            phase == "stopped" and not self.params.cancel_on_exit
        )

    def _place_sell(self, loop: Loop) -> list[Intent]:
        """Sell the loop's unsold base at ``floor_tick(F * (1 + sell_profit_pct/100))``."""
        s, market = self.state, self.ctx.market
        qty = floor_to(loop.unsold, market.step_size)
        price = sell_price(loop.cost / loop.qty, self.params, market)
        loop.sells += 1
        leg = "s" if loop.sells == 1 else f"s{loop.sells}"
        order = s.orders.place(
            self.ctx, loop.cycle, leg, "sell", price, qty, s.last_ts, s.last_ts, clamp_to_free=True
        )
        loop.sell_id = order.intent_id
        return [order]

    def _settle(self, loop: Loop, again: bool = False) -> list[Intent]:
        """A sell for a done loop with no open sell (``again``: also after an earlier one);
        close the loop once nothing sellable is left (dust below a step stays held)."""
        if not loop.buy_done or self._sell_open(loop):
            return []
        if floor_to(loop.unsold, self.ctx.market.step_size) > 0:
            ok = (again or loop.sells == 0) and not loop.stuck and self._may_sell()
            return self._place_sell(loop) if ok else []
        self.state.loops.remove(loop)  # sold, written off, or nothing bought
        if loop.sold > 0:
            self.state.cycles_completed += 1
        return []

    def _resell(self) -> list[Intent]:
        """At an interval: a sell for every done loop whose base rests on no sell."""
        out: list[Intent] = []
        for loop in list(self.state.loops):
            out += self._settle(loop, again=True)
        return out

    def _cancel(self, orders: list[TrackedOrder]) -> list[Intent]:
        return self.state.orders.cancel_all(self.ctx, orders, self.state.last_ts)

    # ------------------------------------------------------------ order events
    def on_order_event(self, event: OrderEvent) -> list[Intent]:
        """Track orders, position and volume; sell a done buy; check the target."""
        s = self.state
        order = s.orders.find(event.intent_id)
        if order is None:
            return []
        loop = next((lp for lp in s.loops if event.intent_id in (lp.buy_id, lp.sell_id)), None)
        match event:
            case OrderAccepted():
                if cut := order.accept(event.qty):  # a clamped sell: sold by hand (seed 001)
                    self._write_off(loop, cut)
                    if order.filled >= order.qty and order.is_open:
                        order.status = "filled"
                        s.orders.filled += 1
            case OrderFilled():
                self._apply_fill(order, loop, event)
            case OrderCanceled():
                if order.is_open:
                    order.status = "canceled"
            case OrderRejected():
                order.status = "rejected"
                what = f"{order.side} {order.intent_id} rejected: {event.reason}: {event.message}"
                if order.side == "buy":
                    s.buy_error = what
                elif loop is not None:
                    if order.clamp_to_free and event.reason == "insufficient_balance":
                        self._write_off(loop, loop.unsold)  # nothing left to sell: sold by hand
                    if floor_to(loop.unsold, self.ctx.market.step_size) > 0:
                        s.error, loop.stuck = what, True
            case CancelRejected():
                pass
        out: list[Intent] = []
        if loop is not None:
            if order.side == "buy" and not order.is_open:
                loop.buy_done = True
            out = self._settle(loop)
        if s.phase == "flattening":
            return out + self._flatten_step()
        return out + self._check_target()

    def _write_off(self, loop: Loop | None, qty: Decimal) -> None:
        """The account holds less than the loop bought: drop the difference (seed 001)."""
        if loop is None:
            return
        cycle = cycle_of(loop.buy_id)
        qty = min(qty, self.state.book.held(cycle))
        if qty > 0:
            self.state.book.write_off(cycle, qty)
            loop.written_off += qty

    def _apply_fill(self, order: TrackedOrder, loop: Loop | None, fill: OrderFilled) -> None:
        s = self.state
        if order.filled + fill.qty > order.qty:
            return  # more than the order's quantity: a repeated event, already counted
        order.filled += fill.qty
        if order.is_open and (order.filled >= order.qty or fill.leaves_qty <= 0):
            order.status = "filled"
            s.orders.filled += 1
        qty, fee = booked_change(fill, self.ctx.market)
        s.book.apply(cycle_of(fill.intent_id), fill.side, qty, fill.price, fee)
        if fill.side == "buy":
            s.own_volume += fill.qty * fill.price
            if loop is not None:
                loop.qty += qty  # what the account received (net of a base-asset fee)
                loop.cost += qty * fill.price
        elif loop is not None:
            loop.sold += fill.qty

    def _on_restore(self) -> None:
        """A snapshot from before loops were booked apart (one average-cost ``position``):
        each open loop's cycle gets its unsold base at the loop's buy price and its share
        of the open fees; what was realized so far stays realized."""
        s = self.state
        old, s.position = s.position, None
        if old is None:
            return
        held, fees = old.qty, old.open_fees
        book = s.book = CycleBook(total=old)
        book.total.qty, book.total.open_cost, book.total.open_fees = ZERO, ZERO, ZERO
        for loop in s.loops:
            unsold = loop.unsold
            if unsold > 0 and loop.qty > 0 and held > 0:
                book.cycles[cycle_of(loop.buy_id)] = Position(
                    qty=unsold,
                    open_cost=loop.cost * unsold / loop.qty,
                    open_fees=fees * unsold / held,
                )
        for position in book.cycles.values():
            book.total.qty += position.qty
            book.total.open_cost += position.open_cost
            book.total.open_fees += position.open_fees

    # --------------------------------------------------------------- lifecycle
    def on_stop(self) -> list[Intent]:
        """Stop trading; cancel every open order (the buy and the sells) if ``cancel_on_exit``."""
        self.state.phase = "stopped"
        return self._cancel(self.state.orders.open_orders()) if self.params.cancel_on_exit else []

    def flatten(self) -> list[Intent]:
        """Force exit (docs/strategies.md, "Force exit"): cancel the open buy and sells;
        once nothing is open, sell every loop's unsold base at market, one order per loop
        (the loop's own sell, so its P&L stays the loop's); ``stopped`` once sold. A loop
        whose close is rejected keeps its base and shows the error."""
        self.state.phase = "flattening"
        return self._flatten_step()

    def _flatten_step(self) -> list[Intent]:
        s, step = self.state, self.ctx.market.step_size
        out = cancel_all_but_closes(self.ctx, s, s.last_ts)
        if s.orders.open_orders():
            return out
        for loop in list(s.loops):
            qty = floor_to(loop.unsold, step)
            if qty > 0 and not loop.stuck:
                close = place_close(
                    self.ctx, s, loop.cycle, "sell", qty, s.last_ts, clamp_to_free=True
                )
                loop.sells += 1
                loop.sell_id = close.intent_id
                out.append(close)
            elif qty <= 0:
                out += self._settle(loop)  # nothing sellable left: the loop is over
        if not s.orders.open_orders():
            s.phase = "stopped"
        return out

    def on_restart(self) -> list[Intent]:
        """Go on from the kept state: the next interval sells what waits and buys as usual.

        Rejected sells are tried again (the user may have fixed the cause).
        """
        s = self.state
        if s.phase == "stopped":
            s.phase = "waiting" if s.last_price is None else "trading"
            s.error = None
            for loop in s.loops:
                loop.stuck = False
        return self._check_target()

    def status(self) -> BotStatus:
        """The status block of STRATEGIES.md §4: target, group total, progress, per-user
        volume; and ``oto: emulated`` with why (``oto_why``: what the venue offers, the
        market's :attr:`~tradebus.common.markets.Market.oto`)."""
        s, pos, target = self.state, self.state.book.total, self.params.target_volume
        group = self.group_volume()
        progress = progress_pct(group, target)
        users = dict(s.user_volumes)
        users[self.ctx.user] = max(users.get(self.ctx.user, ZERO), s.own_volume)
        details: dict[str, str | int | bool | None] = {
            "group": self.ctx.group,
            "strategy_name": self.params.strategy_name or self.ctx.group,
            "target_volume": str(target),
            "group_volume": str(group),
            "progress_pct": str(progress),
            "own_volume": str(s.own_volume),
            "open_sells": self._waiting_sells(),
            "oto": "emulated",
            "oto_why": f"{self.ctx.market.oto or NO_OTO_OFFER}; {OTO_EMULATION}",
        }
        details.update({f"user_volume.{u}": str(v) for u, v in sorted(users.items())})
        if self.params.max_price_volatility_pct:
            details["buying_paused"] = s.pause
        if self.params.max_concurrent_users:
            details["turn"] = self._turn_text()
        return bot_status(
            self.ctx,
            s.orders,
            symbol=self.ctx.market.symbol,
            phase=s.phase,
            cycle=s.loop,
            filled_quote=s.own_volume,
            filled_qty=pos.bought_qty,
            **position_figures(pos, s.last_price),
            cycles_completed=s.cycles_completed,
            error=s.error or s.buy_error,
            details=details,
        )

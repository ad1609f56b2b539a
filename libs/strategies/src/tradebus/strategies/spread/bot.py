"""The ``spread`` strategy: two-coin spread reversion (short the leader, long the laggard).

Source: shared/STRATEGIES.md §3 (seed 003). A round takes reference prices
``ref_a``, ``ref_b`` (quote per base) when it starts; then
``chg_x = (p_x / ref_x - 1) * 100`` and ``spread = chg_a - chg_b`` (percent
points). ``p_x`` is the last trade price of ``x``, or its quote mid until its
first trade.

* Entry: ``spread >= E`` shorts A and longs B, ``spread <= -E`` longs A and
  shorts B; each leg ``leg_quote`` of notional, ``qty = floor_step(leg_quote / p)``.
* Add k (in order): ``|spread| >= adds[k].spread_pct`` in the round's
  direction opens both legs again with ``leg_quote * adds[k].multiplier``.
* Exit: ``reversion`` when ``|spread| <= exit_spread_pct``; ``position`` when
  the legs' unrealized P&L >= ``profit_pct`` % of open notional
  (``sum |qty| * avg``); stop-loss when it is <= ``-stop_loss_pct`` % of it.
  Both legs are closed; when both are flat the round ends and the next market
  event takes new references (a new round, the next ``cycle`` of intent ids).

Every order is a GTC marketable limit: buys at ``floor_tick(p * 1.005)``,
sells at ``floor_tick(p * 0.995)``. A pair with a leg under ``min_order_quote``
(``floor_step(quote / p) * p < m``) is not placed at all (STRATEGIES.md §3):
such an add is skipped and the next one may follow at the same decision;
such an entry fails the bot with the leg and amount named; and if
``leg_quote < min_order_quote`` the bot fails at once, it can never trade.
Legs are on perpetual (or margin) markets, so sells
are never clamped to the free balance, except the closing sell of a long leg
on a spot market (seed 001's real-position check, as in the ladder).

The bot acts only when every order of the round is answered and done: no add,
exit or close while a leg is still open. New capital (entry, adds) is
committed only on market events; order events only manage exposure. A leg of
an entry or add that ends unfilled (rejected, or canceled before it filled)
breaks the hedge: once nothing is open the round is closed. After a rejected
leg the bot then fails with the reason (the next round would be refused the
same way); a rejected close fails the bot at once, the position stays open.
Time is market time (``ts_recv``); no clock, no I/O.

This module holds the bot; the parameters and their validation are in
:mod:`~tradebus.strategies.spread.params`, the state in
:mod:`~tradebus.strategies.spread.state`.
"""

from __future__ import annotations

from decimal import Decimal

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
    Side,
    TradeTick,
)
from tradebus.common.money import HUNDRED, ZERO, floor_to
from tradebus.common.positions import Position
from tradebus.strategies.core import (
    BotBase,
    BotContext,
    apply_fill,
    cancel_all_but_closes,
    is_close,
    place_close,
)
from tradebus.strategies.spread.params import SpreadParams
from tradebus.strategies.spread.state import Direction, SpreadState
from tradebus.strategies.status_fields import bot_status, text_or_none

BUY_FACTOR = Decimal("1.005")
SELL_FACTOR = Decimal("0.995")


class SpreadBot(BotBase[SpreadParams, SpreadState]):
    """A spread bot: a pure core (:class:`~tradebus.strategies.core.Strategy`)."""

    state_type = SpreadState

    def __init__(self, ctx: BotContext, params: SpreadParams, state: SpreadState | None = None):
        super().__init__(ctx, params, state)
        self._a, self._b = params.symbol_a, params.symbol_b
        self._markets = {s: ctx.market_of(s) for s in (self._a, self._b)}

    # ------------------------------------------------------------ market input
    def on_trade(self, tick: TradeTick) -> list[Intent]:
        """A trade sets ``p`` of its symbol; then the round logic runs."""
        return self._on_tick(tick.symbol, tick.price, tick.ts_recv, trade=True)

    def on_quote(self, tick: QuoteTick) -> list[Intent]:
        """A quote sets ``p`` to its mid until that symbol's first trade; time moves on."""
        return self._on_tick(tick.symbol, tick.mid, tick.ts_recv, trade=False)

    def _on_tick(self, symbol: str, price: Decimal, ts: int, trade: bool) -> list[Intent]:
        s = self.state
        if symbol not in self._markets:
            return []
        if trade or not s.traded.get(symbol):
            s.prices[symbol] = price
        s.traded[symbol] = s.traded.get(symbol, False) or trade
        s.last_ts = ts
        return self._step()

    def _step(self) -> list[Intent]:
        s = self.state
        if s.phase == "waiting" and self._a in s.prices and self._b in s.prices:
            self._start_round()
        if s.phase not in ("watching", "open", "closing") or s.orders.open_orders():
            return []
        if s.phase == "closing" or s.broken:
            return self._close()
        chg = self._changes()
        assert chg is not None
        spread = chg[0] - chg[1]
        if s.phase == "watching":
            e = self.params.entry_spread_pct
            direction: Direction = "short_a" if spread >= e else "long_a" if spread <= -e else ""
            if not direction:
                return []
            out, under = self._open_legs(direction, self.params.leg_quote, 0)
            if under is not None:
                s.phase, s.error = "failed", f"entry not placed: {under}; raise leg_quote"
                return []
            s.direction, s.phase = direction, "open"
            return out
        if self._exit_reached(spread):
            return self._close()
        return self._add(spread)

    def _changes(self) -> tuple[Decimal, Decimal] | None:
        """``(chg_a, chg_b)`` in percent (None before the round's references)."""
        s = self.state
        if s.ref_a is None or s.ref_b is None:
            return None
        chg_a = (s.prices[self._a] / s.ref_a - 1) * HUNDRED
        return chg_a, (s.prices[self._b] / s.ref_b - 1) * HUNDRED

    # ------------------------------------------------------------------ rounds
    def _start_round(self) -> None:
        s, p = self.state, self.params
        s.orders.forget_closed()
        s.round += 1
        s.ref_a, s.ref_b = s.prices[self._a], s.prices[self._b]
        s.direction, s.adds_done, s.closes = "", 0, 0
        s.broken = s.round_traded = False
        s.phase = "watching"
        if p.leg_quote < p.min_order_quote:
            s.phase = "failed"
            s.error = (
                f"leg_quote={p.leg_quote} is below min_order_quote={p.min_order_quote}: "
                "no leg can ever be placed; raise leg_quote"
            )

    def _open_legs(
        self, direction: Direction, quote: Decimal, index: int
    ) -> tuple[list[Intent], str | None]:
        """Both legs of ``quote`` notional each (A first), or none and why: the first leg
        under the minimum (``qty = floor_step(quote / p)``, kept only if
        ``qty * p >= min_order_quote``)."""
        s = self.state
        a_side: Side = "sell" if direction == "short_a" else "buy"
        b_side: Side = "buy" if a_side == "sell" else "sell"
        legs = []
        for symbol, side, name in ((self._a, a_side, "a"), (self._b, b_side, "b")):
            price = s.prices[symbol]
            qty = floor_to(quote / price, self._markets[symbol].step_size)
            if qty <= 0 or qty * price < self.params.min_order_quote:
                return [], (
                    f"the {symbol} leg of {quote} at {price} is {qty} ({qty * price}),"
                    f" below min_order_quote={self.params.min_order_quote}"
                )
            legs.append((symbol, f"{name}{index}", side, qty))
        return [self._place(sym, leg, side, qty) for sym, leg, side, qty in legs], None

    def _add(self, spread: Decimal) -> list[Intent]:
        """Add ``adds[adds_done]`` once the spread reaches it in the round's direction; an
        add with a leg under the minimum is skipped and the next one is looked at."""
        s, p = self.state, self.params
        signed = spread if s.direction == "short_a" else -spread
        while s.adds_done < len(p.adds) and signed >= p.adds[s.adds_done].spread_pct:
            quote = p.leg_quote * p.adds[s.adds_done].multiplier
            out, _under = self._open_legs(s.direction, quote, s.adds_done + 1)
            s.adds_done += 1  # placed, or skipped for good (STRATEGIES.md §3)
            if out:
                return out
        return []

    def _exit_reached(self, spread: Decimal) -> bool:
        """Stop-loss or take-profit (STRATEGIES.md §3) on the round's open legs."""
        tp, sl = self.params.take_profit, self.params.stop_loss_pct
        unrealized, notional = self._unrealized(), self._open_notional()
        if sl > 0 and unrealized <= -sl / HUNDRED * notional:
            return True
        if tp.mode == "reversion":
            assert tp.exit_spread_pct is not None
            return abs(spread) <= tp.exit_spread_pct
        assert tp.profit_pct is not None
        return unrealized >= tp.profit_pct / HUNDRED * notional

    def _close(self) -> list[Intent]:
        """Close both legs marketably; end the round when both are flat."""
        s = self.state
        s.phase = "closing"
        out: list[Intent] = []
        for name, symbol, pos in (("a", self._a, s.pos_a), ("b", self._b, s.pos_b)):
            qty = floor_to(abs(pos.qty), self._markets[symbol].step_size)
            if qty > 0:
                side: Side = "sell" if pos.qty > 0 else "buy"
                spot = self._markets[symbol].kind == "spot"
                leg = f"{name}c{s.closes + 1}"
                out.append(self._place(symbol, leg, side, qty, side == "sell" and spot, not spot))
        if out:
            s.closes += 1
        else:
            self._end_round()
        return out

    def _end_round(self) -> None:
        s = self.state
        if s.round_traded:
            s.rounds_completed += 1
        s.direction, s.adds_done, s.broken = "", 0, False
        s.ref_a = s.ref_b = None
        s.phase = "failed" if s.fail_after_close else "waiting"

    def _limit(self, symbol: str, side: Side) -> Decimal:
        """Marketable limit: ``floor_tick(p * 1.005)`` to buy, ``floor_tick(p * 0.995)`` to sell."""
        factor = BUY_FACTOR if side == "buy" else SELL_FACTOR
        return floor_to(self.state.prices[symbol] * factor, self._markets[symbol].tick_size)

    def _place(
        self,
        symbol: str,
        leg: str,
        side: Side,
        qty: Decimal,
        clamp: bool = False,
        reduce_only: bool = False,
    ) -> Intent:
        """A marketable GTC limit, id ``<bot>:<run>.<round>:<leg>``, live from the next event;
        a close on a perpetual market is reduce-only."""
        s, ts, price = self.state, self.state.last_ts, self._limit(symbol, side)
        return s.orders.place(
            self.ctx,
            s.round,
            leg,
            side,
            price,
            qty,
            ts,
            ts,
            symbol=symbol,
            clamp_to_free=clamp,
            reduce_only=reduce_only,
        )

    # ------------------------------------------------------------ order events
    def on_order_event(self, event: OrderEvent) -> list[Intent]:
        """Track orders and leg positions; close a broken or exiting round when all is answered."""
        s = self.state
        order = s.orders.find(event.intent_id)
        if order is None:
            return []
        # a0, b0, a1..: entry/adds; ac1, bc1..: closes; f1, f2..: a force exit's closes
        closing_leg = order.leg[1:2] == "c" or is_close(order)
        match event:
            case OrderAccepted():
                if cut := order.accept(event.qty):  # a clamped spot sell: sold by hand
                    self._write_off(order.symbol, cut)
            case OrderFilled():
                self._apply_fill(event)
            case OrderCanceled():
                order.status = "canceled"
                s.broken = s.broken or (not closing_leg and order.filled < order.qty)
            case OrderRejected():
                order.status = "rejected"
                why = f"{event.reason}: {event.message}"
                if order.clamp_to_free and event.reason == "insufficient_balance":
                    self._write_off(order.symbol, abs(self._pos(order.symbol).qty))
                elif closing_leg:
                    s.phase = "failed"
                    s.error = f"close of {order.symbol} rejected: {why}; its position stays open"
                else:
                    s.broken = s.fail_after_close = True
                    s.error = f"{order.side} {order.symbol} ({order.leg}) rejected: {why}"
            case CancelRejected():
                pass
        if s.phase == "flattening":
            return self._flatten_step()
        quiet = not s.orders.open_orders()
        if quiet and (s.phase == "closing" or (s.phase == "open" and s.broken)):
            return self._close()
        return []

    def _pos(self, symbol: str) -> Position:
        return self.state.pos_a if symbol == self._a else self.state.pos_b

    def _write_off(self, symbol: str, qty: Decimal) -> None:
        """A spot leg holds less than the bot bought (sold by hand): drop the difference."""
        if (qty := min(qty, abs(self._pos(symbol).qty))) > 0:
            self._pos(symbol).write_off(qty)

    def _apply_fill(self, fill: OrderFilled) -> None:
        s = self.state
        order = s.orders.orders[fill.intent_id]
        s.orders.record_fill(order, fill.qty)
        apply_fill(self._pos(order.symbol), fill, self._markets[order.symbol])
        s.round_traded = True

    # --------------------------------------------------------------- lifecycle
    def on_stop(self) -> list[Intent]:
        """Stop trading (positions stay open); cancel open orders if ``cancel_on_exit``."""
        s = self.state
        if s.phase != "stopped":
            s.resume_phase = s.phase
        s.phase = "stopped"
        if not self.params.cancel_on_exit:
            return []
        return s.orders.cancel_all(self.ctx, s.orders.open_orders(), s.last_ts)

    def flatten(self) -> list[Intent]:
        """Force exit (docs/strategies.md, "Force exit"): cancel the open orders, then close
        both legs at market (reduce-only on a perpetual, clamped on a spot sell); once both
        are flat the round ends and the bot is ``stopped`` (started again: a new round)."""
        self.state.phase = "flattening"
        return self._flatten_step()

    def _flatten_step(self) -> list[Intent]:
        s = self.state
        out = cancel_all_but_closes(self.ctx, s, s.last_ts)
        if s.orders.open_orders():
            return out
        for symbol, pos in ((self._a, s.pos_a), (self._b, s.pos_b)):
            market = self._markets[symbol]
            qty = floor_to(abs(pos.qty), market.step_size)
            if qty > 0:
                side: Side = "sell" if pos.qty > 0 else "buy"
                spot = market.kind == "spot"
                out.append(
                    place_close(
                        self.ctx,
                        s,
                        s.round,
                        side,
                        qty,
                        s.last_ts,
                        symbol=symbol,
                        clamp_to_free=side == "sell" and spot,
                        reduce_only=not spot,
                    )
                )
        if s.orders.open_orders():
            return out
        s.direction, s.adds_done, s.broken = "", 0, False
        s.ref_a = s.ref_b = None
        s.phase, s.resume_phase = "stopped", "waiting"
        return out

    def on_restart(self) -> list[Intent]:
        """Go on from the phase the stop interrupted (a broken round is closed at the next tick)."""
        s = self.state
        if s.phase == "stopped":
            s.phase = s.resume_phase
        return []

    # ------------------------------------------------------------------ status
    def _unrealized(self) -> Decimal:
        """Both legs' unrealized P&L at the current prices (quote; open fees deducted)."""
        prices = self.state.prices
        return sum((self._pos(x).unrealized_pnl(p) for x, p in prices.items()), ZERO)

    def _open_notional(self) -> Decimal:
        """``sum |qty| * avg`` over the legs (quote)."""
        return abs(self.state.pos_a.open_cost) + abs(self.state.pos_b.open_cost)

    def status(self) -> BotStatus:
        """The status block; ``details`` holds the spread, references and both legs."""
        s = self.state
        chg = self._changes()
        unrealized, notional = self._unrealized(), self._open_notional()
        details: dict[str, str | int | bool | None] = {
            "spread_pct": text_or_none(chg[0] - chg[1]) if chg else None,
            "chg_a_pct": text_or_none(chg[0]) if chg else None,
            "chg_b_pct": text_or_none(chg[1]) if chg else None,
            "ref_a": text_or_none(s.ref_a),
            "ref_b": text_or_none(s.ref_b),
            "direction": s.direction or None,
            "adds_done": s.adds_done,
            "open_notional": str(notional),
        }
        for x in (self._a, self._b):
            pos, p = self._pos(x), s.prices.get(x)
            details[f"{x}.price"] = text_or_none(p)
            details[f"{x}.position"] = str(pos.qty)
            details[f"{x}.avg_price"] = text_or_none(pos.avg_price)
            details[f"{x}.unrealized_pnl"] = str(pos.unrealized_pnl(p) if p is not None else ZERO)
            details[f"{x}.realized_pnl"] = str(pos.realized_pnl)
        gross = sum((abs(self._pos(x).qty) * s.prices.get(x, ZERO) for x in self._markets), ZERO)
        return bot_status(
            self.ctx,
            s.orders,
            symbol=f"{self._a}/{self._b}",
            phase=s.phase,
            cycle=s.round,
            position_value=gross,
            unrealized_pnl=unrealized,
            unrealized_pct=unrealized / notional * HUNDRED if notional else ZERO,
            cycles_completed=s.rounds_completed,
            realized_pnl=s.pos_a.realized_pnl + s.pos_b.realized_pnl,
            error=s.error,
            details=details,
        )

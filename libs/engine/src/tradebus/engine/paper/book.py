"""The paper venue's order book: resting orders, going live, and the trade screens.

:class:`PaperBook` (the base of :class:`~tradebus.engine.paper.exchange.PaperExchange`)
holds every resting order of one paper exchange by symbol and by client id,
in placement order, every client id it ever accepted, and the last trade
price of each symbol, and makes orders live (rule 1 of the fill model,
marketability by :func:`~.paper_rules.is_marketable`). What a trade fills,
and the funds, are the exchange's.

The per-event fast path's state lives here too: the orders not live yet are
kept apart (:attr:`PaperBook.waiting`), so an event of a symbol with none
waiting skips them, and a :class:`TradeScreen` per symbol, dropped whenever
the symbol's live orders change, lets
:meth:`~tradebus.engine.paper.exchange.PaperExchange.on_trade` turn away a trade
that fills nothing before it scans the live orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tradebus.common.ids import AccountId
from tradebus.engine.paper.rules import is_marketable
from tradebus.engine.paper.state import PaperOrder


class PaperBook:
    """The resting orders of one paper exchange, which of them are live, the last trades."""

    def __init__(self) -> None:
        self._orders: dict[str, dict[str, PaperOrder]] = {}  # symbol -> client id -> order
        self._by_client_id: dict[str, PaperOrder] = {}
        self._placed: dict[str, AccountId] = {}  # every client id ever accepted -> account
        self._last_trade: dict[str, Decimal] = {}
        self.waiting: dict[str, dict[str, PaperOrder]] = {}
        """Resting orders not live yet: symbol -> client id -> order (placement order);
        a symbol is present only while it has some. Read-only for callers: with
        ``late_orders=False``, :meth:`PaperExchange.on_quote` of a symbol absent
        here does nothing."""
        self._screens: dict[str, TradeScreen] = {}  # symbol -> what its live orders can fill on

    # ------------------------------------------------------------------ queries
    def last_trade(self, symbol: str) -> Decimal | None:
        """The last trade price seen for ``symbol``, or None."""
        return self._last_trade.get(symbol)

    def find(self, client_order_id: str) -> PaperOrder | None:
        """The resting order with that client id, if any."""
        return self._by_client_id.get(client_order_id)

    @property
    def orders_placed(self) -> int:
        """Orders this exchange has accepted since it started."""
        return len(self._placed)

    def placed_by(self, client_order_id: str) -> AccountId | None:
        """The account that placed ``client_order_id`` (resting or done), or None."""
        return self._placed.get(client_order_id)

    def open_orders(self, account: AccountId) -> list[PaperOrder]:
        """Resting orders of ``account`` in placement order."""
        return [o for o in self._by_client_id.values() if o.account == account]

    def trade_screen(self, symbol: str) -> TradeScreen | None:
        """What ``symbol``'s live orders can fill on (None: no resting order of it), the
        screen :meth:`~tradebus.engine.paper.exchange.PaperExchange.on_trade` uses: a
        trade it turns away fills nothing. For a caller that screens many trades at once
        (the backtest's columnar path); read only."""
        orders = self._orders.get(symbol)
        if not orders:
            return None
        screen = self._screens.get(symbol)
        if screen is None:
            screen = self._screens[symbol] = TradeScreen(orders.values())
        return screen

    def pass_trades(self, symbol: str, last_price: Decimal) -> None:
        """Trades of ``symbol`` that fill nothing went by, the last at ``last_price``.

        For a caller that screened them itself (:meth:`trade_screen`, no order of the
        symbol waiting to go live, no recent events kept): what
        :meth:`~tradebus.engine.paper.exchange.PaperExchange.on_trade` would have done
        with each of them, which is keeping the last trade price.
        """
        self._last_trade[symbol] = last_price

    def restore_placed(self, account: AccountId, client_order_id: str) -> None:
        """Remember that ``account`` placed ``client_order_id`` (done orders, at restore)."""
        self._placed.setdefault(client_order_id, account)

    def _resting(self, account: AccountId, symbol: str) -> list[PaperOrder]:
        """Resting orders of ``account`` on ``symbol`` in placement order."""
        return [o for o in self._orders.get(symbol, {}).values() if o.account == account]

    # ------------------------------------------------------------------ changes
    def _add(self, order: PaperOrder) -> None:
        """Rest ``order`` (not live yet) and count its client id as placed."""
        self._orders.setdefault(order.symbol, {})[order.client_order_id] = order
        self.waiting.setdefault(order.symbol, {})[order.client_order_id] = order
        self._by_client_id[order.client_order_id] = order
        self._placed[order.client_order_id] = order.account

    def _remove(self, order: PaperOrder) -> None:
        """Take a live ``order`` off the book (it filled)."""
        del self._orders[order.symbol][order.client_order_id]
        del self._by_client_id[order.client_order_id]
        self._screens.pop(order.symbol, None)

    def _take(self, client_order_id: str) -> PaperOrder | None:
        """Take the resting order ``client_order_id`` off the book (cancel); None if absent."""
        order = self._by_client_id.pop(client_order_id, None)
        if order is None:
            return None
        del self._orders[order.symbol][client_order_id]
        if order.live:
            self._screens.pop(order.symbol, None)
        else:
            self._unwait(order)
        return order

    def _make_live(self, order: PaperOrder, last: Decimal | None) -> None:
        """Rule 1: ``order`` goes live; marketable against ``last``, the last trade before."""
        order.live = True
        order.marketable = is_marketable(order, last)
        self._unwait(order)
        self._screens.pop(order.symbol, None)

    def _unwait(self, order: PaperOrder) -> None:
        """``order`` is no longer waiting to go live (live, cancelled)."""
        waiting = self.waiting.get(order.symbol)
        if waiting is not None:
            waiting.pop(order.client_order_id, None)
            if not waiting:
                del self.waiting[order.symbol]

    def _go_live(self, symbol: str, ts_recv: int) -> None:
        """Make due orders live (rule 1), in placement order."""
        waiting = self.waiting.get(symbol)
        if not waiting:
            return
        last = self._last_trade.get(symbol)
        due = [o for o in waiting.values() if o.trigger_ts is None or ts_recv > o.trigger_ts]
        for o in due:
            self._make_live(o, last)


class TradeScreen:
    """What one symbol's live orders can fill on: a trade fills some order only if a
    marketable order is live, or the trade prints below the highest passive buy limit
    or above the lowest passive sell limit (rules 2 and 3). Rebuilt when they change."""

    __slots__ = ("any_marketable", "buy", "sell")

    def __init__(self, orders: Iterable[PaperOrder]) -> None:
        self.any_marketable = False
        self.buy: Decimal | None = None
        self.sell: Decimal | None = None
        for o in orders:
            if not o.live:
                continue
            if o.marketable:
                self.any_marketable = True
            elif o.side == "buy":
                if self.buy is None or o.price > self.buy:  # type: ignore[operator]
                    self.buy = o.price
            elif self.sell is None or o.price < self.sell:  # type: ignore[operator]
                self.sell = o.price

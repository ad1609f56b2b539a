"""The exchange behind the local Backpack server: markets, balances, orders and matching.

No I/O here: the REST and WebSocket layers call these methods and publish the
:class:`Published` items they return. Orders match against the trades the
test feeds (recorded trades replayed explicitly) by the paper fill model of
shared/STRATEGIES.md, the rules of ``tradebus.engine.paper.exchange``:

1. an order is live from the first market event after it is placed; it is
   *marketable* if it is a market order, or a limit buy at or above (sell at or
   below) the last trade price when it was placed;
   except: a marketable *market*, IOC or FOK order takes at once, inside the
   order request, at the touch (the best ask for a buy, the best bid for a
   sell; the last trade price before any quote), and the response already says
   ``Filled`` with its executed quantity, as Backpack answers (issue 18, item 3).
   With ``partial_fills`` it takes at most the touch's size; what it cannot
   take expires (IOC, market) or nothing fills (FOK);
2. a passive limit buy at ``L`` fills at ``L`` when a trade prints strictly
   below ``L``; a passive sell when a trade prints strictly above ``L``;
3. a marketable order fills at the trade's price on the first trade within
   its limit (an IOC/FOK one expires if that trade is not);
4. fees are charged in the asset received, as Backpack does: a buy (Bid) pays
   its fee in the base asset (a Bid fill has ``feeSymbol`` the base, ccxt's
   backpack ``fetchMyTrades`` fixture; ``N`` in ``account.orderUpdate``), a sell
   (Ask) in the quote asset; maker bps on passive fills, taker bps on
   marketable ones;
5. within one trade, live orders fill in the order they were placed.

Orders fill in full, unless ``partial_fills`` is set: then one trade fills at
most its printed quantity, shared by the live orders in placement order.

Funds: a buy locks ``price * quantity`` in the quote asset, no fee (its fee is
taken from the base it receives; a market buy: its ``quoteQuantity``, or the
last price plus :data:`MARKET_LOCK_MARGIN`); a sell locks its quantity of the
base asset.

Perpetual markets (``MarketSpec.perp``): an order of either side locks its
initial margin, ``notional * imf``, in the quote asset; a fill moves the
account's position (:mod:`tests.support.backpack.perp`), and its realized P&L
and its fee (in the quote asset, either side) settle in the quote balance. A
``reduceOnly`` order that would open or grow the position is refused.
Fills release the lock pro rata. ``available = total - locked``.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tests.support.backpack import wire
from tests.support.backpack.market import (
    BPS,
    ZERO,
    ApiError,
    Balance,
    Fill,
    MarketSpec,
    Order,
    PublicTrade,
    Published,
    TickerStats,
    private_streams,
)
from tests.support.backpack.payload import (
    OrderRequest,
    check_min_notional,
    check_price_band,
    parse_order,
)
from tests.support.backpack.perp import FundingPayment, PerpPosition

MARKET_LOCK_MARGIN = Decimal("0.05")


@dataclass
class _Book:
    spec: MarketSpec
    trade_ids: Iterator[int]
    last_price: Decimal | None = None
    quote: tuple[Decimal, Decimal, Decimal, Decimal] | None = None  # bid, qty, ask, qty
    quote_updates: int = 0
    depth: tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]] | None = None
    """Bids and asks, each by price ascending, as ``feed_depth`` set them (None: the quote's
    one level)."""
    open: dict[str, Order] = field(default_factory=dict)  # placement order
    trades: deque[PublicTrade] = field(default_factory=lambda: deque(maxlen=1000))
    stats: TickerStats = field(default_factory=TickerStats)


class Exchange:
    """Markets, accounts (by API key), orders and fills; see the module docstring."""

    def __init__(
        self,
        markets: list[MarketSpec],
        *,
        maker_fee_bps: Decimal,
        taker_fee_bps: Decimal,
        partial_fills: bool = False,
        clock_us: Callable[[], int] | None = None,
    ) -> None:
        self.markets = {m.symbol: m for m in markets}
        self._books = {
            m.symbol: _Book(
                m,
                itertools.count(
                    m.trade_id_start if m.trade_id_start is not None else (i + 1) * 10_000_000
                ),
            )
            for i, m in enumerate(markets)
        }
        self.maker_fee_bps = maker_fee_bps
        self.taker_fee_bps = taker_fee_bps
        self.partial_fills = partial_fills
        self.clock_us = clock_us or (lambda: time.time_ns() // 1000)
        self.accounts: dict[str, dict[str, Balance]] = {}
        self.orders: dict[str, Order] = {}
        """Every order accepted, by id, in placement order."""
        self.fills: list[Fill] = []
        self.positions: dict[tuple[str, str], PerpPosition] = {}
        """(account, symbol) -> position, perpetual markets only."""
        self.funding: list[FundingPayment] = []
        self.leverage: dict[str, int] = {}
        """Account -> its ``leverageLimit`` (``PATCH /api/v1/account``; 1 until set)."""
        self._position_ids = itertools.count(4_238_420_000)
        self._order_ids = itertools.count(113_000_000_000)
        self._seq = itertools.count(1)

    # -- accounts ------------------------------------------------------------

    def balance(self, account: str, asset: str) -> Balance:
        """The balance of ``asset`` (created empty on first use)."""
        return self.accounts.setdefault(account, {}).setdefault(asset, Balance())

    def book(self, symbol: str) -> _Book:
        """The book of ``symbol``; :class:`ApiError` ``INVALID_MARKET`` if unknown."""
        book = self._books.get(symbol)
        if book is None:
            raise ApiError(400, "INVALID_MARKET", f"Invalid market {symbol}")
        return book

    # -- orders --------------------------------------------------------------

    def execute(self, account: str, payload: Any) -> tuple[Order, list[Published]]:
        """``POST /api/v1/order``: check, lock funds, accept (an IOC/FOK that cannot
        take expires at once). Refusals: :mod:`tests.support.backpack.payload`, then
        ``INVALID_ORDER`` for a post-only order that would take, and
        ``INSUFFICIENT_FUNDS``."""
        r = parse_order(payload, self.markets)
        book = self._books[r.symbol]
        check_min_notional(book.spec, r, book.last_price)
        last = book.last_price
        check_price_band(book.spec, r, last)
        marketable = r.order_type == "Market" or (
            last is not None
            and r.price is not None
            and (r.price >= last if r.side == "Bid" else r.price <= last)
        )
        if r.post_only and marketable:
            raise ApiError(400, "INVALID_ORDER", "Order would immediately match and take")
        if r.reduce_only:
            self._check_reduces(account, book.spec, r)
        asset, amount = self._lock(book, r)
        funds = self.balance(account, asset)
        if funds.available < amount:
            raise ApiError(400, "INSUFFICIENT_FUNDS", "Insufficient funds")
        funds.locked += amount
        order = Order(
            id=str(next(self._order_ids)),
            account=account,
            symbol=r.symbol,
            side=r.side,
            order_type=r.order_type,
            client_id=r.client_id,
            price=r.price,
            quantity=r.quantity,
            quote_quantity=r.quote_quantity,
            time_in_force=r.time_in_force,
            post_only=r.post_only,
            self_trade_prevention=r.self_trade_prevention,
            reduce_only=r.reduce_only,
            created_ms=self.clock_us() // 1000,
            seq=next(self._seq),
            marketable=marketable,
            locked_asset=asset,
            locked=amount,
        )
        self.orders[order.id] = order
        book.open[order.id] = order
        events = [self._order_event("orderAccepted", order)]
        if r.time_in_force != "GTC" and not marketable:
            reason = "ImmediateOrCancel" if r.time_in_force == "IOC" else "FillOrKill"
            events.append(self._close(order, "Expired", reason))
        elif marketable and (r.order_type == "Market" or r.time_in_force != "GTC"):
            events.extend(self._take_now(book, order))
        return order, events

    def _take_now(self, book: _Book, order: Order) -> list[Published]:
        """A marketable market/IOC/FOK order takes at the touch inside its request (rule 1)."""
        touch = self._touch(book, order.side)
        tif = order.time_in_force
        rest = "FillOrKill" if tif == "FOK" else "ImmediateOrCancel"
        if touch is None:
            return []  # no price at all: it waits for the next trade
        price, size = touch
        limit = order.price
        if limit is not None and (price > limit if order.side == "Bid" else price < limit):
            return [self._close(order, "Expired", rest)]
        if order.quote_quantity is not None:
            qty = (order.quote_quantity / price).quantize(book.spec.step_size, rounding=ROUND_DOWN)
        else:
            assert order.remaining is not None
            qty = order.remaining
        if self.partial_fills and size is not None and size < qty:
            if tif == "FOK":
                return [self._close(order, "Expired", rest)]
            qty = size.quantize(book.spec.step_size, rounding=ROUND_DOWN)
        if qty <= 0:
            return [self._close(order, "Expired", "InsufficientLiquidity")]
        events = self.fill(order, price, qty, maker=False)
        if order.is_open:
            events.append(self._close(order, "Expired", rest))
        return events

    @staticmethod
    def _touch(book: _Book, side: str) -> tuple[Decimal, Decimal | None] | None:
        """The price (and size) a taker on ``side`` meets now: the quote's other side, else
        the last trade price (size unknown); None before any."""
        if book.quote is not None:
            bid, bid_qty, ask, ask_qty = book.quote
            return (ask, ask_qty) if side == "Bid" else (bid, bid_qty)
        return None if book.last_price is None else (book.last_price, None)

    def position(self, account: str, symbol: str) -> PerpPosition:
        """The position of ``account`` in perpetual ``symbol`` (created flat on first use)."""
        key = (account, symbol)
        if key not in self.positions:
            self.positions[key] = PerpPosition(account, symbol, next(self._position_ids))
        return self.positions[key]

    def _check_reduces(self, account: str, spec: MarketSpec, r: OrderRequest) -> None:
        """A reduce-only order must shrink the position, by at most its size."""
        if not spec.perp:
            raise ApiError(400, "INVALID_ORDER", "Reduce only orders are for futures markets")
        held = self.position(account, spec.symbol).net_qty
        reduces = (held > 0 and r.side == "Ask") or (held < 0 and r.side == "Bid")
        if not reduces or (r.quantity is not None and r.quantity > abs(held)):
            raise ApiError(400, "INVALID_ORDER", "Reduce only order would increase the position")

    def apply_funding(
        self, symbol: str, rate: Decimal, interval_end_ms: int
    ) -> list[FundingPayment]:
        """End a funding interval of perpetual ``symbol`` at ``rate`` (:mod:`.perp`)."""
        book = self.book(symbol)
        mark = book.last_price
        if mark is None:
            raise ValueError(f"no price for {symbol} yet: nothing to mark the positions at")
        paid = []
        for position in self.positions.values():
            if position.symbol != symbol or position.net_qty == 0:
                continue
            amount = -position.net_qty * mark * rate
            self.balance(position.account, book.spec.quote).total += amount
            position.funding += amount
            paid.append(FundingPayment(position.account, symbol, amount, rate, interval_end_ms))
        self.funding.extend(paid)
        return paid

    def _lock(self, book: _Book, r: OrderRequest) -> tuple[str, Decimal]:
        """The asset and amount an order locks (module docstring)."""
        spec, price, qty = book.spec, r.price, r.quantity
        if spec.perp:
            assert qty is not None
            ref = price or book.last_price or (book.quote[2] if book.quote else None)
            if ref is None:
                raise ApiError(400, "INVALID_ORDER", "No market price yet for a market order")
            return spec.quote, ref * qty * spec.imf
        if r.side == "Ask":
            assert qty is not None
            return spec.base, qty
        if r.quote_quantity is not None:
            return spec.quote, r.quote_quantity
        assert qty is not None
        if price is None:
            ref = book.last_price
            if ref is None and book.quote is not None:
                ref = book.quote[2]
            if ref is None:
                raise ApiError(400, "INVALID_ORDER", "No market price yet for a market order")
            price = ref * (1 + MARKET_LOCK_MARGIN)
        return spec.quote, price * qty

    def find_open(
        self, account: str, symbol: str, order_id: Any, client_id: Any, what: str
    ) -> Order:
        """The open order of ``account`` on ``symbol`` with that id or client id (one of them)."""
        book = self.book(symbol)
        if (order_id is None) == (client_id is None):
            raise ApiError(400, "INVALID_CLIENT_REQUEST", "Specify one of orderId or clientId")
        for order in reversed(book.open.values()):
            if order.account != account:
                continue
            if order_id is not None and order.id == str(order_id):
                return order
            if client_id is not None and str(order.client_id) == str(client_id):
                return order
        raise ApiError(404, "RESOURCE_NOT_FOUND", f"{what}: order not found")

    def cancel(
        self, account: str, symbol: str, order_id: Any, client_id: Any
    ) -> tuple[Order, list[Published]]:
        """``DELETE /api/v1/order``: cancel one open order, release its funds."""
        order = self.find_open(account, symbol, order_id, client_id, "Cancel")
        return order, [self._close(order, "Cancelled")]

    def cancel_all(self, account: str, symbol: str) -> tuple[list[Order], list[Published]]:
        """``DELETE /api/v1/orders``: cancel every open order of ``account`` on ``symbol``."""
        book = self.book(symbol)
        orders = [o for o in book.open.values() if o.account == account]
        return orders, [self._close(o, "Cancelled") for o in orders]

    def open_orders(self, account: str | None = None, symbol: str | None = None) -> list[Order]:
        """Open orders (of ``account``, on ``symbol``) in placement order."""
        books = [self.book(symbol)] if symbol else list(self._books.values())
        found = [o for b in books for o in b.open.values()]
        found = [o for o in found if account is None or o.account == account]
        return sorted(found, key=lambda o: o.seq)

    def _release(self, order: Order) -> None:
        """Take ``order`` off the book and unlock what it still locks."""
        self.balance(order.account, order.locked_asset).locked -= order.locked
        order.locked = ZERO
        self._books[order.symbol].open.pop(order.id, None)

    def _close(self, order: Order, status: str, reason: str | None = None) -> Published:
        """Cancel or expire open ``order``; its ``orderCancelled``/``orderExpired`` event."""
        self._release(order)
        order.status = status
        order.expiry_reason = reason
        event = "orderCancelled" if status == "Cancelled" else "orderExpired"
        return self._order_event(event, order)

    def _order_event(self, event: str, order: Order, fill: Fill | None = None) -> Published:
        now = self.clock_us() if fill is None else fill.ts_us
        return Published(
            streams=private_streams(order.symbol),
            data=wire.order_update(event, order, now, fill),
            account=order.account,
            kind=event,
        )

    # -- market data -----------------------------------------------------------

    def on_quote(
        self, symbol: str, bid: Decimal, bid_qty: Decimal, ask: Decimal, ask_qty: Decimal
    ) -> list[Published]:
        """A best bid/ask update: the ``bookTicker`` frame. Quotes fill nothing."""
        book = self.book(symbol)
        book.quote = (bid, bid_qty, ask, ask_qty)
        book.depth = None  # a plain quote: one level a side
        book.quote_updates += 1
        now = self.clock_us()
        data = {
            "e": "bookTicker",
            "E": now,
            "s": symbol,
            "a": wire.dec(ask),
            "A": wire.dec(ask_qty),
            "b": wire.dec(bid),
            "B": wire.dec(bid_qty),
            "u": book.quote_updates,
            "T": now,
        }
        return [Published(streams=(f"bookTicker.{symbol}",), data=data, kind="bookTicker")]

    def on_trade(
        self, symbol: str, price: Decimal, qty: Decimal, buyer_maker: bool = False
    ) -> list[Published]:
        """A public trade: fill the live orders (rules 2-5); then its ``trade`` and
        ``ticker`` frames."""
        book = self.book(symbol)
        now = self.clock_us()
        events: list[Published] = []
        budget = qty if self.partial_fills else None
        for order in list(book.open.values()):
            before = order.executed_qty
            events.extend(self._match(book, order, price, budget, now))
            if budget is not None:
                budget -= order.executed_qty - before
        trade = PublicTrade(
            trade_id=next(book.trade_ids),
            price=price,
            quantity=qty,
            buyer_maker=buyer_maker,
            ts_us=now,
            buyer_order=str(next(self._order_ids)),
            seller_order=str(next(self._order_ids)),
        )
        book.last_price = price
        book.trades.append(trade)
        book.stats.add(now, price, qty)
        ticker = book.stats.frame(symbol, now)
        events.append(Published((f"trade.{symbol}",), trade.frame(symbol), kind="trade"))
        events.append(Published((f"ticker.{symbol}",), ticker, kind="ticker"))
        return events

    def _match(
        self, book: _Book, order: Order, trade: Decimal, budget: Decimal | None, now: int
    ) -> list[Published]:
        limit = order.price
        if order.marketable:
            within = limit is None or (trade <= limit if order.side == "Bid" else trade >= limit)
            fill_price = trade if within else None
        else:
            assert limit is not None
            crossed = trade < limit if order.side == "Bid" else trade > limit
            fill_price = limit if crossed else None
        tif = order.time_in_force
        if fill_price is None:
            reason = {"IOC": "ImmediateOrCancel", "FOK": "FillOrKill"}.get(tif)
            return [self._close(order, "Expired", reason)] if reason else []
        if order.quote_quantity is not None:
            qty = (order.quote_quantity / fill_price).quantize(
                book.spec.step_size, rounding=ROUND_DOWN
            )
        else:
            assert order.remaining is not None
            qty = order.remaining
        if budget is not None:
            if budget <= 0:
                reason = {"IOC": "ImmediateOrCancel", "FOK": "FillOrKill"}.get(tif)
                return [self._close(order, "Expired", reason)] if reason else []
            if budget < qty:
                if tif == "FOK":
                    return [self._close(order, "Expired", "FillOrKill")]
                qty = budget.quantize(book.spec.step_size, rounding=ROUND_DOWN)
        if qty <= 0:
            return [self._close(order, "Expired", "InsufficientLiquidity")]
        events = self.fill(order, fill_price, qty, maker=not order.marketable, ts_us=now)
        if order.is_open and tif == "IOC":
            events.append(self._close(order, "Expired", "ImmediateOrCancel"))
        return events

    def fill(
        self, order: Order, price: Decimal, qty: Decimal, *, maker: bool, ts_us: int | None = None
    ) -> list[Published]:
        """Fill ``qty`` of open ``order`` at ``price``: settle funds, record the fill, its event.

        A buy that cannot pay (a market buy after the price ran past its lock)
        expires with ``InsufficientFunds`` instead.
        """
        spec = self.markets[order.symbol]
        book = self._books[order.symbol]
        notional = price * qty
        rate = (self.maker_fee_bps if maker else self.taker_fee_bps) / BPS
        remaining = order.remaining if order.quote_quantity is None else qty
        assert remaining is not None and 0 < qty <= remaining
        release = order.locked if qty == remaining else order.locked * qty / remaining
        quote = self.balance(order.account, spec.quote)
        base = None if spec.perp else self.balance(order.account, spec.base)
        moved: Published | None = None
        if base is None:  # a perpetual: the position moves; P&L and the fee settle in quote
            fee, fee_symbol = notional * rate, spec.quote
            quote.locked -= release
            position = self.position(order.account, spec.symbol)
            was = position.net_qty
            realized = position.apply(order.side, qty, price)
            quote.total += realized - fee
            moved = self._position_event(position, was, price, ts_us)
        elif order.side == "Bid":  # the fee is taken from the base received (rule 4)
            if quote.available + release < notional:
                return [self._close(order, "Expired", "InsufficientFunds")]
            fee, fee_symbol = qty * rate, spec.base
            quote.locked -= release
            quote.total -= notional
            base.total += qty - fee
        else:
            fee, fee_symbol = notional * rate, spec.quote
            base.locked -= release
            base.total -= qty
            quote.total += notional - fee
        order.locked -= release
        order.executed_qty += qty
        order.executed_quote += notional
        done = order.quote_quantity is not None or order.executed_qty == order.quantity
        order.status = "Filled" if done else "PartiallyFilled"
        record = Fill(
            trade_id=next(book.trade_ids),
            order_id=order.id,
            client_id=order.client_id,
            account=order.account,
            symbol=order.symbol,
            side=order.side,
            price=price,
            quantity=qty,
            fee=fee,
            fee_symbol=fee_symbol,
            is_maker=maker,
            ts_us=ts_us if ts_us is not None else self.clock_us(),
        )
        self.fills.append(record)
        if done:
            self._release(order)
        events = [self._order_event("orderFill", order, record)]
        return events if moved is None else [*events, moved]

    def _position_event(
        self, position: PerpPosition, was: Decimal, mark: Decimal, ts_us: int | None
    ) -> Published:
        """The ``account.positionUpdate`` frame of a fill that moved ``position`` (from
        ``was``): opened from flat, closed to flat, adjusted otherwise."""
        if was == 0:
            event = "positionOpened"
        elif position.net_qty == 0:
            event = "positionClosed"
        else:
            event = "positionAdjusted"
        spec = self.markets[position.symbol]
        now = ts_us if ts_us is not None else self.clock_us()
        symbol = position.symbol
        return Published(
            streams=("account.positionUpdate", f"account.positionUpdate.{symbol}"),
            data=wire.position_update(event, position, spec, mark, now),
            account=position.account,
            kind=event,
        )

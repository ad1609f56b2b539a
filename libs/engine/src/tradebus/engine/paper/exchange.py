"""The paper venue: a deterministic simulated exchange fed by real market data.

It keeps its own balances and resting orders in memory; when execution
starts they are rebuilt from the ledger, the source of truth
(:mod:`tradebus.execution.paper_restore`). It fills orders by the paper fill
model of shared/STRATEGIES.md:

1. An order is live from the first market event after the one that caused it
   (``trigger_ts``, the ``ts_recv`` of the causing event; an order without one
   is live from the first event after it arrives).
2. A passive limit buy at ``L`` fills in full at ``L`` when a trade prints
   strictly below ``L``; a passive sell when a trade prints strictly above.
3. A marketable order (market, or a limit buy at or above / sell at or below
   the last trade price when it goes live) fills in full at the next trade's
   price if that price is within its limit.
4. Fees are charged in the quote asset: ``maker_fee_bps`` on passive fills,
   ``taker_fee_bps`` on marketable ones.
5. Within one event, live orders fill in the order they were placed.

Marketability is decided when the order goes live, against the last trade
price before that event, so the result does not depend on how far the
execution service lags the market data.

Late orders (an order placed after market events later than its trigger)
need the recent market events (:class:`~.paper_rules.RecentEvents`); a
caller that never places late orders (the backtest: every order is placed
before the next event is fed) opens the exchange with ``late_orders=False``
and the events are not recorded.

Funds (spot): a buy locks ``price * qty`` plus the worst-case fee in the
quote asset; a sell locks ``qty`` of the base asset. An order that cannot be
funded is refused with ``insufficient_balance``.

Perpetual markets (an account opened with ``market_kind="perpetual"``, or a
market of kind ``perpetual``) fill by the same rules; only the funds differ
(:mod:`tradebus.engine.perp`): a signed position per symbol, no base
asset, realized P&L and fees in the quote asset, and quote locked as margin
for the position and for the part of each open order that would grow it.
:meth:`PaperExchange.balances` reports the position as the pseudo-asset
``<symbol>-PERP`` (total = free = signed quantity, locked 0), which is what
the ledger journals, so the reconciler compares positions like assets.

This module holds :class:`PaperExchange` (accounts, placing, cancelling and
the market-data entry points that apply the rules) and :class:`PaperVenue`,
one account's view of it. The parts: :mod:`.paper_book` (resting orders,
going live, the per-event fast path), :mod:`.paper_rules` (the rules as pure
functions, recent events), :mod:`.paper_funds` (balances, locks, fees, spot
settlement), :mod:`.paper_perp` (perpetual margin), :mod:`.paper_state` (the
structs), :mod:`.paper_restore` (rebuilding from the ledger).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.ids import AccountId
from tradebus.common.markets import Market, MarketCatalog, MarketKind, UnknownMarketError
from tradebus.common.messages import AssetBalance, PositionRisk, QuoteTick, Side, TradeTick
from tradebus.common.money import ONE, ZERO
from tradebus.engine.accounts import trades_perpetual
from tradebus.engine.paper import funds as paper_funds
from tradebus.engine.paper import perp as paper_perp
from tradebus.engine.paper.book import PaperBook, TradeScreen
from tradebus.engine.paper.funds import MARKET_BUY_LOCK_FACTOR
from tradebus.engine.paper.rules import RecentEvents, fill_price
from tradebus.engine.paper.state import PaperAccount, PaperBalance, PaperOrder
from tradebus.engine.perp import PerpPosition
from tradebus.engine.venue import VenueAck, VenueFill, VenueOpenOrder, VenueOrder, VenueRejected
from tradebus.ledger.entries import POSITION_SUFFIX

__all__ = ["MARKET_BUY_LOCK_FACTOR", "PAPER_VENUE", "PaperExchange", "PaperVenue"]

PAPER_VENUE = "paper"


class PaperExchange(PaperBook):
    """The simulated exchange for every paper account trading ``market_venue``'s markets.

    Its resting orders and last trades are :class:`~.paper_book.PaperBook`'s;
    the funds arithmetic is :mod:`.paper_funds`'.

    Parameters
    ----------
    catalog
        Market specifications.
    market_venue
        Which venue's market data drives it (``binance``).
    late_orders
        Whether an order may reach the exchange after market events later
        than its ``trigger_ts`` (execution lagging the feed): the exchange
        then remembers the recent events to fill such an order as if in
        time. ``False`` (a caller that places every order before it feeds
        the next event, as the backtest does) skips the bookkeeping; the
        fills are the same for such a caller.
    """

    def __init__(self, catalog: MarketCatalog, market_venue: str, late_orders: bool = True) -> None:
        super().__init__()
        self._catalog = catalog
        self.market_venue = market_venue
        self.accounts: dict[AccountId, PaperAccount] = {}
        self._recent = RecentEvents() if late_orders else None
        self._late_fills: list[VenueFill] = []
        self.fills_made = 0

    # ----------------------------------------------------------------- accounts
    @property
    def catalog(self) -> MarketCatalog:
        """The markets this venue trades (those of :attr:`market_venue`)."""
        return self._catalog

    def open_account(
        self,
        account: AccountId,
        balances: dict[str, Decimal],
        maker_fee_bps: Decimal,
        taker_fee_bps: Decimal,
        market_kind: MarketKind = "spot",
        leverage: Decimal = ONE,
    ) -> None:
        """Create ``account`` with starting ``balances`` (no-op if it exists).

        ``market_kind="perpetual"`` trades every market as a perpetual with
        margin ``notional / leverage`` (``leverage`` >= 1).
        """
        if account in self.accounts:
            return
        if not leverage >= 1:
            raise ValueError(f"leverage must be >= 1, got {leverage}")
        self.accounts[account] = PaperAccount(
            balances={a: PaperBalance(total=v) for a, v in balances.items()},
            maker_fee_bps=maker_fee_bps,
            taker_fee_bps=taker_fee_bps,
            market_kind=market_kind,
            leverage=leverage,
        )

    def close_account(self, account: AccountId) -> int:
        """Remove ``account`` (unloaded at run time): its resting orders leave the book
        (their funds with them) and its late fills are dropped; how many orders were
        still resting. No-op (0) if it is not open."""
        if account not in self.accounts:
            return 0
        resting = self.open_orders(account)
        for order in resting:
            self._take(order.client_order_id)
        self._late_fills = [f for f in self._late_fills if f.account != account]
        del self.accounts[account]
        return len(resting)

    def balances(self, account: AccountId) -> list[AssetBalance]:
        """Balances of ``account`` sorted by asset. Raises KeyError if unknown.

        Perpetual positions appear as ``<symbol>-PERP`` with ``total = free =``
        the signed position (base units) and ``locked = 0``; their margin is
        in the quote asset's ``locked``.
        """
        return paper_funds.report(self.accounts[account])

    def positions(self, account: AccountId) -> dict[str, PerpPosition]:
        """Perpetual positions of ``account`` by symbol (copies; see :class:`PerpPosition`).

        ``PerpPosition.unrealized_pnl(exchange.last_trade(symbol))`` marks one
        to the last trade price. Raises KeyError if the account is unknown.
        """
        return {s: msgspec.structs.replace(p) for s, p in self.accounts[account].positions.items()}

    def adjust(self, account: AccountId, asset: str, delta: Decimal) -> None:
        """Move a balance by hand ("the user sold on the exchange website").

        Raises
        ------
        ValueError
            For a perpetual position's pseudo-asset: positions move only by fills.
        """
        if asset.endswith(POSITION_SUFFIX):
            raise ValueError(f"{asset} is a position; it moves only by fills")
        self.accounts[account].balance(asset).total += delta

    # ------------------------------------------------------------------- orders
    def market(self, symbol: str) -> Market:
        """The market ``symbol``; raises :class:`UnknownMarketError`."""
        return self._catalog.get(self.market_venue, symbol)

    def place(self, account: AccountId, order: VenueOrder) -> VenueAck:
        """Accept ``order`` and lock its funds.

        Raises
        ------
        VenueRejected
            ``unknown_symbol``, ``no_market_price`` (a market buy, or any
            perpetual market order, before any trade), ``insufficient_balance``
            (spot: quote for a buy, base for a sell; perpetual: quote margin)
            or ``duplicate_client_order_id``.
        """
        try:
            market = self.market(order.symbol)
        except UnknownMarketError:
            raise VenueRejected("unknown_symbol", f"no market {order.symbol}") from None
        if order.client_order_id in self._placed:
            raise VenueRejected("duplicate_client_order_id", order.client_order_id)
        perpetual = trades_perpetual(self.accounts[account].market_kind, market)
        lock_price = None
        if order.side != "sell" or perpetual:
            lock_price = paper_funds.lock_price(order, self._last_trade.get(order.symbol))
        paper = self._rest(account, order, market, lock_price, check_funds=True)
        self._catch_up(paper)
        return VenueAck(venue_order_id=f"P{order.client_order_id}")

    def _catch_up(self, order: PaperOrder) -> None:
        """An order that arrives after market events later than its trigger goes live on the
        first of them and fills on the trade that would have filled it (:mod:`.paper_rules`);
        such a fill waits in :meth:`take_late_fills`."""
        if order.trigger_ts is None or self._recent is None:
            return
        for _, trade, last in self._recent.after(order.symbol, order.trigger_ts):
            if not order.live:
                self._make_live(order, last)
            if trade is not None:
                price = fill_price(order, trade.price)
                if price is not None:
                    self._late_fills.append(self._fill(order, price, trade))
                    return

    def take_late_fills(self, account: AccountId) -> list[VenueFill]:
        """The fills :meth:`place` made for ``account``'s late orders (each handed out once)."""
        mine = [f for f in self._late_fills if f.account == account]
        if mine:
            self._late_fills = [f for f in self._late_fills if f.account != account]
        return mine

    def restore_order(
        self, account: AccountId, order: VenueOrder, lock_price: Decimal | None
    ) -> PaperOrder:
        """Put back a resting order the ledger says the venue holds (:mod:`.paper_restore`).

        Its funds are locked exactly as :meth:`place` would lock them now, at
        ``lock_price`` (its limit, or for a market order a price the caller
        chose; unused for a spot sell), without the funds check: the ledger is
        the source of truth. The client id counts as placed.
        """
        market = self.market(order.symbol)
        return self._rest(account, order, market, lock_price, check_funds=False)

    def _rest(
        self,
        account: AccountId,
        order: VenueOrder,
        market: Market,
        lock_price: Decimal | None,
        check_funds: bool,
    ) -> PaperOrder:
        """Lock ``order``'s funds at ``lock_price`` (:mod:`.paper_funds`) and rest it."""
        acct = self.accounts[account]
        perpetual = trades_perpetual(acct.market_kind, market)
        resting = self._resting(account, order.symbol) if perpetual else ()
        asset, amount, lock_price = paper_funds.order_lock(
            acct, market, order, lock_price, perpetual, resting
        )
        paper_funds.lock(acct, asset, amount, check_funds)
        paper = PaperOrder(
            account=account,
            client_order_id=order.client_order_id,
            intent_id=order.intent_id,
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            price=order.price,
            qty=order.qty,
            trigger_ts=order.trigger_ts,
            locked_asset=asset,
            locked=amount,
            perpetual=perpetual,
            lock_price=lock_price,
        )
        self._add(paper)
        return paper

    def _relock(self, account: AccountId, symbol: str) -> None:
        """Re-margin ``account``'s resting perpetual orders on ``symbol`` (placement order)."""
        resting = self._resting(account, symbol)
        paper_perp.relock(self.accounts[account], self.market(symbol), resting)

    def cancel(self, client_order_id: str) -> bool:
        """Cancel a resting order and release its funds; False if it is not resting."""
        order = self._take(client_order_id)
        if order is None:
            return False
        paper_funds.release(self.accounts[order.account], order)
        if order.perpetual:
            self._relock(order.account, order.symbol)
        return True

    # -------------------------------------------------------------- market data
    def on_quote(self, tick: QuoteTick) -> None:
        """A quote is a market event: it makes due orders live; it fills nothing."""
        symbol = tick.symbol
        if symbol in self.waiting:
            self._go_live(symbol, tick.ts_recv)
        if self._recent is not None:
            self._recent.add(symbol, tick.ts_recv, None, self._last_trade.get(symbol))

    def on_trade(self, tick: TradeTick) -> list[VenueFill]:
        """Fill what this trade fills (rules 2-5); return the fills in placement order."""
        symbol = tick.symbol
        if symbol in self.waiting:
            self._go_live(symbol, tick.ts_recv)
        last_trade = self._last_trade
        if self._recent is not None:
            self._recent.add(symbol, tick.ts_recv, tick, last_trade.get(symbol))
        price = last_trade[symbol] = tick.price
        orders = self._orders.get(symbol)
        if not orders:
            return []
        screen = self._screens.get(symbol)  # the fast path, inline: most trades stop here
        if screen is None:
            screen = self._screens[symbol] = TradeScreen(orders.values())
        if not screen.any_marketable and not (
            (screen.buy is not None and price < screen.buy)
            or (screen.sell is not None and price > screen.sell)
        ):
            return []  # no live order fills at this price (rules 2 and 3)
        fills = []
        for order in [o for o in orders.values() if o.live]:
            fill = fill_price(order, price)
            if fill is not None:
                fills.append(self._fill(order, fill, tick))
        return fills

    def _fill(self, order: PaperOrder, price: Decimal, tick: TradeTick) -> VenueFill:
        """Fill ``order`` in full at ``price`` on ``tick``: settle its funds, take it off."""
        market = self.market(order.symbol)
        fee, realized = paper_funds.settle(self.accounts[order.account], order, price, market)
        self._remove(order)
        if order.perpetual:
            self._relock(order.account, order.symbol)
        self.fills_made += 1
        return VenueFill(
            venue=PAPER_VENUE,
            account=order.account,
            client_order_id=order.client_order_id,
            intent_id=order.intent_id,
            symbol=order.symbol,
            side=order.side,  # type: ignore[arg-type]
            price=price,
            qty=order.qty,
            fee=fee,
            fee_asset=market.quote,
            liquidity="taker" if order.marketable else "maker",
            trade_id=f"{order.client_order_id}.1",
            ts_event=tick.ts_event,
            market_kind="perpetual" if order.perpetual else "spot",
            realized_pnl=realized,
        )


class PaperVenue:
    """One account's view of a :class:`PaperExchange`, implementing :class:`Venue`."""

    name = PAPER_VENUE

    def __init__(self, exchange: PaperExchange, account: AccountId) -> None:
        self.exchange = exchange
        self.account = account

    async def place(self, order: VenueOrder) -> VenueAck:
        """See :meth:`PaperExchange.place`."""
        return self.exchange.place(self.account, order)

    async def cancel(self, client_order_id: str, symbol: str = "") -> bool:
        """See :meth:`PaperExchange.cancel`; only this account's orders."""
        order = self.exchange.find(client_order_id)
        if order is None or order.account != self.account:
            return False
        return self.exchange.cancel(client_order_id)

    async def find_order(
        self, client_order_id: str, symbol: str = "", since_ns: int = 0
    ) -> str | None:
        """Venue order id of an order this account placed with that client id, if any."""
        if self.exchange.placed_by(client_order_id) != self.account:
            return None
        return f"P{client_order_id}"

    def positions_seen(self) -> list[PositionRisk]:
        """None of the venue's risk figures: the paper venue neither marks nor liquidates
        (:mod:`tradebus.engine.perp`)."""
        return []

    async def balances(self) -> list[AssetBalance]:
        """See :meth:`PaperExchange.balances`."""
        return self.exchange.balances(self.account)

    def perpetual_exposure(self, symbol: str, side: Side) -> tuple[Decimal, Decimal]:
        """This account's perpetual position in ``symbol`` and its resting orders' quantity
        there on ``side`` (see :meth:`Venue.perpetual_exposure`)."""
        held = self.exchange.positions(self.account).get(symbol)
        resting = sum(
            (
                o.qty
                for o in self.exchange.open_orders(self.account)
                if o.symbol == symbol and o.side == side
            ),
            ZERO,
        )
        return (ZERO if held is None else held.qty), resting

    async def open_orders(self) -> list[VenueOpenOrder]:
        """This account's resting orders (every one was placed by tradebus)."""
        return [
            VenueOpenOrder(
                venue_order_id=f"P{o.client_order_id}",
                client_order_id=o.client_order_id,
                symbol=o.symbol,
                side=o.side,  # type: ignore[arg-type]
                price=o.price,
                qty=o.qty,
            )
            for o in self.exchange.open_orders(self.account)
        ]

    async def cancel_by_venue_id(self, venue_order_id: str, symbol: str) -> bool:
        """Cancel by the venue id this venue gave (``P<client id>``)."""
        return await self.cancel(venue_order_id.removeprefix("P"), symbol)

    async def last_price(self, symbol: str) -> Decimal | None:
        """The last trade of ``symbol`` this paper exchange saw."""
        return self.exchange.last_trade(symbol)

    def take_late_fills(self) -> list[VenueFill]:
        """See :meth:`PaperExchange.take_late_fills`."""
        return self.exchange.take_late_fills(self.account)

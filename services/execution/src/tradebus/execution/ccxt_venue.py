"""A live venue account through ccxt (``ccxt.async_support``): Backpack first, any ccxt exchange.

What it adds on top of ccxt:

* **sizes**: prices and quantities are rounded to the market's tick and
  step as ccxt loaded them (``precisionMode`` ``TICK_SIZE``: ``precision``
  holds the increments): buy limits and quantities down, sell limits up, so
  a limit is never worse than asked; the minimum quantity and minimum
  notional (``limits.amount.min``, ``limits.cost.min``) are checked before
  sending, and a too-small order is refused with ``below_minimum``;
* **client ids**: the ledger's uint32 ``client_order_id`` goes out as ccxt's
  ``clientOrderId`` (Backpack's ``clientId``), so an order whose placement
  had an unknown outcome is found again by it (:meth:`find_order`);
* **errors**: every call runs under the account's :class:`RateBudget` and
  :func:`call_with_retries`; failures are classified once
  (:mod:`tradebus.execution.venue_errors`): permanent ones become
  :class:`~tradebus.engine.venue.VenueRejected`, the others
  :class:`VenueUnavailable` with the classification attached;
* **money**: every amount read back is a ``Decimal`` parsed from ccxt's
  string fields, never a float.

Keys are given to the ccxt client by the composition root (the accounts
file names an environment variable or a secret file: :mod:`.keys`,
:mod:`.live`); this module never sees or logs them.
"""

from __future__ import annotations

import logging
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import ccxt
from ccxt.base.decimal_to_precision import TICK_SIZE

from tradebus.common.ids import AccountId
from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import AssetBalance, PositionRisk, Side
from tradebus.common.money import ZERO, ccxt_decimal
from tradebus.engine.venue import (
    VenueAck,
    VenueError,
    VenueFill,
    VenueFunding,
    VenueOpenOrder,
    VenueOrder,
    VenueRejected,
    VenueUnavailable,
)
from tradebus.execution.oto import oto_offer
from tradebus.execution.retry import Backoff, RateBudget, VenueCallError, call_with_retries
from tradebus.execution.venue_errors import REQUEST_EXPIRED, is_not_found
from tradebus.ledger.entries import position_asset

log = logging.getLogger(__name__)

_RAISE = object()

HISTORY_PAGE = 1000
"""Orders per page of Backpack's order history (its maximum)."""
HISTORY_MAX_PAGES = 50
"""How many pages :meth:`CcxtVenue.find_order` reads at most (50,000 orders)."""
MAX_CLOCK_OFFSET_MS = 24 * 3600 * 1000
"""A venue time further than this from ours is a misread, not a clock offset."""
HISTORY_SLACK_MS = 60_000
CLOCK_DRIFT_WARN_MS = 1_000
"""An offset from the venue's clock beyond this is logged as a warning (Backpack signs
requests for a 5-second window; the alert TradebusVenueClockDrift fires on it too)."""
"""Clock skew allowed between the ledger's creation time and the venue's."""


def _client_match(orders: list[dict[str, Any]], client_order_id: str) -> str | None:
    """The venue id of the order with that client id among ``orders``, or None."""
    for order in orders:
        if str(order.get("clientOrderId")) == str(client_order_id):
            return str(order["id"])
    return None


def _increment(value: object, mode: int) -> Decimal | None:
    """A market's price or amount increment from ccxt's ``precision``: the increment
    itself in ccxt's ``TICK_SIZE`` mode, ``10**-n`` for ``n`` decimal places; None when
    unknown or not positive."""
    number = ccxt_decimal(value, default=None)
    if number is None or number <= 0:
        return None
    if mode == TICK_SIZE:
        return number
    return Decimal(1).scaleb(-int(number))


def _plausible_ms(value: object, now_ms: int) -> int | None:
    """``value`` (an int, or the digits of a text body) as ms since the epoch if it is
    within :data:`MAX_CLOCK_OFFSET_MS` of ``now_ms``; else None."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value - now_ms) <= MAX_CLOCK_OFFSET_MS else None
    return None


def round_to(value: Decimal, increment: Decimal, up: bool) -> Decimal:
    """``value`` rounded to a multiple of ``increment`` (> 0), up or down."""
    steps = (value / increment).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return (steps * increment).normalize() if steps else Decimal(0)


class CcxtVenue:
    """One account on one ccxt exchange (the :class:`~tradebus.engine.venue.Venue` protocol).

    Parameters
    ----------
    exchange
        A configured ``ccxt.async_support`` exchange (keys set, URLs possibly
        pointing at a local test server).
    account
        The tradebus account id.
    budget, backoff
        The account's rate budget and the retry back-off.
    """

    def __init__(
        self,
        exchange: Any,
        account: AccountId,
        budget: RateBudget,
        backoff: Backoff | None = None,
        *,
        perpetual: bool = False,
        catalog: MarketCatalog | None = None,
        market_venue: str = "",
        leverage: Decimal | None = None,
    ) -> None:
        self.exchange = exchange
        self.perpetual = perpetual
        """The account trades perpetuals: its positions are part of its balances."""
        self._catalog = catalog
        self._market_venue = market_venue or exchange.id
        self._positions_seen: list[PositionRisk] = []
        self._leverage = leverage
        self.name: str = exchange.id
        self.account = account
        self._budget = budget
        self._backoff = backoff or Backoff()
        self.clock_offset_ms: int | None = None
        """The last measured offset of our clock from the venue's (ms, ours minus theirs),
        None until measured (:meth:`measure_clock_offset`)."""

    async def _call(
        self, changes_state: bool, method: str, *args: Any, missing: Any = _RAISE
    ) -> Any:
        """``exchange.<method>(*args)`` under the budget and retries.

        ``missing``: what to return when the venue says the order does not
        exist (instead of raising).
        """
        fn = getattr(self.exchange, method)

        async def venue_call() -> Any:
            try:
                return await fn(*args)
            except ccxt.BaseError:
                raise
            except Exception as exc:  # ccxt choked on what the venue sent: a bad answer
                message = f"{self.name} {method}: unexpected answer ({exc!r})"
                raise ccxt.BadResponse(message) from exc

        try:
            return await call_with_retries(
                venue_call,
                budget=self._budget,
                backoff=self._backoff,
                changes_state=changes_state,
                before_retry=self._before_retry,
            )
        except VenueCallError as exc:
            if missing is not _RAISE and exc.__cause__ is not None and is_not_found(exc.__cause__):
                return missing
            if exc.error.kind == "permanent":
                raise VenueRejected(exc.error.reason, exc.error.message) from None
            raise VenueUnavailable(exc.error) from None

    async def _before_retry(self, error: VenueError) -> None:
        """After an expired request (our clock, or its offset, is off the venue's): measure
        the offset again (:meth:`measure_clock_offset`), so the next attempt is signed in
        the venue's time."""
        if error.reason == REQUEST_EXPIRED:
            await self.measure_clock_offset("request expired at the venue")

    async def measure_clock_offset(self, why: str = "measured") -> int | None:
        """Set ccxt's ``timeDifference`` (ms our clock is ahead of the venue's; its signed
        requests' timestamps subtract it) and :attr:`clock_offset_ms` from the venue's
        time endpoint; return it, or None when the venue's time could not be read (logged;
        the offset stays). ``why`` goes in the log line, a warning unless the offset is
        within :data:`CLOCK_DRIFT_WARN_MS` of a routine measurement.

        ccxt's own ``load_time_difference`` is not used: its Backpack ``fetch_time`` reads
        the first character of the plain-number body Backpack answers ``/api/v1/time``
        with, so it would set an offset of about the whole epoch. A reported time more
        than :data:`MAX_CLOCK_OFFSET_MS` from ours is taken from the raw body instead.
        """
        ex = self.exchange
        try:
            before = ex.milliseconds()
            reported = await ex.fetch_time()
            after = ex.milliseconds()
        except Exception as exc:
            log.warning(
                "the venue's time could not be read",
                extra={"account": self.account, "venue": self.name, "error": repr(exc)},
            )
            return None
        venue_ms = _plausible_ms(reported, after)
        if venue_ms is None:  # ccxt could not read it: the body it received
            venue_ms = _plausible_ms(getattr(ex, "last_http_response", None), after)
        if venue_ms is None:
            log.warning(
                "the venue's time is unreadable or implausible",
                extra={"account": self.account, "venue": self.name, "reported": repr(reported)},
            )
            return None
        offset = (before + after) // 2 - venue_ms
        ex.options["timeDifference"] = offset
        self.clock_offset_ms = offset
        drifting = abs(offset) > CLOCK_DRIFT_WARN_MS or why != "measured"
        log.log(
            logging.WARNING if drifting else logging.INFO,
            f"clock offset from the venue: {why}",
            extra={"account": self.account, "venue": self.name, "offset_ms": offset},
        )
        return offset

    async def start(self) -> None:
        """Load the markets (retried while the venue is unavailable), then measure the
        clock offset from the venue's (:meth:`measure_clock_offset`; signed requests are
        stamped in the venue's time from the first)."""
        await self._call(False, "load_markets")
        self._take_markets()
        await self.measure_clock_offset()
        if self.perpetual and self._leverage is not None:
            await self.set_leverage(self._leverage)

    async def set_leverage(self, leverage: Decimal) -> None:
        """Set the account's leverage at the venue where it is account-wide and settable:
        Backpack's ``leverageLimit`` (``PATCH /api/v1/account``, instruction
        ``accountUpdate``; a whole number). Other venues set it per market (ccxt
        ``set_leverage``) or on their web page: logged, not changed here.

        Raises
        ------
        VenueRejected
            The venue refuses the value.
        """
        if self.name != "backpack":
            log.info(
                "leverage is not set through this venue's account: set it per market there",
                extra={"account": self.account, "venue": self.name, "leverage": str(leverage)},
            )
            return
        limit = str(int(leverage))
        await self._call(False, "privatePatchApiV1Account", {"leverageLimit": limit})
        log.info("leverage set", extra={"account": self.account, "leverage_limit": limit})

    async def refresh_markets(self) -> int:
        """Load the venue's markets again (ccxt ``load_markets(reload=True)``) and take
        them into the catalog; the number of markets that changed."""
        await self._call(False, "load_markets", True)
        return self._take_markets()

    def _take_markets(self) -> int:
        """Put the loaded markets into the catalog (:meth:`venue_markets`); how many
        changed (one log line; each market at debug level: a venue lists thousands)."""
        if self._catalog is None:
            return 0
        changed = self._catalog.update({self._market_venue: self.venue_markets()})
        for venue, market in changed:
            log.debug(
                "market from the venue",
                extra={
                    "venue": venue,
                    "symbol": market.symbol,
                    "tick": str(market.tick_size),
                    "step": str(market.step_size),
                    "kind": market.kind,
                },
            )
        if changed:
            log.info(
                "markets from the venue",
                extra={
                    "account": self.account,
                    "venue": self._market_venue,
                    "changed": len(changed),
                },
            )
        return len(changed)

    def venue_markets(self) -> list[Market]:
        """The venue's active spot and perpetual (swap) markets as ccxt loaded them, as
        :class:`~tradebus.common.markets.Market` (native id, increments from ccxt's
        ``precision`` in its tick-size mode, minimums from ``limits``). Where a spot and
        a swap market share an id (Binance), the account's kind wins."""
        found: dict[str, Market] = {}
        for m in (self.exchange.markets or {}).values():
            swap = bool(m.get("swap"))
            if m.get("active") is False or not (m.get("spot") or swap):
                continue
            tick = _increment(m["precision"].get("price"), self.exchange.precisionMode)
            step = _increment(m["precision"].get("amount"), self.exchange.precisionMode)
            if tick is None or step is None:
                continue
            limits = m.get("limits") or {}
            market = Market(
                symbol=m["id"],
                base=m["base"],
                quote=m["quote"],
                tick_size=tick,
                step_size=step,
                min_notional=ccxt_decimal((limits.get("cost") or {}).get("min"), default=ZERO),
                min_qty=ccxt_decimal((limits.get("amount") or {}).get("min"), default=ZERO),
                kind="perpetual" if swap else "spot",
                oto=oto_offer(self.exchange, m),
            )
            if m["id"] not in found or swap == self.perpetual:
                found[m["id"]] = market
        return sorted(found.values(), key=lambda market: market.symbol)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.exchange.close()

    def market(self, symbol: str) -> dict[str, Any]:
        """The ccxt market of a native symbol (``SOL_USDC``).

        Raises
        ------
        VenueRejected
            ``unknown_symbol`` if the exchange has no such market.
        """
        found = self.exchange.markets_by_id.get(symbol) if self.exchange.markets_by_id else None
        if not found:
            raise VenueRejected("unknown_symbol", f"{self.name} has no market {symbol}")
        return found[0] if isinstance(found, list) else found

    def sized(self, order: VenueOrder) -> tuple[Decimal, Decimal | None]:
        """``(qty, price)`` rounded to the market's step and tick and checked against minimums.

        Raises
        ------
        VenueRejected
            ``below_minimum`` if the rounded order is under the minimum quantity or notional.
        """
        market = self.market(order.symbol)
        step = ccxt_decimal(market["precision"].get("amount"), default=None)
        tick = ccxt_decimal(market["precision"].get("price"), default=None)
        qty = round_to(order.qty, step, up=False) if step else order.qty
        price = order.price
        if price is not None and tick:
            price = round_to(price, tick, up=order.side == "sell")
        limits = market.get("limits") or {}
        min_qty = ccxt_decimal((limits.get("amount") or {}).get("min"), default=None)
        min_cost = ccxt_decimal((limits.get("cost") or {}).get("min"), default=None)
        if qty <= 0 or (min_qty is not None and qty < min_qty):
            raise VenueRejected(
                "below_minimum", f"quantity {qty} of {order.symbol} is below {min_qty or 'a step'}"
            )
        if price is not None and min_cost is not None and qty * price < min_cost:
            raise VenueRejected(
                "below_minimum", f"notional {qty * price} of {order.symbol} is below {min_cost}"
            )
        return qty, price

    async def place(self, order: VenueOrder) -> VenueAck:
        """Place ``order`` with its client id (and, for ``ioc``, ccxt's unified
        ``timeInForce: IOC``: the venue fills what it can at once and expires the rest).

        Raises
        ------
        VenueRejected
            Refused (sizes, funds, symbol, ...), with a reason.
        VenueUnavailable
            Outcome unknown (``unknown_outcome``), account misconfigured, or venue down.
        """
        qty, price = self.sized(order)
        market = self.market(order.symbol)
        params: dict[str, object] = {"clientOrderId": int(order.client_order_id)}
        if order.time_in_force != "gtc":
            params["timeInForce"] = order.time_in_force.upper()
        if order.reduce_only:
            params["reduceOnly"] = True
        placed = await self._call(
            True,
            "create_order",
            market["symbol"],
            order.order_type,
            order.side,
            str(qty),
            None if price is None else str(price),
            params,
        )
        return VenueAck(venue_order_id=str(placed["id"]))

    async def cancel(self, client_order_id: str, symbol: str) -> bool:
        """Cancel the open order with ``client_order_id``; False if it is not open.

        Found among the open orders first (any ccxt exchange can list them;
        not every one cancels by client id), then cancelled by the venue's id.
        """
        market = self.market(symbol)
        venue_id = await self._open_order_id(client_order_id, market["symbol"])
        if venue_id is None:
            return False
        done = await self._call(True, "cancel_order", venue_id, market["symbol"], missing=None)
        return done is not None

    async def _open_order_id(self, client_order_id: str, unified: str) -> str | None:
        for order in await self._call(False, "fetch_open_orders", unified):
            if str(order.get("clientOrderId")) == str(client_order_id):
                return str(order["id"])
        return None

    async def find_order(self, client_order_id: str, symbol: str, since_ns: int = 0) -> str | None:
        """The venue's id of the order with ``client_order_id``, open or done; None if unknown.

        The open orders first, then the order history back to ``since_ns``
        (the ledger row's creation, less :data:`HISTORY_SLACK_MS` for clock
        skew): Backpack lists it newest first, :data:`HISTORY_PAGE` at a time,
        paged by ``offset`` (at most :data:`HISTORY_MAX_PAGES` pages); other
        exchanges are asked ``fetch_orders(symbol, since)``. A done order
        beyond the first page must still be found, or it would be sent twice.
        """
        market = self.market(symbol)
        venue_id = await self._open_order_id(client_order_id, market["symbol"])
        if venue_id is not None or not self.exchange.has.get("fetchOrders"):
            return venue_id
        since_ms = max(0, since_ns // 1_000_000 - HISTORY_SLACK_MS) if since_ns else None
        if self.name != "backpack":
            orders = await self._call(False, "fetch_orders", market["symbol"], since_ms)
            return _client_match(orders, client_order_id)
        for page in range(HISTORY_MAX_PAGES):
            params = {"offset": page * HISTORY_PAGE} if page else {}
            orders = await self._call(
                False, "fetch_orders", market["symbol"], None, HISTORY_PAGE, params
            )
            found = _client_match(orders, client_order_id)
            oldest = min((o.get("timestamp") or 0 for o in orders), default=0)
            if found is not None or len(orders) < HISTORY_PAGE:
                return found
            if since_ms is not None and oldest and oldest < since_ms:
                return None  # older than the order can be
        return None

    async def open_orders(self) -> list[VenueOpenOrder]:
        """Every open order of the account at the venue (ccxt ``fetch_open_orders`` without a
        symbol: Backpack ``GET /api/v1/orders``), ours or not."""
        out = []
        for order in await self._call(False, "fetch_open_orders"):
            market = self.exchange.markets.get(order.get("symbol")) or {}
            client = order.get("clientOrderId")
            remaining = order.get("remaining")
            qty = ccxt_decimal(remaining if remaining is not None else order.get("amount"))
            out.append(
                VenueOpenOrder(
                    venue_order_id=str(order["id"]),
                    client_order_id=None if client in (None, "") else str(client),
                    symbol=str(market.get("id") or order.get("symbol")),
                    side=order["side"],
                    price=ccxt_decimal(order.get("price"), default=None),
                    qty=qty,
                )
            )
        return out

    async def cancel_by_venue_id(self, venue_order_id: str, symbol: str) -> bool:
        """Cancel the venue's order ``venue_order_id`` of native ``symbol``; False if it is
        not open (any more)."""
        market = self.market(symbol)
        done = await self._call(
            True, "cancel_order", venue_order_id, market["symbol"], missing=None
        )
        return done is not None

    async def last_price(self, symbol: str) -> Decimal | None:
        """The ticker's last trade price of native ``symbol`` (ccxt ``fetch_ticker``)."""
        ticker = await self._call(False, "fetch_ticker", self.market(symbol)["symbol"])
        return ccxt_decimal(ticker.get("last"), default=None)

    def take_late_fills(self) -> list[VenueFill]:
        """None: a live venue's fills come from its order stream and the fill poller."""
        return []

    def perpetual_exposure(self, symbol: str, side: Side) -> None:
        """None: execution does not mirror a live venue's positions and resting orders
        order by order, so no live perpetual order counts as closing for
        ``max_open_orders`` (see :meth:`Venue.perpetual_exposure`)."""
        return None

    async def balances(self) -> list[AssetBalance]:
        """Every asset with a non-zero balance, from ``fetch_balance``; for an account that
        trades perpetuals, also each open position as its pseudo-asset
        (:func:`~tradebus.ledger.entries.position_asset`), signed (:meth:`positions`)."""
        raw = await self._call(False, "fetch_balance")
        out = []
        for asset, row in sorted(raw.items()):
            if not isinstance(row, dict) or "total" not in row:
                continue
            total = ccxt_decimal(row.get("total"), default=None) or Decimal(0)
            free = ccxt_decimal(row.get("free"), default=None) or Decimal(0)
            used = ccxt_decimal(row.get("used"), default=None)
            locked = used if used is not None else total - free
            if total or locked:
                out.append(AssetBalance(asset=asset, total=total, free=free, locked=locked))
        if self.perpetual:
            for p in sorted(await self.positions(), key=lambda p: p.symbol):
                asset = position_asset(p.symbol)
                out.append(AssetBalance(asset=asset, total=p.qty, free=p.qty, locked=ZERO))
        return out

    async def funding_payments(self, since_ms: int | None, limit: int) -> list[VenueFunding]:
        """The account's funding payments since ``since_ms`` (ccxt ``fetch_funding_history``;
        Backpack: ``GET /wapi/v1/history/funding``, newest ``limit``): each in the market's
        settle asset, received > 0, paid < 0, Backpack's own decimal text."""
        rows = await self._call(False, "fetch_funding_history", None, since_ms, limit)
        out = []
        for row in rows:
            market = self.exchange.market(row["symbol"])
            amount = ccxt_decimal(row.get("amount"), row.get("info"), ("quantity",))
            out.append(
                VenueFunding(
                    symbol=market["id"],
                    asset=market.get("settle") or market["quote"],
                    amount=amount,
                    interval_end_ms=int(row["timestamp"]),
                )
            )
        return out

    async def positions(self) -> list[PositionRisk]:
        """The open perpetual positions with the venue's risk figures (ccxt
        ``fetch_positions``): the signed quantity in base units (short < 0; Backpack's own
        ``netQuantity``, as ccxt's ``contracts`` is its ``netExposureQuantity``, which adds
        the worst case of open orders; other venues ``contracts * contractSize``), entry,
        mark and estimated liquidation prices, and the maintenance margin ``|qty| * mark *
        maintenanceMarginPercentage`` (Backpack ``mmf``)."""
        out: list[PositionRisk] = []
        for p in await self._call(False, "fetch_positions"):
            info = p.get("info") or {}
            market = self.exchange.market(p["symbol"])
            if self.name == "backpack" and info.get("netQuantity") is not None:
                qty = Decimal(str(info["netQuantity"]))
            else:
                contracts = ccxt_decimal(p.get("contracts"), default=ZERO)
                size = ccxt_decimal(market.get("contractSize"), default=Decimal(1))
                qty = contracts * size * (-1 if p.get("side") == "short" else 1)
            if not qty:
                continue
            mark = ccxt_decimal(p.get("markPrice"), info, ("markPrice",), default=None)
            mmf = ccxt_decimal(p.get("maintenanceMarginPercentage"), info, ("mmf",), default=None)
            liquidation = ccxt_decimal(
                p.get("liquidationPrice"), info, ("estLiquidationPrice",), default=None
            )
            out.append(
                PositionRisk(
                    symbol=market["id"],
                    settle=market.get("settle") or market["quote"],
                    qty=qty,
                    entry_price=ccxt_decimal(
                        p.get("entryPrice"), info, ("entryPrice",), default=None
                    ),
                    mark_price=mark,
                    liquidation_price=liquidation or None,
                    maintenance_margin=None
                    if mark is None or mmf is None
                    else abs(qty) * mark * mmf,
                )
            )
        self._positions_seen = out
        return out

    def positions_seen(self) -> list[PositionRisk]:
        """The positions the last :meth:`balances` (or :meth:`positions`) read."""
        return list(self._positions_seen)

    async def my_trades(self, since_ms: int | None, limit: int = 1000) -> list[dict[str, Any]]:
        """The account's fills (ccxt trade structures) since ``since_ms`` (inclusive), every page.

        Backpack answers newest first, ``limit`` at a time, paged by ``offset``;
        other exchanges are asked for one page.
        """
        out: list[dict[str, Any]] = []
        while True:
            params = {"offset": len(out)} if self.name == "backpack" and out else {}
            page = await self._call(False, "fetch_my_trades", None, since_ms, limit, params)
            out.extend(page)
            if len(page) < limit or self.name != "backpack":
                return out

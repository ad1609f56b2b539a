"""Live accounts: their ccxt venue, and the task that brings their fills into the ledger.

* :func:`ccxt_client` builds the ccxt client of one account (keys from
  :mod:`.keys`, ``api_url``/``ws_url`` overrides): a ``ccxt.pro`` client when
  ccxt.pro has the exchange (REST and the private order stream on one
  client), else ``ccxt.async_support``; :func:`live_venue` wraps it with the
  account's :class:`RateBudget`.
* :class:`FillPoller` asks the venue for the account's fills
  (``fetch_my_trades`` since the last one seen) and books them through
  :meth:`ExecutionEngine.record_fills`: every ``poll_seconds`` while the
  account's order stream (:mod:`.order_stream`) is down or absent, every
  ``backstop_seconds`` while it is up, and at once when the stream asks
  (:meth:`FillPoller.wake`: it came back, or it saw a fill it could not
  book). A fill is keyed by ``<market id>:<venue trade id>`` (Backpack's
  trade ids repeat across symbols), so one seen twice, by the stream and by
  a poll, is booked once (the ledger's ``(venue, account, trade_id)`` key);
  its order is found by client id (the ledger's, sent with the order), else
  by the venue's order id. Each round also resolves orders of unknown
  outcome (:meth:`ExecutionEngine.resolve_unknown`), so one is settled even
  if no other intent comes for the account.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any, Protocol

import ccxt.async_support
import ccxt.pro

from tradebus.common.ccxt_urls import override_urls
from tradebus.common.config import ConfigError
from tradebus.common.markets import MarketCatalog
from tradebus.common.money import ZERO, ccxt_decimal
from tradebus.common.order_status import CANCELABLE, TERMINAL
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.core import RetryLater
from tradebus.engine.venue import VenueFill, VenueRejected, VenueUnavailable
from tradebus.execution.ccxt_venue import CcxtVenue
from tradebus.execution.keys import VENUE_HTTP_LOG, AccountKeys
from tradebus.execution.retry import RateBudget
from tradebus.ledger.entries import funding_ref
from tradebus.ledger.rows import OrderRow
from tradebus.ledger.store import Ledger

log = logging.getLogger(__name__)

LOOKBACK_MS = 60_000
"""How far before the oldest open order (or the start) the first poll looks (clock skew)."""

REPOLL_MS = 10_000
"""Each poll asks again for the fills of this window before the newest seen (late listings)."""

FUNDING_FIRST_PAGE = 1000
"""Funding payments read on the first round (those made while execution was down)."""
FUNDING_PAGE = 100
"""... and on every later round."""
FUNDING_SLACK_MS = 8 * 3600 * 1000
"""Funding is read again back to one (8-hour) interval before the newest seen: a venue
may list a payment late; the ledger books each once."""

ENDED_WAIT_SECONDS = 0.1
ENDED_WAIT_ROUNDS = 100
"""How often, and how long (10 s), an order the venue ended is looked at until it can be
closed: the venue may report the end before execution has the answer to its request."""
ENDED_POLL_EVERY = 10
"""... and every how many looks its fills are asked for again while the ledger lacks some
(once a second: a venue may list a fill late, and the account's request budget is shared)."""


def ccxt_client(spec: AccountSpec, keys: AccountKeys, timeout_ms: int = 10_000) -> Any:
    """A ccxt client of ``spec.venue`` with the account's keys (``ccxt.pro`` if it has it).

    ``sandbox`` switches the client to the venue's testnet (ccxt
    ``set_sandbox_mode``); then ``api_url`` replaces every REST URL of
    ``urls['api']``, ``ws_url`` every WebSocket URL of ``urls['api']['ws']``.
    ccxt's own throttle is off: the account's :class:`RateBudget` is the one budget.

    Raises
    ------
    ConfigError
        ``sandbox`` for a venue ccxt knows no testnet or sandbox of.
    """
    module = ccxt.pro if spec.venue in ccxt.pro.exchanges else ccxt.async_support
    client = getattr(module, spec.venue)(
        {
            **keys.ccxt_options(),
            "enableRateLimit": False,
            "timeout": timeout_ms,
            "logger": VENUE_HTTP_LOG,  # redacts the keys from ccxt's request logs
        }
    )
    if spec.sandbox:
        if not has_sandbox(spec.venue):
            raise ConfigError(
                f"account {spec.id}: sandbox: ccxt knows no testnet or sandbox of {spec.venue};"
                " remove sandbox, or point api_url at one"
            )
        client.set_sandbox_mode(True)
    override_urls(client, spec.api_url, spec.ws_url)
    return client


def has_sandbox(venue: str) -> bool:
    """True if ccxt knows a testnet or sandbox of exchange ``venue`` (``urls['test']``)."""
    return bool(getattr(ccxt.async_support, venue)().urls.get("test"))


def live_venue(spec: AccountSpec, keys: AccountKeys, catalog: MarketCatalog) -> CcxtVenue:
    """The :class:`CcxtVenue` of a live account (markets not loaded yet: ``await start()``);
    the markets it loads go into ``catalog`` under the account's ``market_data`` venue."""
    return CcxtVenue(
        ccxt_client(spec, keys, int(spec.timeout_seconds * 1000)),
        spec.id,
        RateBudget(rate=spec.rate_per_second, burst=spec.burst),
        perpetual=spec.market_kind == "perpetual",
        catalog=catalog,
        market_venue=spec.market_data,
        leverage=spec.leverage if spec.market_kind == "perpetual" else None,
    )


class StreamState(Protocol):
    """What the poller needs to know of the account's order stream."""

    @property
    def up(self) -> bool:
        """True while the stream is connected and delivering."""
        ...


class FillPoller:
    """Polls one live account's fills into the engine (module docstring).

    Parameters
    ----------
    engine
        The execution engine (``record_fills``, ``resolve_unknown``, ``lock``, ``halt``).
    ledger
        To find the order of a fill.
    venue
        The account's venue.
    spec
        The account.
    stream
        The account's order stream, if it has one (its ``up`` sets the period).
    """

    def __init__(
        self,
        engine: Any,
        ledger: Ledger,
        venue: CcxtVenue,
        spec: AccountSpec,
        stream: StreamState | None = None,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._venue = venue
        self._spec = spec
        self.stream = stream
        self._wake = asyncio.Event()
        self._since: int | None = None
        self._seen: dict[str, int] = {}  # fill key -> venue ms, pruned below _since
        self._funding_since: int | None = None  # venue ms; None: not read yet
        self._unmatched: set[str] = set()  # fills of no order of ours (warned once)

    async def start_point(self) -> int:
        """Where the first poll starts: before the oldest open order, else now (venue ms)."""
        oldest = await self._ledger.oldest_open_order_ns(self._spec.id)
        start = oldest // 1_000_000 if oldest is not None else int(time.time() * 1000)
        return start - LOOKBACK_MS

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set or the account is halted."""
        while not stop.is_set() and not self.halted:
            try:
                await self.poll_once()
            except VenueUnavailable as exc:
                if exc.error.kind == "configuration":
                    await self._engine.halt(self._spec.id, exc.error.reason)
                    return
                log.warning(
                    "fill poll failed",
                    extra={"account": self._spec.id, "reason": exc.error.reason},
                )
            except (RetryLater, VenueRejected) as exc:
                log.warning("fill poll: %s", type(exc).__name__, extra={"account": self._spec.id})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fill poll crashed", extra={"account": self._spec.id})
            await self._pause(stop)

    @property
    def halted(self) -> bool:
        """True once the account is halted (its tasks stop)."""
        return self._spec.id in self._engine.halted

    def wake(self) -> None:
        """Poll now (the stream came back, or it saw a fill it could not book)."""
        self._wake.set()

    @property
    def period(self) -> float:
        """Seconds between polls now: ``backstop_seconds`` while the stream is up."""
        up = self.stream is not None and self.stream.up
        return self._spec.backstop_seconds if up else self._spec.poll_seconds

    async def _pause(self, stop: asyncio.Event) -> None:
        """Wait ``period`` seconds, or less if woken or stopped (re-checks the period)."""
        deadline = time.monotonic() + self.period
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            while not stop.is_set() and not self._wake.is_set():
                # the period shortens at once when the stream goes down
                left = min(deadline, time.monotonic() + self.period) - time.monotonic()
                if left <= 0:
                    break
                await asyncio.wait(waiters, timeout=min(left, 0.25))
        finally:
            for w in waiters:
                w.cancel()
        self._wake.clear()

    async def poll_once(self) -> int:
        """One round: resolve unknown orders, fetch new fills, book them; the number booked."""
        if self._since is None:
            self._since = await self.start_point()
        async with self._engine.lock:
            await self._engine.resolve_unknown(self._spec.id)
        trades = await self._venue.my_trades(self._since)
        booked = await self.book(trades)
        if self._venue.perpetual:
            await self._book_funding()
            await self._engine.balances(self._spec.id)  # positions and margin ratio, measured
        stamps = [int(t.get("timestamp") or 0) for t in trades]
        if stamps:
            # keep re-reading the last REPOLL_MS: a venue may list a fill late
            self._since = max(self._since, max(stamps) - REPOLL_MS)
            self._seen = {k: ts for k, ts in self._seen.items() if ts >= self._since}
        return len(booked)

    async def _book_funding(self) -> int:
        """Book the funding payments not booked yet, each once (journal kind ``funding``,
        :func:`~tradebus.ledger.entries.funding_ref`). The first round reads the venue's
        newest :data:`FUNDING_FIRST_PAGE` (payments made while execution was down), later
        ones the last :data:`FUNDING_PAGE` since the newest seen less one interval."""
        since = self._funding_since
        limit = FUNDING_FIRST_PAGE if since is None else FUNDING_PAGE
        booked = 0
        now = time.time_ns()
        for payment in await self._venue.funding_payments(since, limit):
            ref = funding_ref(payment.symbol, payment.interval_end_ms)
            if payment.amount and await self._ledger.record_funding(
                self._spec.id, payment.asset, payment.amount, ref, now
            ):
                booked += 1
                log.info(
                    "funding booked",
                    extra={"account": self._spec.id, "symbol": payment.symbol, "ref": ref},
                )
            newest = payment.interval_end_ms - FUNDING_SLACK_MS
            self._funding_since = max(self._funding_since or 0, newest)
        return booked

    async def order_ended(self, client_id: int, executed: Decimal, reason: str) -> bool:
        """The venue ended the order with ``client_id`` itself after ``executed`` (base
        units) of it filled (an IOC's rest expired; an order canceled at the venue): book
        its fills first (a poll, when the ledger holds less), then close it
        (:meth:`~tradebus.engine.core.ExecutionEngine.ended_at_venue`) once execution has
        its acceptance. True if it was closed here."""
        for attempt in range(ENDED_WAIT_ROUNDS):
            row = await self._ledger.get_order_by_client_id(client_id)
            if row is None or row.account_id != self._spec.id or row.status in TERMINAL:
                return False
            if row.filled_qty < executed:
                if attempt % ENDED_POLL_EVERY:  # the fill history may list it late
                    await asyncio.sleep(ENDED_WAIT_SECONDS)
                    continue
                try:
                    await self.poll_once()
                except (VenueUnavailable, RetryLater, VenueRejected):
                    self.wake()  # the poller books them when the venue answers
            elif row.status in CANCELABLE:
                async with self._engine.lock:
                    return bool(
                        await self._engine.ended_at_venue(row.user_id, row.intent_id, reason)
                    )
            await asyncio.sleep(ENDED_WAIT_SECONDS)
        log.warning(
            "an order the venue ended is still open here",
            extra={"account": self._spec.id, "client_order_id": client_id, "reason": reason},
        )
        return False

    async def book(self, trades: list[dict[str, Any]]) -> list[VenueFill]:
        """Book the ccxt trade structures not booked yet (from a poll or the stream).

        Returns the fills booked now. A trade of no order in the ledger (yet)
        is skipped with a warning (once), and booked by a later round.
        """
        fills: list[VenueFill] = []
        keys: dict[str, int] = {}
        for trade in sorted(trades, key=lambda t: t.get("timestamp") or 0):
            key = self._key(trade)
            if key in self._seen or key in keys:
                continue
            row = await self._order_of(trade)
            if row is None:
                if key not in self._unmatched:
                    self._unmatched.add(key)
                    log.warning(
                        "a venue fill of no known order (yet)",
                        extra={"account": self._spec.id, "trade": key},
                    )
                continue
            fills.append(self._fill(trade, key, row))
            keys[key] = int(trade.get("timestamp") or 0)
        if fills:
            async with self._engine.lock:
                await self._engine.record_fills(fills)
        self._seen.update(keys)
        return fills

    def _key(self, trade: dict[str, Any]) -> str:
        info = trade.get("info") or {}
        market_id = info.get("symbol") or self._venue.exchange.market(trade["symbol"])["id"]
        return f"{market_id}:{trade['id']}"

    async def _order_of(self, trade: dict[str, Any]) -> OrderRow | None:
        info = trade.get("info") or {}
        client_id = trade.get("clientOrderId") or info.get("clientId")
        if client_id is not None and str(client_id).isdigit():
            row = await self._ledger.get_order_by_client_id(int(client_id))
            if row is not None and row.account_id == self._spec.id:
                return row
        if trade.get("order") is not None:
            return await self._ledger.get_order_by_venue_id(self._spec.id, str(trade["order"]))
        return None

    def _fill(self, trade: dict[str, Any], key: str, row: OrderRow) -> VenueFill:
        # Backpack's own decimal strings when it is Backpack (ccxt's unified numbers are floats)
        info = (trade.get("info") or {}) if self._venue.name == "backpack" else {}
        fee = trade.get("fee") or {}
        fee_asset = fee.get("currency") or self._venue.market(row.symbol)["quote"]
        return VenueFill(
            venue=self._venue.name,
            account=self._spec.id,
            client_order_id=str(row.client_order_id),
            intent_id=row.intent_id,
            symbol=row.symbol,
            side=trade.get("side") or row.side,  # type: ignore[arg-type]
            price=ccxt_decimal(trade.get("price"), info, ("price",)),
            qty=ccxt_decimal(trade.get("amount"), info, ("quantity",)),
            fee=ccxt_decimal(fee.get("cost"), info, ("fee",), default=ZERO),
            fee_asset=fee_asset,
            liquidity="maker" if trade.get("takerOrMaker") == "maker" else "taker",
            trade_id=key,
            ts_event=int(trade.get("timestamp") or 0) * 1_000_000,
            # a contract moves the position; its realized P&L, which Backpack's fills do
            # not carry, is computed when the fill is booked
            market_kind="perpetual" if self._venue.market(row.symbol).get("contract") else "spot",
            realized_pnl=None,
        )

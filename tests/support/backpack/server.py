"""A local Backpack exchange for tests: REST and WebSocket on 127.0.0.1, one free port.

Use as ``async with BackpackServer() as server:`` (or :meth:`start` /
:meth:`stop`). Point ccxt at it with :meth:`ccxt_urls` (or get a configured
client from :meth:`ccxt_client`); accounts are ED25519 key pairs made by
:meth:`add_account`.

The test drives market time: :meth:`feed_trade` / :meth:`feed_quote` (or
:meth:`load` recorded ticks and :meth:`replay` them) print trades and quotes;
orders fill against those trades (:mod:`tests.support.backpack.engine`), and
every change is published on the WebSocket before the call returns, so a test
is deterministic without sleeping.

Faults (see :mod:`tests.support.backpack.faults`): :meth:`rate_limit_next`,
:meth:`fail_next`, :meth:`insufficient_funds_next`, :meth:`stall_next`,
:meth:`drop_ws`, :meth:`drop_ws_on_next_fill`, :meth:`resend_ws_frames`,
:attr:`WsHub.resend_on_subscribe <tests.support.backpack.ws.WsHub>`.

Inspection (Python, not HTTP): :meth:`orders`, :meth:`open_orders`,
:meth:`order`, :meth:`fills`, :meth:`balances`, :attr:`requests`,
:attr:`ws` (connections, frames sent, messages received).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.support.backpack.auth import Credentials, generate_credentials
from tests.support.backpack.engine import Exchange
from tests.support.backpack.faults import Faults, InjectedError, RequestRecord, Stall
from tests.support.backpack.market import (
    BTC_USDC,
    ETH_USDC,
    Balance,
    Fill,
    MarketSpec,
    Order,
    Published,
)
from tests.support.backpack.perp import FundingPayment
from tests.support.backpack.rest import Rest
from tests.support.backpack.ws import WsHub
from tradebus.common.messages import QuoteTick, TradeTick

Number = Decimal | str | int


class BackpackServer:
    """The local Backpack exchange (module docstring).

    Parameters
    ----------
    markets
        Spot markets served (default BTC_USDC and ETH_USDC with Backpack's increments).
    maker_fee_bps, taker_fee_bps
        Fees on passive / marketable fills, in the asset received (a buy's in base).
    partial_fills
        If true, one trade fills at most its printed quantity (orders may fill
        in parts); else orders fill in full (the paper fill model).
    auth_errors
        ``"text"`` (default): a refused signature or stale timestamp answers
        401 with a plain-text reason, as Backpack does (ccxt: AuthenticationError).
        ``"json"``: 401 ``{"code": "INVALID_CLIENT_REQUEST", ..}`` (ccxt: BadRequest).
    ping_interval
        Seconds between the server's WebSocket pings (Backpack: 60); None: no pings.
    clock_us
        Exchange time in microseconds for every timestamp it writes (default:
        wall clock). Signatures are always checked against the wall clock.
    """

    def __init__(
        self,
        markets: Sequence[MarketSpec] = (BTC_USDC, ETH_USDC),
        *,
        maker_fee_bps: Number = 2,
        taker_fee_bps: Number = 5,
        partial_fills: bool = False,
        auth_errors: str = "text",
        ping_interval: float | None = 60.0,
        clock_us: Callable[[], int] | None = None,
    ) -> None:
        if auth_errors not in ("text", "json"):
            raise ValueError(f"auth_errors must be 'text' or 'json', got {auth_errors!r}")
        self.exchange = Exchange(
            list(markets),
            maker_fee_bps=Decimal(maker_fee_bps),
            taker_fee_bps=Decimal(taker_fee_bps),
            partial_fills=partial_fills,
            clock_us=clock_us,
        )
        self.auth_errors = auth_errors
        self.api_keys: set[str] = set()
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        """Every HTTP request, in arrival order (see :class:`RequestRecord`)."""
        self.pending: list[Published] = []
        self.ws = WsHub(
            self.exchange.markets,
            lambda key: key in self.api_keys,
            lambda: int(time.time() * 1000),
            ping_interval,
        )
        self._drop_on_fill: str | None = None
        self._held_frames: list[list[Published]] | None = None
        self._queue: list[TradeTick | QuoteTick] = []
        self._queue_symbol: str | None = None
        self._stopping = asyncio.Event()
        self._publishing = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.url = ""
        """``http://127.0.0.1:<port>``: the REST base (ccxt ``urls['api']['public'|'private']``)."""
        self.ws_url = ""
        """``ws://127.0.0.1:<port>/``: the WebSocket endpoint (ccxt ``urls['api']['ws'][..]``)."""

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> str:
        """Listen on a free port of 127.0.0.1; return :attr:`url`."""
        rest = Rest(self)
        app = web.Application()
        app.router.add_get("/", self.ws.handle)
        app.router.add_route("*", "/{tail:.+}", rest.dispatch)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/"
        return self.url

    async def stop(self) -> None:
        """Release held answers, close every connection, stop listening."""
        self._stopping.set()
        await self.ws.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BackpackServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def ccxt_urls(self) -> dict[str, Any]:
        """The value for a ccxt client's ``urls['api']`` (REST and ccxt.pro WebSocket)."""
        return {
            "public": self.url,
            "private": self.url,
            "ws": {"public": self.ws_url, "private": self.ws_url},
        }

    def ccxt_client(
        self, credentials: Credentials | None = None, *, pro: bool = False, **config: Any
    ) -> Any:
        """A ``ccxt.async_support.backpack`` (``ccxt.pro.backpack`` if ``pro``) on this server.

        ``config`` is passed to the constructor (e.g. ``timeout`` in ms); close it
        with ``await client.close()``.
        """
        if pro:
            import ccxt.pro as module
        else:
            import ccxt.async_support as module
        client = module.backpack({**(credentials.ccxt_config() if credentials else {}), **config})
        client.urls["api"] = self.ccxt_urls()
        return client

    # -- accounts ------------------------------------------------------------

    def add_account(self, balances: dict[str, Number] | None = None) -> Credentials:
        """A new account with a fresh key pair, funded with ``balances`` (asset -> amount)."""
        credentials = generate_credentials()
        self.api_keys.add(credentials.api_key)
        self.exchange.accounts.setdefault(credentials.api_key, {})
        for asset, amount in (balances or {}).items():
            self.deposit(credentials.api_key, asset, amount)
        return credentials

    def user_id(self, api_key: str) -> int:
        """Backpack's numeric user id of an account (its order among the accounts)."""
        return 1_813_870 + sorted(self.exchange.accounts).index(api_key)

    def apply_funding(self, symbol: str, rate: Number) -> list[FundingPayment]:
        """End a funding interval of perpetual ``symbol`` now: every open position pays
        (or receives) ``netQuantity * markPrice * rate`` in the quote asset."""
        now_ms = self.exchange.clock_us() // 1000
        return self.exchange.apply_funding(symbol, Decimal(rate), now_ms)

    def positions(self, api_key: str) -> dict[str, Decimal]:
        """The open perpetual positions of an account: symbol -> net quantity."""
        return {
            p.symbol: p.net_qty
            for p in self.exchange.positions.values()
            if p.account == api_key and p.net_qty
        }

    def deposit(self, api_key: str, asset: str, amount: Number) -> None:
        """Add ``amount`` of ``asset`` to an account (negative: withdraw)."""
        self.exchange.balance(api_key, asset).total += Decimal(amount)

    # -- market time ---------------------------------------------------------

    async def feed_trade(
        self, symbol: str, price: Number, quantity: Number, *, buyer_maker: bool = False
    ) -> list[Fill]:
        """Print one trade: fill what it fills, publish; return the fills it made."""
        before = len(self.exchange.fills)
        self.pending.extend(
            self.exchange.on_trade(symbol, Decimal(price), Decimal(quantity), buyer_maker)
        )
        await self.publish_pending()
        return self.exchange.fills[before:]

    async def feed_quote(
        self, symbol: str, bid: Number, bid_qty: Number, ask: Number, ask_qty: Number
    ) -> None:
        """Publish one best bid/ask (``bookTicker``); quotes fill nothing."""
        self.pending.extend(
            self.exchange.on_quote(
                symbol, Decimal(bid), Decimal(bid_qty), Decimal(ask), Decimal(ask_qty)
            )
        )
        await self.publish_pending()

    async def feed_depth(
        self,
        symbol: str,
        bids: Sequence[tuple[Number, Number]],
        asks: Sequence[tuple[Number, Number]],
    ) -> None:
        """Set the resting book ``GET /api/v1/depth`` shows (``(price, qty)`` levels, in any
        order) and publish its best bid/ask; as quotes, the levels fill nothing."""
        depth = (
            sorted((Decimal(p), Decimal(q)) for p, q in bids),
            sorted((Decimal(p), Decimal(q)) for p, q in asks),
        )
        (bid, bid_qty), (ask, ask_qty) = depth[0][-1], depth[1][0]
        self.pending.extend(self.exchange.on_quote(symbol, bid, bid_qty, ask, ask_qty))
        self.exchange.book(symbol).depth = depth
        await self.publish_pending()

    async def feed(self, tick: TradeTick | QuoteTick, symbol: str | None = None) -> list[Fill]:
        """Feed a recorded tradebus tick as ``symbol`` (default: the tick's own symbol).

        A :class:`TradeTick` whose aggressor sold is a trade whose buyer was the maker.
        """
        name = symbol or tick.symbol
        if isinstance(tick, TradeTick):
            return await self.feed_trade(
                name, tick.price, tick.size, buyer_maker=tick.aggressor == "sell"
            )
        await self.feed_quote(name, tick.bid, tick.bid_size, tick.ask, tick.ask_size)
        return []

    def load(self, ticks: Iterable[TradeTick | QuoteTick], symbol: str | None = None) -> int:
        """Queue recorded ticks for :meth:`replay`, relabelled as ``symbol``; the queue length."""
        self._queue.extend(ticks)
        self._queue_symbol = symbol
        return len(self._queue)

    @property
    def queued(self) -> int:
        """Ticks loaded and not replayed yet."""
        return len(self._queue)

    async def replay(self, count: int | None = None, *, until_fill: bool = False) -> int:
        """Feed the next ``count`` queued ticks (all if None), stopping after the first
        tick that makes a fill if ``until_fill``; the number fed."""
        fed = 0
        while self._queue and (count is None or fed < count):
            tick = self._queue.pop(0)
            fills = await self.feed(tick, self._queue_symbol)
            fed += 1
            if until_fill and fills:
                break
        return fed

    async def fill_order(
        self, order_id: str, quantity: Number | None = None, price: Number | None = None
    ) -> Fill:
        """Fill an open order now (``quantity`` of it, default all, at ``price``,
        default its limit or the last trade) as maker; a hook for exact scenarios."""
        order = self.exchange.orders[order_id]
        if not order.is_open:
            raise ValueError(f"order {order_id} is {order.status}")
        book = self.exchange.book(order.symbol)
        fill_price = Decimal(price) if price is not None else (order.price or book.last_price)
        if fill_price is None:
            raise ValueError("no price to fill at")
        qty = Decimal(quantity) if quantity is not None else order.remaining
        if qty is None:
            raise ValueError("give the quantity to fill of a quoteQuantity order")
        before = len(self.exchange.fills)
        self.pending.extend(self.exchange.fill(order, fill_price, qty, maker=True))
        await self.publish_pending()
        if len(self.exchange.fills) == before:
            raise ValueError(f"order {order_id} could not be filled ({order.expiry_reason})")
        return self.exchange.fills[-1]

    # -- publishing ----------------------------------------------------------

    async def publish_pending(self) -> None:
        """Publish what the exchange produced, in the order it happened (one publisher
        at a time), applying the drop-on-fill fault."""
        async with self._publishing:
            while self.pending:
                items, self.pending = self.pending, []
                if self._held_frames is not None:
                    self._held_frames.append(items)
                    continue
                for item in items:
                    await self._publish(item)

    async def _publish(self, item: Published) -> None:
        if item.kind == "orderFill" and self._drop_on_fill is not None:
            when, self._drop_on_fill = self._drop_on_fill, None
            targets = [conn for conn, _ in self.ws.receivers(item)]
            if when == "after":
                await self.ws.deliver(item)
            self.ws.drop(targets)
            return
        await self.ws.deliver(item)

    async def hold(self, seconds: float | None) -> bool:
        """Wait ``seconds`` (None: until :meth:`stop`); False if stopped first."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    # -- faults --------------------------------------------------------------

    def fail_next(
        self, status: int, code: str, message: str, count: int = 1, match: str | None = None
    ) -> InjectedError:
        """Answer the next ``count`` requests (matching ``match``) with this error, unprocessed."""
        fault = InjectedError(status, code, message, count, match)
        self.faults.errors.append(fault)
        return fault

    def rate_limit_next(self, count: int = 1, match: str | None = None) -> InjectedError:
        """HTTP 429 ``TOO_MANY_REQUESTS`` for the next ``count`` requests.

        ccxt raises RateLimitExceeded."""
        return self.fail_next(429, "TOO_MANY_REQUESTS", "Too many requests", count, match)

    def insufficient_funds_next(self, count: int = 1) -> InjectedError:
        """400 ``INSUFFICIENT_FUNDS`` for the next ``count`` order executions, unprocessed.

        ccxt raises InsufficientFunds."""
        return self.fail_next(
            400, "INSUFFICIENT_FUNDS", "Insufficient funds", count, "orderExecute"
        )

    def stall_next(
        self, match: str | None = "orderExecute", seconds: float | None = None, count: int = 1
    ) -> Stall:
        """Process the next ``count`` matching requests but withhold the answer ``seconds``
        (None: never; the connection is dropped when the server stops)."""
        fault = Stall(seconds, count, match)
        self.faults.stalls.append(fault)
        return fault

    def drop_ws(self) -> int:
        """Drop every WebSocket connection now (no close frame); the number dropped."""
        return self.ws.drop()

    def drop_ws_on_next_fill(self, when: str = "before") -> None:
        """On the next ``orderFill`` event, drop the connections it goes to:
        ``"before"`` sending it (the fill is made, the stream never tells) or ``"after"``."""
        if when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', got {when!r}")
        self._drop_on_fill = when

    def hold_ws_frames(self) -> None:
        """Keep every frame the exchange produces from now on (the requests and fills go
        on) until :meth:`release_ws_frames`."""
        self._held_frames = []

    async def release_ws_frames(self, pause: float = 0.0) -> int:
        """Send the held frames: what each request or trade produced in one TCP write per
        connection, ``pause`` seconds between them. A client busy with the first batch
        then reads a whole later one at once, and ccxt.pro keeps one update per order
        (issue 18, item 5). The number of frames sent."""
        held, self._held_frames = self._held_frames or [], None
        sent = 0
        for i, batch in enumerate(held):
            if i and pause:
                await asyncio.sleep(pause)
            sent += self.ws.deliver_together(batch)
        return sent

    async def resend_ws_frames(self, count: int, stream: str | None = None) -> int:
        """Send each connection its last ``count`` frames (of ``stream``) again."""
        return await self.ws.resend(count, stream)

    async def wait_subscribed(
        self, stream: str, api_key: str | None = None, timeout: float = 5.0
    ) -> None:
        """Wait until a connection (of ``api_key``) has subscribed to ``stream``."""
        deadline = time.monotonic() + timeout
        while not self.ws.subscribed(stream, api_key):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscription to {stream} within {timeout} s")
            await asyncio.sleep(0.005)

    # -- inspection ----------------------------------------------------------

    def orders(self, api_key: str | None = None, symbol: str | None = None) -> list[Order]:
        """Every order accepted (any status), in placement order."""
        return [
            o
            for o in self.exchange.orders.values()
            if (api_key is None or o.account == api_key) and (symbol is None or o.symbol == symbol)
        ]

    def open_orders(self, api_key: str | None = None, symbol: str | None = None) -> list[Order]:
        """Orders resting on the book, in placement order."""
        return self.exchange.open_orders(api_key, symbol)

    def order(self, *, client_id: int | None = None, order_id: str | None = None) -> Order | None:
        """The latest order with that client id (or id), any status."""
        for o in reversed(self.exchange.orders.values()):
            if (order_id is not None and o.id == order_id) or (
                client_id is not None and o.client_id == client_id
            ):
                return o
        return None

    def fills(self, api_key: str | None = None, symbol: str | None = None) -> list[Fill]:
        """Every fill, in the order they happened."""
        return [
            f
            for f in self.exchange.fills
            if (api_key is None or f.account == api_key) and (symbol is None or f.symbol == symbol)
        ]

    def balances(self, api_key: str) -> dict[str, Balance]:
        """A copy of an account's balances (``total``, ``locked``, ``available``)."""
        return {
            a: Balance(b.total, b.locked)
            for a, b in sorted(self.exchange.accounts.get(api_key, {}).items())
        }

    def requests_for(self, match: str) -> list[RequestRecord]:
        """The logged requests with that instruction or path."""
        return [r for r in self.requests if match in (r.instruction, r.path)]

"""The generic live feed of any ccxt.pro exchange (``TRADEBUS_FEED=ccxt``).

One ``ccxt.pro.<exchange>`` client (one WebSocket connection per venue)
serves every symbol: quotes from ``watch_bids_asks(symbols)`` (or one
``watch_ticker`` per symbol where the exchange lacks ``watchBidsAsks``),
trades from ``watch_trades_for_symbols(symbols)`` (or one ``watch_trades``
per symbol). :class:`CcxtSource` yields each new ticker or trade as a frame
of :mod:`tradebus.feeds.ccxt_parser`, so the usual
:class:`~tradebus.marketdata.feed.Feed` de-duplicates, tracks health and
publishes. :class:`~tradebus.marketdata.ccxt_rest.CcxtQuotePoller` is the
REST fallback.

ccxt.pro reconnects only when the next ``watch_*`` is called after an error;
the source calls again after a backoff with jitter
(:class:`~tradebus.marketdata.sources.Reconnects`, shared with the native
WebSocket source), re-subscribing everything on the new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import ccxt
import ccxt.pro

from tradebus.common.ccxt_urls import override_urls
from tradebus.common.config import ConfigError
from tradebus.feeds.ccxt_parser import quote_frame, trade_frame
from tradebus.feeds.parsing import Frame
from tradebus.marketdata.sources import FeedRefusedError, Reconnects

log = logging.getLogger(__name__)

Queue = asyncio.Queue[Frame | BaseException | None]
"""A session's output: frames, None once connected, or the error that ended it."""

PERMANENT = (ccxt.AuthenticationError, ccxt.BadRequest, ccxt.NotSupported, ccxt.ArgumentsRequired)
"""ccxt errors that a retry would not mend: the feed stops (:class:`FeedRefusedError`)."""

TRANSIENT = (ccxt.BaseError, OSError, TimeoutError)
"""Everything else ccxt raises (NetworkError, ExchangeClosedByUser, an exchange's
error frame, ...) drops the session; it is retried after a backoff."""


def check_exchange(exchange_id: str) -> None:
    """Refuse an exchange id that ccxt.pro cannot stream quotes and trades of.

    Raises
    ------
    ConfigError
        Naming ``TRADEBUS_CCXT_EXCHANGE``: empty, unknown to ccxt, without
        ccxt.pro support, or without a quote or trade stream.
    """
    name = "TRADEBUS_CCXT_EXCHANGE"
    if not exchange_id:
        raise ConfigError(f"{name} is required with TRADEBUS_FEED=ccxt (e.g. okx, bybit)")
    if exchange_id not in ccxt.exchanges:
        raise ConfigError(f"{name}: {exchange_id!r} is not a ccxt exchange id")
    if exchange_id not in ccxt.pro.exchanges:
        raise ConfigError(f"{name}: {exchange_id!r} has no ccxt.pro (WebSocket) support")
    has = getattr(ccxt.pro, exchange_id)().has  # describe() merged in the instance
    if not (has.get("watchBidsAsks") or has.get("watchTicker")):
        raise ConfigError(f"{name}: ccxt.pro {exchange_id} streams no best bid/ask")
    if not (has.get("watchTradesForSymbols") or has.get("watchTrades")):
        raise ConfigError(f"{name}: ccxt.pro {exchange_id} streams no trades")


def make_exchange(exchange_id: str, ws_url: str = "", rest_url: str = "") -> Any:
    """A public ``ccxt.pro.<exchange_id>`` client; the URLs replace ccxt's when given.

    ``rest_url`` replaces every REST URL of ``urls['api']`` (a string value),
    ``ws_url`` every WebSocket URL of ``urls['api']['ws']``, as the execution
    service does for its venues (Backpack: ``urls['api']['public']`` and
    ``urls['api']['ws']['public']``).
    """
    client = getattr(ccxt.pro, exchange_id)({"enableRateLimit": True, "newUpdates": True})
    override_urls(client, rest_url, ws_url)
    return client


async def unified_symbols(exchange: Any, natives: Iterable[str]) -> dict[str, str]:
    """``{ccxt unified symbol: native id}`` of ``natives`` (loads the markets).

    Raises
    ------
    FeedRefusedError
        If a native id is not a market of the exchange.
    ccxt.BaseError
        If the markets cannot be loaded.
    """
    await exchange.load_markets()
    out: dict[str, str] = {}
    for native in natives:
        markets = exchange.markets_by_id.get(native) if exchange.markets_by_id else None
        if not markets:
            raise FeedRefusedError(f"TRADEBUS_SYMBOLS: {native} is not a market of {exchange.id}")
        out[markets[0]["symbol"]] = native
    return out


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _Tap(dict[str, Any]):
    """ccxt's ``bidsasks`` / ``tickers`` dict, calling ``on_set(symbol, ticker)`` on every
    assignment: ccxt.pro keeps only the latest best bid/ask per symbol, and a
    burst of updates would otherwise reach the feed as its last one only."""

    def __init__(self, data: dict[str, Any], on_set: Callable[[str, Any], None]) -> None:
        super().__init__(data)
        self._on_set = on_set

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._on_set(key, value)


class CcxtSource:
    """Frames of one ccxt.pro client for ``symbols``; survives drops with backoff.

    Parameters
    ----------
    exchange
        A ``ccxt.pro`` client (:func:`make_exchange`); closed when the frames end.
    symbols
        Native market ids (``SOL_USDC``).
    clock_ns
        Receive-time clock (ns).
    reconnects
        Connection callbacks and backoff (``on_connect`` once a session's
        WebSocket is connected or it delivers its first ticker or trade,
        ``on_disconnect`` when it fails).
    """

    def __init__(
        self,
        exchange: Any,
        symbols: Sequence[str],
        clock_ns: Callable[[], int] = time.time_ns,
        reconnects: Reconnects | None = None,
    ) -> None:
        self._exchange = exchange
        self._natives = list(symbols)
        self._clock_ns = clock_ns
        self._reconnects = reconnects or Reconnects()
        self._symbols: dict[str, str] = {}  # unified -> native
        self._last_quote: dict[str, object] = {}
        self._last_trade: dict[str, object] = {}
        self._queue: Queue | None = None
        self._adopted: weakref.WeakSet[asyncio.Future[Any]] = weakref.WeakSet()

    async def frames(self) -> AsyncGenerator[Frame, None]:
        """Yield frames forever; a failed session is closed and started again.

        Raises
        ------
        FeedRefusedError
            If a symbol is not on the exchange, or ccxt raises an error a
            retry would not mend (:data:`PERMANENT`).
        """
        try:
            while True:
                self._reconnects.attempting()
                queue: Queue = asyncio.Queue()
                tasks = await self._start(queue)
                opened = False
                try:
                    while not isinstance(item := await queue.get(), BaseException):
                        if not opened:
                            opened = True
                            self._reconnects.opened()
                            log.info("ccxt feed connected", extra={"exchange": self._exchange.id})
                        if item is not None:
                            yield item
                    self._refuse(item)
                    log.warning("ccxt feed failed; reconnecting", extra={"error": repr(item)})
                finally:
                    await self._stop(tasks)
                    if opened:
                        self._reconnects.closed()
                await self._reconnects.pause()
        finally:
            with contextlib.suppress(Exception):
                await self._exchange.close()

    @staticmethod
    def _refuse(error: BaseException) -> None:
        if isinstance(error, FeedRefusedError):
            raise error
        if isinstance(error, PERMANENT):
            raise FeedRefusedError(f"{type(error).__name__}: {error}") from None
        if not isinstance(error, TRANSIENT):
            raise error

    async def _start(self, queue: Queue) -> list[asyncio.Task]:
        """The watch tasks of one session; the first that fails puts its error in ``queue``,
        and None goes in once the WebSocket connection is open."""
        ex = self._exchange
        self._queue = queue
        if not self._symbols:
            try:
                self._symbols = await unified_symbols(ex, self._natives)
            except (*TRANSIENT, FeedRefusedError) as exc:
                queue.put_nowait(exc)
                return []
        symbols = list(self._symbols)
        # every best bid/ask ccxt parses, not only the latest one a watch returns
        book = "bidsasks" if ex.has.get("watchBidsAsks") else "tickers"
        if not isinstance(getattr(ex, book), _Tap):
            setattr(ex, book, _Tap(getattr(ex, book), self._on_quote))
        jobs: list[Callable[[], Awaitable[Any]]]
        if ex.has.get("watchBidsAsks"):
            jobs = [lambda: ex.watch_bids_asks(symbols)]
        else:
            jobs = [functools.partial(ex.watch_ticker, s) for s in symbols]
        if ex.has.get("watchTradesForSymbols"):
            jobs.append(lambda: ex.watch_trades_for_symbols(symbols))
        else:
            jobs += [functools.partial(ex.watch_trades, s) for s in symbols]
        tasks = [asyncio.create_task(self._watch(job, queue)) for job in jobs]
        tasks.append(asyncio.create_task(self._connected(queue)))
        return tasks

    async def _connected(self, queue: Queue) -> None:
        """Put None in ``queue`` once every WebSocket client the watches opened is connected
        (a failed connection is reported by the watches)."""
        await asyncio.sleep(0)  # the watch tasks run first and open their clients
        clients = list(self._exchange.clients.values())
        with contextlib.suppress(Exception):
            for client in clients:
                await client.connected
            if clients:
                queue.put_nowait(None)
        self._adopt_futures()

    def _adopt_futures(self) -> None:
        """Retrieve the error of every pending ccxt future once it fails.

        A dropped connection rejects every watch's future; only the first one
        of a ``watch_*_for_symbols`` race is awaited, and asyncio would log
        the others as "Future exception was never retrieved".
        """
        for client in list(self._exchange.clients.values()):
            for future in list(client.futures.values()):
                if future not in self._adopted:
                    self._adopted.add(future)
                    future.add_done_callback(_retrieve)

    async def _watch(self, job: Callable[[], Awaitable[Any]], queue: Queue) -> None:
        """Call ``job`` in a tight loop (no await between a result and the next watch,
        so ccxt's futures stay armed); new quotes and trades go to ``queue``, and so
        does the first error."""
        while True:
            try:
                result = await job()
            except TRANSIENT as exc:
                queue.put_nowait(exc)
                return
            finally:  # after this task armed its next watch's futures
                asyncio.get_running_loop().call_soon(self._adopt_futures)
            if isinstance(result, dict):  # watch_bids_asks: {symbol: ticker}
                for ticker in result.values():
                    self._on_quote(ticker.get("symbol"), ticker)
            elif isinstance(result, list):  # watch_trades*
                self._scan_trades()
            else:  # watch_ticker
                self._on_quote(result.get("symbol"), result)

    def _on_quote(self, symbol: Any, ticker: Any) -> None:
        """A best bid/ask ccxt parsed (or a watch returned); each ticker object goes out once."""
        native = self._symbols.get(symbol)
        if native is None or self._last_quote.get(native) is ticker:
            return
        self._last_quote[native] = ticker
        frame = self._frame(quote_frame, native, ticker)
        if frame is not None and self._queue is not None:
            self._queue.put_nowait(frame)

    def _scan_trades(self) -> None:
        """Send the trades of every symbol's ccxt cache after the last one sent.

        Reading the caches (not only what the watch returned, which is one
        symbol's news) leaves no trade waiting for its symbol's next message.
        A cache that overflowed since is sent whole: the feed's de-duplication
        drops the trades already published.
        """
        caches = self._exchange.trades or {}
        for unified, native in self._symbols.items():
            cache = list(caches.get(unified) or ())
            last = self._last_trade.get(native)
            start = 0
            for i in range(len(cache) - 1, -1, -1):
                if cache[i] is last:
                    start = i + 1
                    break
            for trade in cache[start:]:
                frame = self._frame(trade_frame, native, trade)
                if frame is not None and self._queue is not None:
                    self._queue.put_nowait(frame)
            if cache:
                self._last_trade[native] = cache[-1]

    def _frame(
        self, encode: Callable[[str, str, Any, int], bytes], native: str, item: Any
    ) -> Frame | None:
        ts_recv = self._clock_ns()
        try:
            return ts_recv, encode(self._exchange.id, native, item, ts_recv)
        except (ValueError, TypeError) as exc:
            log.debug("ccxt item skipped", extra={"symbol": native, "error": repr(exc)})
            return None

    async def _stop(self, tasks: list[asyncio.Task]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._exchange.close_ws_clients()  # the next session opens a new connection

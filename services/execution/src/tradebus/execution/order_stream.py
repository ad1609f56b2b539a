"""The private order stream of a live account: fills as they happen, polling as the fallback.

One task per live account whose exchange ccxt.pro can watch
(``has['watchOrders']`` or ``has['watchMyTrades']``; the account's
``fill_stream`` not false). It reads the account's stream through the
account's own ccxt.pro client and books what it learns through the
account's :class:`~tradebus.execution.live.FillPoller`, the one path to the
ledger, so a fill seen by both the stream and a poll is booked once:

* exchanges with ``watchMyTrades``: the stream's trades are booked as they are;
* Backpack (``account.orderUpdate``, documented at
  https://docs.backpack.exchange/#tag/Streams/Private/Order-update; ccxt.pro
  ``watch_orders`` keeps the raw event in ``info``): an ``orderFill`` event
  carries the fill itself (``t`` trade id, ``l`` quantity, ``L`` price,
  ``n``/``N`` fee and its asset, ``m`` maker, ``T`` engine time in µs) and
  the order's executed quantity ``z``, which is booked as a trade. ccxt.pro
  keeps one update per order between two reads, and a watch returns only
  when a *new* message arrives: updates that came while the stream was busy
  booking wait in its order cache until the account's next message (an IOC's
  fill folded into its ``orderExpired``, issue 18, item 5). So after each
  read the stream also handles the cached orders whose state changed since
  it last saw them, and whenever an update's ``z`` (a fill, an expiry, a
  cancel) is ahead of what the ledger holds for the order, a fill was missed
  and the poller is woken. An ``orderExpired`` update (an IOC's unfilled rest)
  closes the order in the ledger once its fills are booked; an
  ``orderCancelled`` one does too if, :data:`CANCELED_GRACE_SECONDS` later,
  no cancel of ours has closed it (it was canceled at the venue);
* other exchanges' order updates: a fill shows as a larger ``filled``; the
  poller is woken to fetch it with its trade id.

When the stream fails (connection dropped, refused), the task marks it down
(the poller then polls every ``poll_seconds``), wakes the poller to fetch
what the stream missed, waits with exponential back-off and jitter, and
watches again: ccxt.pro reconnects and resubscribes on that call. It is up
again once its connection is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal
from typing import Any

import ccxt

from tradebus.common.money import ZERO, ccxt_decimal
from tradebus.engine.accounts import AccountSpec
from tradebus.execution.live import FillPoller
from tradebus.execution.retry import Backoff
from tradebus.ledger.store import Ledger

log = logging.getLogger(__name__)

CANCELED_AT_VENUE = "canceled_at_venue"
ENDED_BY = {"orderExpired": "expired", "orderCancelled": CANCELED_AT_VENUE}
"""Backpack's event -> the ``OrderCanceled`` reason of an order the venue ended."""
CANCELED_GRACE_SECONDS = 2.0
"""How long an ``orderCancelled`` waits for a cancel of ours to close the order first."""


def can_stream(spec: AccountSpec, client: Any) -> bool:
    """True if ``spec`` wants its order stream and ``client`` (ccxt.pro) can watch it."""
    has = getattr(client, "has", {}) or {}
    return spec.fill_stream and bool(has.get("watchMyTrades") or has.get("watchOrders"))


def backpack_fill(update: dict[str, Any]) -> dict[str, Any] | None:
    """The ccxt trade structure of a Backpack ``orderFill`` update (ccxt.pro order), else None.

    The amounts stay Backpack's decimal strings (in ``info``, where the poller
    reads them); ``timestamp`` is ms, from the event's engine time ``T`` (µs).
    """
    info = update.get("info") or {}
    if info.get("e") != "orderFill" or info.get("t") is None:
        return None
    micros = int(info.get("T") or info.get("E") or 0)
    return {
        "id": str(info["t"]),
        "symbol": update.get("symbol"),
        "order": info.get("i"),
        "clientOrderId": None if info.get("c") is None else str(info["c"]),
        "side": "buy" if info.get("S") == "Bid" else "sell",
        "price": info.get("L"),
        "amount": info.get("l"),
        "fee": {"cost": info.get("n"), "currency": info.get("N")},
        "takerOrMaker": "maker" if info.get("m") else "taker",
        "timestamp": micros // 1000,
        "info": {
            "symbol": info.get("s"),
            "price": info.get("L"),
            "quantity": info.get("l"),
            "fee": info.get("n"),
            "clientId": info.get("c"),
        },
    }


class OrderStream:
    """Watch one live account's private order stream and book its fills (module docstring).

    Parameters
    ----------
    client
        The account's ccxt.pro client (the one its :class:`CcxtVenue` uses).
    poller
        The account's fill poller: books the fills and is woken for gaps.
    ledger
        To compare an order's executed quantity with what is booked.
    spec
        The account.
    backoff
        Delays between reconnects.
    """

    def __init__(
        self,
        client: Any,
        poller: FillPoller,
        ledger: Ledger,
        spec: AccountSpec,
        backoff: Backoff | None = None,
    ) -> None:
        self._client = client
        self._poller = poller
        self._ledger = ledger
        self._spec = spec
        self._backoff = backoff or Backoff(base=0.25, cap=15.0)
        self._watching = False
        self.failures = 0
        """Stream failures so far (each is followed by a reconnect)."""
        self.connections_lost = 0
        """Connections ccxt.pro reported closed (with or without a watch waiting)."""
        self._hook_connection_loss()
        self.fills_booked = 0
        """Fills this stream booked (those a poll booked first are not counted)."""
        self._seen: dict[str, tuple[Any, Any]] = {}
        """Venue order id -> (event, executed quantity) of its last update handled."""
        self._endings: set[asyncio.Task[None]] = set()

    def _hook_connection_loss(self) -> None:
        """Be told by ccxt.pro of every closed connection, not only of those a watch awaits.

        A connection that closes between two ``watch_orders`` calls rejects
        nothing, and the next call silently opens a new one; what the old
        one never delivered would wait for the backstop poll. ccxt.pro's
        exchange hands its ``on_close``/``on_error`` to every WebSocket
        client it creates; wrapping them on this instance wakes the poller.
        """
        for name in ("on_close", "on_error"):
            original = getattr(self._client, name, None)
            if original is None:
                continue

            def hooked(ws_client: Any, arg: Any, _original: Any = original) -> Any:
                self.connections_lost += 1
                self._poller.wake()
                return _original(ws_client, arg)

            setattr(self._client, name, hooked)

    @property
    def up(self) -> bool:
        """True while a watch is running on an open connection."""
        if not self._watching:
            return False
        clients = getattr(self._client, "clients", None) or {}
        return any(
            c.connected.done() and not c.connected.cancelled() and not c.closed()
            for c in clients.values()
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set or the account is halted."""
        attempt = 0
        account = self._spec.id
        while not stop.is_set() and not self._poller.halted:
            try:
                self._watching = True
                updates = await self._watch()
                attempt = 0
                await self._handle(updates)
                await self._handle_cached()
            except asyncio.CancelledError:
                self._stop_endings()
                raise
            except (ccxt.BaseError, OSError) as exc:
                self._watching = False
                self.failures += 1
                self._poller.wake()  # fetch what the stream missed, now
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.warning(
                    "order stream down; polling until it is back",
                    extra={"account": account, "error": type(exc).__name__, "retry_in": delay},
                )
                await _sleep_unless(stop, delay)
            except Exception:
                self._watching = False
                log.exception("order stream crashed", extra={"account": account})
                await _sleep_unless(stop, self._backoff.cap)
        self._watching = False
        self._stop_endings()

    def _stop_endings(self) -> None:
        for task in self._endings:
            task.cancel()

    async def _watch(self) -> list[dict[str, Any]]:
        has = self._client.has
        if has.get("watchMyTrades") and self._client.id != "backpack":
            return await self._client.watch_my_trades()
        return await self._client.watch_orders()

    async def _handle(self, updates: list[dict[str, Any]]) -> None:
        if self._client.has.get("watchMyTrades") and self._client.id != "backpack":
            self.fills_booked += len(await self._poller.book(updates))
            return
        trades: list[dict[str, Any]] = []
        gap = False
        for update in updates:
            self._seen[str(update.get("id"))] = _state(update)
            trade = backpack_fill(update)
            if trade is not None:
                trades.append(trade)
            elif ccxt_decimal(update.get("filled"), default=ZERO) > 0:
                gap = True  # a fill we only know of: fetch it with its trade id
        if trades:
            self.fills_booked += len(await self._poller.book(trades))
        if gap or await self._behind(updates):
            self._poller.wake()
        for update in updates:
            self._maybe_ended(update)

    def _maybe_ended(self, update: dict[str, Any]) -> None:
        """Close the order of an ``orderExpired``/``orderCancelled`` update (module
        docstring), in a task of its own: the stream reads on meanwhile."""
        info = update.get("info") or {}
        reason = ENDED_BY.get(str(info.get("e")))
        client_id = info.get("c")
        if reason is None or client_id is None or not str(client_id).isdigit():
            return
        executed = ccxt_decimal(info.get("z"), default=ZERO)
        task = asyncio.create_task(self._end(int(client_id), executed, reason))
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    async def _end(self, client_id: int, executed: Decimal, reason: str) -> None:
        if reason == CANCELED_AT_VENUE:
            await asyncio.sleep(CANCELED_GRACE_SECONDS)  # our own cancel closes it first
        try:
            await self._poller.order_ended(client_id, executed, reason)
        except Exception:
            log.exception("closing an order the venue ended failed", extra={"client": client_id})

    async def _handle_cached(self) -> None:
        """Handle the orders ccxt.pro updated in its cache while the stream was busy
        (module docstring); Backpack's order updates only."""
        if self._client.has.get("watchMyTrades") and self._client.id != "backpack":
            return
        cached = list(getattr(self._client, "orders", None) or [])
        late = [o for o in cached if self._seen.get(str(o.get("id"))) != _state(o)]
        if len(self._seen) > 2 * len(cached):  # forget orders the cache dropped
            self._seen = {str(o.get("id")): _state(o) for o in cached}
        if late:
            await self._handle(late)

    async def _behind(self, updates: list[dict[str, Any]]) -> bool:
        """True if an order's executed quantity ``z`` is ahead of the ledger's."""
        for update in updates:
            info = update.get("info") or {}
            client_id, executed = info.get("c"), info.get("z")
            if client_id is None or ccxt_decimal(executed, default=ZERO) <= 0:
                continue
            row = await self._ledger.get_order_by_client_id(int(client_id))
            if row is not None and row.filled_qty < ccxt_decimal(executed):
                return True
        return False


def _state(order: dict[str, Any]) -> tuple[Any, Any]:
    """What tells two updates of one order apart: Backpack's event and executed quantity."""
    info = order.get("info") or {}
    return info.get("e"), info.get("z")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` unless ``stop`` is set first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

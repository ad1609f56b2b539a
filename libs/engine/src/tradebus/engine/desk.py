"""The execution core on paper venues, in memory, without an event loop.

What a backtest (:mod:`tradebus.backtest`) and the tests' simulation
(``tests/support/sim.py``) execute intents with: the very
:class:`~tradebus.engine.core.ExecutionEngine` of the execution service, on
a :class:`~tradebus.engine.store.MemoryStore`, one
:class:`~tradebus.engine.paper.exchange.PaperExchange` per market venue, a
:class:`~tradebus.common.clock.ManualClock` set to market time, and an event
sink that keeps what the service would publish, once per message id (as
JetStream's de-duplication does), each call driven to its end by
:func:`~tradebus.engine.sync.run_sync`. Intake (ownership, text checks),
vetting (shape, sizing, risk limits, the kill switch), the order state
machine, events and fills are the service's; only the bus and the database
are not there.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from prometheus_client import CollectorRegistry

from tradebus.common import subjects
from tradebus.common.clock import ManualClock
from tradebus.common.ids import AccountId, UserId
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import AccountBalances, Intent, Message, QuoteTick, TradeTick
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.core import ExecutionEngine
from tradebus.engine.events import IntentContext
from tradebus.engine.intake import admit_intent
from tradebus.engine.metrics import EngineMetrics
from tradebus.engine.paper.exchange import PaperExchange, PaperVenue
from tradebus.engine.store import MemoryStore
from tradebus.engine.sync import run_sync
from tradebus.engine.venue import Venue, VenueFill


class PaperDesk:
    """Accounts on paper venues and the execution core that trades them (module docstring).

    Parameters
    ----------
    catalog
        The markets.
    accounts
        Paper accounts (starting balances, fees, market kind, leverage, risk limits).
    clock
        Market time: stamps rows and events (set it to each event's ``ts_recv``).
    late_orders
        Whether an order may reach a venue after events later than its trigger
        (see :class:`PaperExchange`); a backtest places every order before the
        next event, so it needs no replay of events.
    exchanges
        Paper venues to use (by market venue) instead of new ones; an account
        already open on one keeps its balances and fees.

    Attributes
    ----------
    store
        Orders, refusals, fills and journal entries so far.
    exchanges
        The paper venue of each market venue.
    fills
        Every fill a venue made, in order.
    """

    def __init__(
        self,
        catalog: MarketCatalog,
        accounts: Iterable[AccountSpec],
        clock: ManualClock,
        late_orders: bool = False,
        exchanges: dict[str, PaperExchange] | None = None,
    ) -> None:
        self.clock = clock
        self.store = MemoryStore()
        self.exchanges: dict[str, PaperExchange] = dict(exchanges or {})
        self.fills: list[VenueFill] = []
        self._events: list[Message] = []
        self._seen: set[str] = set()
        specs = {spec.id: spec for spec in accounts}
        venues: dict[AccountId, Venue] = {}
        for spec in specs.values():
            exchange = self.exchanges.get(spec.market_data)
            if exchange is None:
                exchange = PaperExchange(catalog, spec.market_data, late_orders=late_orders)
                self.exchanges[spec.market_data] = exchange
            exchange.open_account(
                spec.id,
                dict(spec.balances),
                spec.maker_fee_bps,
                spec.taker_fee_bps,
                market_kind=spec.market_kind,
                leverage=spec.leverage,
            )
            venues[spec.id] = PaperVenue(exchange, spec.id)
        self.engine = ExecutionEngine(
            self.store,
            specs,
            venues,
            catalog,
            self._emit,
            clock,
            EngineMetrics(CollectorRegistry()),
            last_price=self._last_price,
        )
        run_sync(self.engine.start())

    def _last_price(self, venue: str, symbol: str) -> Decimal | None:
        exchange = self.exchanges.get(venue)
        return exchange.last_trade(symbol) if exchange is not None else None

    async def _emit(self, subject: str, event: Message, msg_id: str) -> None:
        if msg_id in self._seen:
            return  # the stream would drop a republish of the same event
        self._seen.add(msg_id)
        self._events.append(event)

    def take_events(self) -> list[Message]:
        """The events published since the last call, in order."""
        events, self._events = self._events, []
        return events

    def execute(self, user: UserId, source: str, intent: Intent) -> list[Message]:
        """Handle one intent of ``source`` (a bot id, or ``manual``) of ``user``; the events it
        caused, in order (an answer, fills of an order that filled as it was placed)."""
        ctx = IntentContext(
            subject=subjects.intent(user, source),
            user=user,
            source=source,
            stream_seq=None,
            payload=b"",
        )
        door = admit_intent(ctx, intent, self.engine.accounts)
        run_sync(self.engine.handle_intents([door]))
        return self.take_events()

    def on_trade(self, tick: TradeTick) -> list[Message]:
        """A trade of the market: the fills it makes, booked; their events."""
        exchange = self.exchanges.get(tick.venue)
        fills = exchange.on_trade(tick) if exchange is not None else []
        if fills:
            self.fills.extend(fills)
            run_sync(self.engine.book_fills(fills))
        return self.take_events()

    def on_quote(self, tick: QuoteTick) -> None:
        """A quote of the market (orders due make themselves live)."""
        exchange = self.exchanges.get(tick.venue)
        if exchange is not None:
            exchange.on_quote(tick)

    def balances(self, account: AccountId) -> AccountBalances:
        """The venue's balances of ``account`` now."""
        (balances,) = run_sync(self.engine.balances(account))
        return balances

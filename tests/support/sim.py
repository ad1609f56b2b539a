"""Strategy cores and the execution core wired together in one process, for tests.

The bots' intents are executed by the execution service's own core
(:class:`~tradebus.engine.desk.PaperDesk`: the engine on an in-memory store
and a paper venue, driven synchronously), so a test of the cores is a test
against the rules execution enforces (intake, vetting, sizing, the order
state machine, cancel-alls). It follows the paper fill model's event order
(STRATEGIES.md rule 5): each market event first fills live orders, the bots
see those fills, then the bots see the event; intents are executed at once
and their answers fed back. No NATS, no database. Intents are kept so tests
can inspect them.

With ``lag`` the bots hear of their orders late, as over a real bus: every
order event is held back for ``lag()`` market events (the venue acts at
once). A core must stay within its limits whatever it has not heard yet.

Also here: :func:`paper_exchange` (a venue with accounts open) and
:func:`committed_at_venue` (an account's capital at the venue).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from tradebus.common.clock import ManualClock
from tradebus.common.ids import AccountId, UserId
from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import Intent, Message, QuoteTick, TradeTick
from tradebus.common.positions import Position
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.desk import PaperDesk
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.engine.venue import VenueFill
from tradebus.strategies.core import Strategy

VENUE = "binance"


def paper_exchange(
    markets: Sequence[Market], balances: Mapping[str, Decimal], *accounts: str, **kw: Any
) -> PaperExchange:
    """A paper venue ``binance`` trading ``markets``, each of ``accounts`` opened with
    ``balances``, maker fee 1 bps and taker fee 5 bps.

    ``kw``: the account's other settings (``market_kind``, ``leverage``).
    """
    exchange = PaperExchange(MarketCatalog({VENUE: list(markets)}), VENUE)
    for account in accounts:
        exchange.open_account(
            AccountId(account),
            dict(balances),
            maker_fee_bps=Decimal(1),
            taker_fee_bps=Decimal(5),
            **kw,
        )
    return exchange


class Sim:
    """Bots and the execution core on ``exchange`` wired together without I/O.

    Each account open on ``exchange`` belongs to the user of the bot that trades it.
    """

    def __init__(
        self, exchange: PaperExchange, bots: list[Strategy], lag: Callable[[], int] | None = None
    ) -> None:
        self.exchange = exchange
        self.bots: dict[str, Strategy] = {b.ctx.bot: b for b in bots}
        owners = {b.ctx.account: b.ctx.user for b in bots}
        specs = [
            AccountSpec(
                id=account,
                user=owners.get(account, UserId(account)),
                market_data=VENUE,
                maker_fee_bps=acct.maker_fee_bps,
                taker_fee_bps=acct.taker_fee_bps,
                market_kind=acct.market_kind,
                leverage=acct.leverage,
            )
            for account, acct in exchange.accounts.items()
        ]
        self.clock = ManualClock()
        self.desk = PaperDesk(
            exchange.catalog, specs, self.clock, late_orders=True, exchanges={VENUE: exchange}
        )
        self._lag = lag
        self._held: list[tuple[int, Strategy, Message]] = []  # (due event number, bot, event)
        self._events_seen = 0
        self.intents: list[Intent] = []

    @property
    def fills(self) -> list[VenueFill]:
        """Every fill the venue made, in order."""
        return self.desk.fills

    def _tell(self, bot: Strategy, event: Message) -> None:
        """Deliver an order event now, or hold it back when the bots lag."""
        if self._lag is None:
            self._execute(bot, bot.on_order_event(event))  # type: ignore[arg-type]
        else:
            self._held.append((self._events_seen + self._lag(), bot, event))

    def _deliver_due(self) -> None:
        while True:
            due = [h for h in self._held if h[0] <= self._events_seen]
            if not due:
                return
            self._held = [h for h in self._held if h[0] > self._events_seen]
            for _, bot, event in due:
                self._execute(bot, bot.on_order_event(event))  # type: ignore[arg-type]

    def _execute(self, bot: Strategy, intents: list[Intent]) -> None:
        ctx = bot.ctx
        for intent in intents:
            self.intents.append(intent)
            for event in self.desk.execute(ctx.user, ctx.bot, intent):
                self._tell(bot, event)

    def on_event(self, tick: QuoteTick | TradeTick) -> None:
        """One market event: fills first (in placement order), then every bot sees the event."""
        self._events_seen += 1
        self.clock.now = tick.ts_recv
        self._deliver_due()
        if isinstance(tick, TradeTick):
            events = self.desk.on_trade(tick)
        else:
            self.desk.on_quote(tick)
            events = []
        for event in events:
            self._tell(self.bots[_source(event)], event)
        for bot in self.bots.values():
            if tick.symbol not in {m.symbol for m in bot.ctx.all_markets()}:
                continue
            intents = bot.on_trade(tick) if isinstance(tick, TradeTick) else bot.on_quote(tick)
            self._execute(bot, intents)

    def poll_balances(self, bot: str) -> None:
        """Give ``bot`` its account's venue balances (the host's poll); execute its answer."""
        target = self.bots[bot]
        self._execute(target, target.on_balances(self.desk.balances(target.ctx.account)))

    def flatten(self, bot: str) -> None:
        """Force exit of ``bot``: execute its cancels and closes (and what their answers cause)."""
        target = self.bots[bot]
        self._execute(target, target.flatten())

    def stop(self) -> None:
        """Stop every bot, execute its cancels, deliver everything held back."""
        for bot in self.bots.values():
            self._execute(bot, bot.on_stop())
        self._lag = None
        held, self._held = self._held, []
        for _, bot, event in held:
            self._execute(bot, bot.on_order_event(event))  # type: ignore[arg-type]


def _source(event: Message) -> str:
    source: str = event.source  # type: ignore[attr-defined]
    return source


def committed_at_venue(sim: Sim, account: str) -> Decimal:
    """Open buy notional of ``account`` plus the cost of its position, as the venue knows them."""
    held = Position()
    for fill in sim.fills:
        if fill.account == account:
            held.apply(fill.side, fill.qty, fill.price, Decimal(0))
    orders = sim.exchange.open_orders(AccountId(account))
    open_buys = sum((o.price * o.qty for o in orders if o.side == "buy" and o.price), Decimal(0))
    return open_buys + held.open_cost

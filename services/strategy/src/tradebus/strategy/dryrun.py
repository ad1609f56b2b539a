"""A dry-run bot's own simulated venue (``execute_trades: false``).

A dry-run bot runs on the live feed like any bot, but its intents never reach
its account: the host hands them to a :class:`DryRun`, which executes them on
the execution service's own core on a paper venue
(:class:`~tradebus.engine.desk.PaperDesk`: intake, vetting, the order state
machine and the paper fill model of shared/STRATEGIES.md, the very code of
paper accounts and of ``tradebus backtest``), fed by the ticks of the bot's
markets. The bot hears the simulated venue's answers and fills as it would
hear execution's, so it proceeds as if it traded (Freqtrade's dry run), while
the account and its venue see nothing, live account or paper.

What the bot did is recorded: every intent and every event of the simulated
venue is published as a :class:`~tradebus.common.messages.DryRunRecord` on
``dryrun.<user>.<bot>`` (stream ``DRYRUN``; ``tradebus bots dry-run BOT``,
``GET /api/v1/bots/{id}/dry-run``), and the bot's status says ``dry_run`` with
the counts.

The simulated venue lives in the host's memory: a dry-run bot starts fresh
(new run, empty simulated account) whenever a host starts it, also after a
move to another replica (:mod:`tradebus.strategy.supervisor`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import msgspec

from tradebus.common import subjects
from tradebus.common.clock import ManualClock
from tradebus.common.codec import encode
from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import (
    AccountBalances,
    CancelRejected,
    DryRunRecord,
    Intent,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    QuoteTick,
    TradeTick,
)
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.desk import PaperDesk
from tradebus.strategies.registry import DRY_RUN_QUOTE, BotSpec

ORDER_EVENTS = (OrderAccepted, OrderRejected, OrderFilled, OrderCanceled, CancelRejected)
"""The members of :data:`~tradebus.common.messages.OrderEvent`."""
Recorder = Callable[[str, bytes], None]
"""Publishes one record: ``(subject, payload)`` (the host's ordered publisher)."""


class DryRun:
    """The simulated venue of one dry-run bot (see the module docstring).

    Parameters
    ----------
    spec
        The bot (its ``dry_run_wallet``: the simulated account's starting
        balances; empty: :data:`~tradebus.strategies.registry.DRY_RUN_QUOTE` of
        each quote asset the bot trades).
    markets
        The bot's markets (a perpetual one makes the simulated account a
        perpetual one). Fees are those of a paper account that sets none
        (:class:`~tradebus.engine.accounts.AccountSpec`: 10 bps maker and taker).
    run
        The bot's run number (in every record).
    record
        Publishes each :class:`DryRunRecord` (subject, payload).

    Attributes
    ----------
    intents, fills
        How many intents the bot emitted and fills the simulated venue made.
    queue
        Intents waiting to be executed, first in, first out (the host drains it:
        intents a bot answers with while its earlier ones execute queue behind them).
    """

    def __init__(
        self, spec: BotSpec, markets: tuple[Market, ...], run: int, record: Recorder
    ) -> None:
        self._spec = spec
        self._run = run
        self._record = record
        self._subject = subjects.dry_run(spec.user, spec.id)
        wallet = dict(spec.dry_run_wallet) or {m.quote: DRY_RUN_QUOTE for m in markets}
        perpetual = any(m.kind == "perpetual" for m in markets)
        account = AccountSpec(
            id=spec.account,
            user=spec.user,
            market_data=spec.venue,
            balances=wallet,
            market_kind="perpetual" if perpetual else "spot",
        )
        self.clock = ManualClock()
        self.desk = PaperDesk(MarketCatalog({spec.venue: list(markets)}), [account], self.clock)
        self.queue: deque[Intent] = deque()
        self.holding = False
        """True while the host tells the bot a tick's fills: its answers wait in :attr:`queue`."""
        self.intents = 0
        self.fills = 0
        self._seq = 0

    # ------------------------------------------------------------ market data
    def on_tick(self, tick: QuoteTick | TradeTick) -> list[OrderEvent]:
        """A tick of one of the bot's markets: market time moves; a trade fills the live
        simulated orders (paper fill model); the fills' events, recorded, in order."""
        self.clock.now = tick.ts_recv
        if isinstance(tick, TradeTick):
            return self._answered(self.desk.on_trade(tick))
        self.desk.on_quote(tick)
        return []

    # ---------------------------------------------------------------- orders
    def execute(self, intent: Intent) -> list[OrderEvent]:
        """Execute one of the bot's intents on the simulated venue; record it and the events
        it caused, and return those events (to give the bot). A place is live from the
        market event after the last one seen (paper fill model rule 1)."""
        self.intents += 1
        self._write(intent=intent)
        if isinstance(intent, PlaceOrder):
            intent = msgspec.structs.replace(intent, trigger_ts=self.clock.now)
        return self._answered(self.desk.execute(self._spec.user, self._spec.id, intent))

    def balances(self) -> AccountBalances:
        """The simulated account's balances now (what a core taking balances is given)."""
        return self.desk.balances(self._spec.account)

    def _answered(self, messages: list[Message]) -> list[OrderEvent]:
        events: list[OrderEvent] = []
        for message in messages:
            if isinstance(message, ORDER_EVENTS):
                events.append(message)
                self.fills += isinstance(message, OrderFilled)
                self._write(event=message)
        return events

    def _write(self, intent: Intent | None = None, event: OrderEvent | None = None) -> None:
        self._seq += 1
        record = DryRunRecord(
            bot=self._spec.id,
            user=self._spec.user,
            account=self._spec.account,
            run=self._run,
            seq=self._seq,
            ts_event=self.clock.now,
            intent=intent,
            event=event,
        )
        self._record(self._subject, encode(record))

"""The strategy host's dispatcher: routes market and order events to bots, collects intents.

No network here: the supervisor feeds it decoded bus payloads and gives it an
:class:`IntentSink`; this module decides which bots see what, keeps one
failing bot from stopping the others, runs each bot's lifecycle (running,
paused, stopped), and counts what happens.

Dispatch is by market: the host subscribes once per ``(venue, symbol)`` and
hands each tick to the running bots of that market it can make act (a
per-market wake index, :mod:`~tradebus.strategies.wake`: bots whose core says
which ticks matter are skipped for the others, exactly), in the order of the
bot ids, so the same ticks always produce the same intents. Inputs beyond
ticks and order events (balances, group volume) reach only the cores that
declare them (``Strategy.inputs``).

Write-ahead: before a bot's intents are queued, its snapshot record (state
plus the sequence of the last order event it saw) is queued ahead of them on
the same ordered publisher, so a replica that dies after publishing an
intent always leaves a snapshot that knows about it (the resumed bot
re-sends what is still unanswered; intent ids make that harmless).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

import msgspec

from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.messages import (
    AccountBalances,
    BotStatus,
    Intent,
    OrderEvent,
    QuoteTick,
    TradeTick,
)
from tradebus.strategies.core import BotBase, BotInput, Strategy
from tradebus.strategies.position_check import average_missing
from tradebus.strategies.registry import BotSpec
from tradebus.strategies.wake import MarketBots
from tradebus.strategy.dryrun import DryRun
from tradebus.strategy.host_metrics import HostMetrics
from tradebus.strategy.kvstore import BotRecord, Lifecycle

log = logging.getLogger(__name__)

STATES = ("running", "paused", "flattening", "stopped", "failed", "starting")
GAUGE_BOTS_PER_REFRESH = 1000
"""Bots whose per-bot gauges one refresh sets (the others wait their turn)."""


class IntentSink(Protocol):
    """Where intents and snapshots go, in order; neither call may block."""

    def submit(self, subject: str, intent: Intent, tick_ts_init: int | None) -> None: ...

    def put_state(self, bot: str, record: bytes) -> None: ...


class StatusWatch(Protocol):
    """Told where a bot's status may have changed (:mod:`tradebus.strategy.status_events`)."""

    def touch(self, runner: BotRunner) -> None: ...

    def gone(self, runner: BotRunner) -> None: ...


RATIO_PLACES = Decimal("0.0001")
"""A margin ratio is shown to four decimal places."""


class BotRunner:
    """One bot as the host runs it: its core, spec, lifecycle and event position.

    ``event_seq`` is the ``EXEC`` stream sequence of the last order event
    applied; events at or below it are duplicates and skipped. While
    ``catching_up`` (a resume replaying stored events), live events are
    buffered and ticks are not delivered.
    """

    def __init__(
        self,
        core: Strategy,
        spec: BotSpec,
        lifecycle: Lifecycle = "running",
        event_seq: int = 0,
        catching_up: bool = False,
    ) -> None:
        self.core = core
        self.spec = spec
        self._lifecycle: Lifecycle = lifecycle
        self._catching_up = catching_up
        self.takes_ticks = False
        """Running and not replaying stored events (kept current: read per tick)."""
        self._update()
        self.event_seq = event_seq
        self.buffered: list[tuple[int, OrderEvent]] = []
        self.dirty = False
        self.subject = subjects.intent(spec.user, spec.id)
        self.rank = spec.id
        """Order of calls on a tick: by bot id, whatever order the bots started in."""
        self.parked = False
        """Filed in its market's wake index (:mod:`~tradebus.strategies.wake`), skipping ticks."""
        self.wake_gen = 0
        self.wake_entries = 0
        self.seen_seq = 0
        """The market's tick sequence the core's state reflects."""
        self.markets: list[MarketBots[BotRunner]] = []
        """Its markets' indexes while on a host (primary market first)."""
        self.may_park = False
        """One market and a core that can say which ticks matter (kept by the dispatcher)."""
        self.shown_phase: str | None = None
        """The core's phase when its status was last published (``status_events``)."""
        self.account_risk: AccountBalances | None = None
        """Its account's last venue snapshot, on a perpetual market (:attr:`trades_perpetual`)."""
        self.trades_perpetual = any(m.kind == "perpetual" for m in core.ctx.all_markets())
        """A market of the bot is a perpetual: its status shows the account's margin ratio
        and its positions' liquidation prices."""
        self.dry: DryRun | None = None
        """A dry run's simulated venue (``execute_trades: false``): its intents go there,
        never to the sink (:mod:`tradebus.strategy.dryrun`)."""

    @property
    def bot(self) -> str:
        """The bot id."""
        return self.spec.id

    def _update(self) -> None:
        self.takes_ticks = self._lifecycle == "running" and not self._catching_up

    @property
    def lifecycle(self) -> Lifecycle:
        """``running``, ``paused``, ``flattening`` or ``stopped``."""
        return self._lifecycle

    @lifecycle.setter
    def lifecycle(self, value: Lifecycle) -> None:
        self._lifecycle = value
        self._update()

    @property
    def catching_up(self) -> bool:
        """True while a resume replays stored events (live events are buffered)."""
        return self._catching_up

    @catching_up.setter
    def catching_up(self, value: bool) -> None:
        self._catching_up = value
        self._update()

    def record(self) -> bytes:
        """The ``bot_state`` record of the bot now (see :class:`BotRecord`)."""
        return encode(
            BotRecord(
                strategy=self.spec.strategy,
                run=self.core.ctx.run,
                event_seq=self.event_seq,
                lifecycle=self.lifecycle,
                state=msgspec.Raw(self.core.snapshot()),
                execute_trades=self.spec.execute_trades,
            )
        )

    def state_name(self) -> str:
        """The ``state`` of :meth:`status` without building the status block."""
        if self.catching_up:
            return "starting"
        return "failed" if self.core.state.phase == "failed" else self.lifecycle

    def status(self, host: str) -> BotStatus:
        """The core's status block with the host's lifecycle, replica id and the market time
        of its markets' latest tick (``price_ts``), and what its position checks found
        (``position_check``, ``position_difference``, ``position_mismatch``,
        ``average_missing``: :mod:`tradebus.strategies.position_check`). A core whose
        ``status()`` raises (a plug-in's bug) shows as ``failed`` with the error, and the
        others' blocks still go out."""
        try:
            status = self.core.status()
        except Exception as exc:
            ctx = self.core.ctx
            status = BotStatus(
                bot=ctx.bot,
                user=ctx.user,
                account=ctx.account,
                strategy=ctx.strategy,
                venue=ctx.venue,
                symbol=ctx.market.symbol,
                phase="failed",
                run=ctx.run,
                error=f"status() raised {exc!r}",
            )
        state: str = "failed" if status.phase == "failed" else self.lifecycle
        if self.catching_up:
            state = "starting"
        seen = [ts for ts in (market.last_ts for market in self.markets) if ts is not None]
        price_ts = max(seen) if seen else None
        if self.account_risk is not None:
            status = msgspec.structs.replace(status, details=self._with_risk(status.details))
        if self.dry is not None:
            details = {
                **status.details,
                "dry_run_intents": self.dry.intents,
                "dry_run_fills": self.dry.fills,
            }
            status = msgspec.structs.replace(status, dry_run=True, details=details)
        checked = self.core.state.position_check
        position = self.core.tracked_position()
        return msgspec.structs.replace(
            status,
            state=state,
            host=host,
            price_ts=price_ts,
            position_check=checked.alert or checked.last_action,
            position_difference=checked.difference,
            position_mismatch=checked.alert is not None,
            average_missing=position is not None and average_missing(position),
        )

    def _with_risk(
        self, details: dict[str, str | int | bool | None]
    ) -> dict[str, str | int | bool | None]:
        """``details`` plus the account's ``margin_ratio`` and, per market of the bot with a
        position, ``<symbol>.liquidation_price`` (the venue's estimate)."""
        risk = self.account_risk
        assert risk is not None
        out = dict(details)
        ratio = risk.margin_ratio
        if ratio is None:
            out["margin_ratio"] = None
        else:  # Infinity when the account's equity is gone
            out["margin_ratio"] = str(ratio.quantize(RATIO_PLACES) if ratio.is_finite() else ratio)
        mine = {m.symbol for m in self.core.ctx.all_markets()}
        for position in risk.positions:
            if position.symbol in mine and position.liquidation_price is not None:
                out[f"{position.symbol}.liquidation_price"] = str(position.liquidation_price)
        return out


class Dispatcher:
    """Routes events to bots and their intents (after their snapshot) to the sink.

    Parameters
    ----------
    sink
        Receives every intent with its subject ``intent.<user>.<bot>``, and snapshots.
    metrics
        Host metrics.
    host
        This replica's id, shown in status blocks.
    """

    def __init__(
        self, sink: IntentSink, metrics: HostMetrics, host: str = "", max_price_age_ns: int = 0
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self.host = host
        self.max_price_age_ns = max_price_age_ns
        """Ticks received later than this after their event time are dropped (0: none)."""
        self.runners: dict[str, BotRunner] = {}
        self._by_market: dict[tuple[str, str], MarketBots[BotRunner]] = {}
        self._dry: dict[tuple[str, str], list[BotRunner]] = {}
        """Per market, the dry-run bots whose simulated venue it feeds."""
        self._ticks = metrics.ticks.counts
        self._gauge_turn = 0
        self.stopped = False
        self.status_events: StatusWatch | None = None
        """Told of bots whose status may have changed (none: nothing is published)."""

    # ------------------------------------------------------------- membership
    def add(self, runner: BotRunner) -> list[tuple[str, str]]:
        """Add a bot; returns the markets that had no bot before (to subscribe to)."""
        self.runners[runner.bot] = runner
        new = []
        for key in self._keys(runner):
            if key not in self._by_market:
                new.append(key)
                self._by_market[key] = MarketBots()
                self._ticks.setdefault(key, 0)
            self._by_market[key].add(runner.bot, runner)
        runner.markets = [self._by_market[key] for key in self._keys(runner)]
        if runner.dry is not None:
            for key in self._keys(runner):
                self._dry.setdefault(key, []).append(runner)
        self._reindex(runner)
        if self.status_events is not None:
            self.status_events.touch(runner)
        return new

    def remove(self, bot: str) -> tuple[BotRunner | None, list[tuple[str, str]]]:
        """Remove a bot (its state caught up first); returns it and the markets no bot trades."""
        runner = self.runners.pop(bot, None)
        self._metrics.bot_gauges.forget(bot)
        empty = []
        if runner is not None:
            self.sync(runner)
            if self.status_events is not None:
                self.status_events.gone(runner)
            for key in self._keys(runner):
                dry = self._dry.get(key)
                if dry is not None and runner in dry:
                    dry.remove(runner)
                    if not dry:
                        del self._dry[key]
                market = self._by_market[key]
                market.remove(bot, runner)
                if not market:
                    del self._by_market[key]
                    empty.append(key)
            runner.markets = []
        return runner, empty

    @staticmethod
    def _keys(runner: BotRunner) -> list[tuple[str, str]]:
        """``(venue, symbol)`` of every market of the bot, the primary one first."""
        return [(runner.core.ctx.venue, m.symbol) for m in runner.core.ctx.all_markets()]

    def sync(self, runner: BotRunner) -> None:
        """Bring a parked bot's state up to its market's last tick (before reading or calling)."""
        if runner.parked:
            runner.markets[0].catch_up(runner)

    def _reindex(self, runner: BotRunner) -> None:
        """File the bot in its markets' wake index again, by its core's :meth:`wake` now."""
        markets = runner.markets
        runner.may_park = len(markets) == 1 and type(runner.core).wake is not BotBase.wake
        for market in markets:
            market.index(runner.bot, runner, runner.may_park)

    def markets(self) -> list[tuple[str, str]]:
        """Every ``(venue, symbol)`` some bot trades, sorted."""
        return sorted(self._by_market)

    # ---------------------------------------------------------------- output
    def emit(self, runner: BotRunner, intents: list[Intent], tick_ts_init: int | None) -> None:
        """Queue the bot's snapshot record, then its intents (write-ahead)."""
        if not intents:
            return
        if self.status_events is not None:
            self.status_events.touch(runner)
        self._sink.put_state(runner.bot, runner.record())
        runner.dirty = False
        self._send(runner, intents, tick_ts_init)

    def _send(self, runner: BotRunner, intents: list[Intent], tick_ts_init: int | None) -> None:
        """The bot's intents to the sink, or, for a dry run, to its simulated venue."""
        if runner.dry is not None:
            self._simulate(runner, intents)
            return
        for intent in intents:
            self._sink.submit(runner.subject, intent, tick_ts_init)

    def _simulate(self, runner: BotRunner, intents: list[Intent]) -> None:
        """Execute a dry-run bot's intents on its simulated venue and give it the answers;
        intents it answers with queue behind (first in, first out, as the bus would
        deliver them; the backtest's order)."""
        dry = runner.dry
        assert dry is not None
        busy = bool(dry.queue) or dry.holding
        dry.queue.extend(intents)
        if busy:
            return  # an outer call is draining the queue, or fills are still being told
        while dry.queue:
            for event in dry.execute(dry.queue[0]):
                self._apply_simulated(runner, event)
            dry.queue.popleft()

    def _simulated_fills(self, runner: BotRunner, tick: QuoteTick | TradeTick) -> None:
        """A tick reaches a dry-run bot's simulated venue: the bot hears each fill it makes,
        then what it answered is executed, in order (the backtest's order, so a dry run
        trades exactly as ``tradebus backtest`` on the same ticks)."""
        dry = runner.dry
        assert dry is not None
        events = dry.on_tick(tick)
        if not events:
            return
        dry.holding = True
        try:
            for event in events:
                self._apply_simulated(runner, event)
        finally:
            dry.holding = False
        self._simulate(runner, [])

    def _apply_simulated(self, runner: BotRunner, event: OrderEvent) -> None:
        """An event of a dry-run bot's simulated venue: as :meth:`apply_event`, without a
        stream sequence (it never was on the bus)."""
        runner.dirty = True
        self.call(runner, lambda core: core.on_order_event(event))
        if runner.lifecycle == "flattening":
            self._end_flatten(runner)
        if self.status_events is not None:
            self.status_events.touch(runner)

    def save(self, runner: BotRunner) -> None:
        """Queue the bot's snapshot record now (and re-file it: its core may have changed)."""
        self.sync(runner)
        self._sink.put_state(runner.bot, runner.record())
        runner.dirty = False
        self._reindex(runner)
        if self.status_events is not None:
            self.status_events.touch(runner)

    def _fail(self, runner: BotRunner, exc: Exception) -> None:
        self._metrics.bot_errors.labels(strategy=runner.spec.strategy).inc()
        if self.status_events is not None:
            self.status_events.touch(runner)
        log.exception("bot raised", extra={"bot": runner.bot, "error": repr(exc)})

    def call(self, runner: BotRunner, action: Callable[[Strategy], list[Intent]]) -> None:
        """Run ``action`` on the bot's core (caught up first); emit its intents; contain its errors.

        ``action`` is a call of one core method, e.g. ``lambda core: core.resend()``.
        """
        self.sync(runner)
        try:
            intents = action(runner.core)
        except Exception as exc:  # one failing bot must not stop the others
            self._fail(runner, exc)
            intents = []
        self.emit(runner, intents, None)
        self._reindex(runner)

    # ----------------------------------------------------------------- input
    def on_tick(self, tick: QuoteTick | TradeTick) -> int:
        """Hand one tick to every running bot of its market; returns the intents emitted."""
        if self.stopped:
            return 0
        key = (tick.venue, tick.symbol)
        market = self._by_market.get(key)
        if not market:
            return 0
        self._ticks[key] += 1
        if self.max_price_age_ns and tick.ts_recv - tick.ts_event > self.max_price_age_ns:
            self._metrics.stale_ticks.labels(venue=tick.venue, symbol=tick.symbol).inc()
            return 0  # a stale price: no bot acts on it
        if dry := self._dry.get(key):  # the simulated venues fill first (fill model rule 5)
            for runner in list(dry):
                self._simulated_fills(runner, tick)
        is_trade = isinstance(tick, TradeTick)
        emitted = 0
        seq = market.seq + 1
        watch = self.status_events
        for runner in market.due(tick, is_trade):
            bot = runner.core
            try:
                intents = bot.on_trade(tick) if is_trade else bot.on_quote(tick)  # type: ignore[arg-type]
            except Exception as exc:
                self._fail(runner, exc)
                intents = []
            runner.seen_seq = seq
            if intents:
                emitted += len(intents)
                self.emit(runner, intents, tick.ts_init)
            elif watch is not None and bot.state.phase != runner.shown_phase:
                watch.touch(runner)  # a new phase without intents: shown at once too
            if runner.may_park:
                self._reindex(runner)
        return emitted

    def on_order_event(self, user: str, source: str, seq: int, event: OrderEvent) -> None:
        """Hand an order event (``exec.evt.<user>.<bot>``, stream sequence ``seq``) to its bot."""
        self._metrics.events.labels(type=type(event).__name__).inc()
        runner = self.runners.get(source)
        if runner is None or runner.spec.user != user:
            return
        if runner.catching_up:
            runner.buffered.append((seq, event))
            return
        self.apply_event(runner, seq, event)

    def apply_event(self, runner: BotRunner, seq: int, event: OrderEvent) -> None:
        """Apply one event unless the bot has seen it (``seq <= event_seq``)."""
        if seq <= runner.event_seq:
            return
        runner.event_seq = seq
        runner.dirty = True
        self.call(runner, lambda core: core.on_order_event(event))
        if runner.lifecycle == "flattening":
            self._end_flatten(runner)
        if self.status_events is not None:
            self.status_events.touch(runner)

    def on_balances(self, runner: BotRunner, balances: AccountBalances) -> None:
        """Hand the bot its account's balances if its core takes them
        (:attr:`BotInput.BALANCES`)."""
        if runner.dry is not None:  # a dry run's account is its simulated one
            balances = runner.dry.balances()
        if runner.trades_perpetual:
            runner.account_risk = balances
        if BotInput.BALANCES in runner.core.inputs:
            self.call(runner, lambda core: core.on_balances(balances))

    def on_group_volume(
        self,
        runner: BotRunner,
        total: Decimal,
        by_user: dict[str, Decimal],
        turns: dict[str, bool] | None = None,
    ) -> None:
        """Hand the bot its group's volume (quote) and turns if its core takes them
        (:attr:`BotInput.GROUP_VOLUME`)."""
        if BotInput.GROUP_VOLUME in runner.core.inputs:
            self.call(runner, lambda core: core.on_group_volume(total, by_user, turns))

    def finish_catch_up(self, runner: BotRunner) -> None:
        """End a resume: apply the live events buffered meanwhile; re-send the unanswered."""
        for seq, event in sorted(runner.buffered, key=lambda item: item[0]):
            self.apply_event(runner, seq, event)
        runner.buffered.clear()
        runner.catching_up = False
        self.call(runner, lambda core: core.resend())
        if runner.lifecycle == "flattening":  # it may have closed before the last record
            self._end_flatten(runner)
        if self.status_events is not None:
            self.status_events.touch(runner)  # no longer "starting"

    # ------------------------------------------------------------- lifecycle
    def pause(self, runner: BotRunner) -> None:
        """Stop giving the bot ticks; its orders stay."""
        if runner.lifecycle == "running":
            runner.lifecycle = "paused"
            self.save(runner)

    def resume(self, runner: BotRunner) -> None:
        """Give a paused or stopped bot ticks again, from its state."""
        if runner.lifecycle == "stopped":
            runner.lifecycle = "running"
            self.call(runner, lambda core: core.on_restart())
        elif runner.lifecycle == "paused":
            runner.lifecycle = "running"
        self.save(runner)

    def stop(self, runner: BotRunner, persist: bool = True) -> None:
        """Stop the bot: its cancels (per ``cancel_on_exit``) go out; no more ticks.

        ``persist=False`` (host shutdown) stores the bot as it was, running,
        before its cancels go out: a host that starts later resumes it and
        learns of the cancels from the replayed order events.
        """
        if not persist:
            self.save(runner)
        self.sync(runner)
        try:
            intents = runner.core.on_stop()
        except Exception as exc:
            self._fail(runner, exc)
            intents = []
        runner.lifecycle = "stopped"
        self._reindex(runner)
        if persist:
            self.emit(runner, intents, None)
            self.save(runner)
        else:
            self._send(runner, intents, None)

    def flatten(self, runner: BotRunner) -> None:
        """Force exit: no more ticks (lifecycle ``flattening``); the core cancels its orders
        and closes its position (:meth:`Strategy.flatten`); the bot is ``stopped`` once
        its core is, at once when there was nothing to close."""
        self.sync(runner)
        runner.lifecycle = "flattening"
        self._reindex(runner)
        self.call(runner, lambda core: core.flatten())
        self._end_flatten(runner)
        self.save(runner)

    def _end_flatten(self, runner: BotRunner) -> None:
        """A flattening bot whose core stopped (closed) or failed (a close refused) is
        ``stopped``; its status shows the core's error, if any."""
        if runner.core.state.phase in ("stopped", "failed"):
            runner.lifecycle = "stopped"
            self._reindex(runner)
            self.save(runner)

    def stop_all(self) -> None:
        """Host shutdown: stop every bot (cancels per ``cancel_on_exit``), ignore further ticks."""
        self.stopped = True
        for runner in self.runners.values():
            if runner.lifecycle != "stopped":
                self.stop(runner, persist=False)

    # ---------------------------------------------------------------- status
    def open_orders(self) -> int:
        """Open orders over all bots (read from each core's order tracker, ``BotBase``)."""
        return sum(len(r.core.state.orders.open_orders()) for r in self.runners.values())

    def statuses(self, bot_id: str | None = None) -> list[BotStatus]:
        """Status blocks of every bot, or of one (empty if not here), as of the last tick."""
        runners = list(self.runners.values())
        if bot_id is not None:
            runners = [self.runners[bot_id]] if bot_id in self.runners else []
        for runner in runners:
            self.sync(runner)
        return [r.status(self.host) for r in runners]

    def update_state_gauge(self, every_bot: bool = False) -> None:
        """Refresh ``tradebus_strategy_bots{state}`` and per-bot P&L and position gauges.

        The per-bot gauges of at most :data:`GAUGE_BOTS_PER_REFRESH` bots are
        refreshed per call, in turn (all of them with ``every_bot``): a status
        block costs tens of microseconds, and refreshing 10,000 of them every
        second took a fifth of a host's CPU (py-spy, ``make bench``).
        """
        counts: dict[str, int] = defaultdict(int)
        for runner in self.runners.values():
            counts[runner.state_name()] += 1
        for state in STATES:
            self._metrics.bots.labels(state=state).set(counts.get(state, 0))
        runners = list(self.runners.values())
        if not every_bot and len(runners) > GAUGE_BOTS_PER_REFRESH:
            start = self._gauge_turn % len(runners)
            runners = (runners[start:] + runners[:start])[:GAUGE_BOTS_PER_REFRESH]
            self._gauge_turn = start + GAUGE_BOTS_PER_REFRESH
        for runner in runners:
            self.sync(runner)
        self._metrics.bot_gauges.set_many([r.status(self.host) for r in runners])

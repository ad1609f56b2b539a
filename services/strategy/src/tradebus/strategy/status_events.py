"""Bot status changes as they happen: ``BotStatusChanged`` on ``bot.status.<user>.<bot>``.

The host running a bot publishes its status block (core NATS, fire and
forget: a person watching, not a record; the ledger and ``exec.evt`` are the
record) when something a person watches changes:

* **at once** (within :data:`FLUSH_SECONDS`, batched) when its *key* changes:
  state (lifecycle, ``starting``, ``failed``), phase, run, cycle, orders
  placed/filled/open, filled quantity and notional, position, average price,
  cycles completed, realized P&L, error, host or position check finding
  (:func:`status_key`);
* **at most once per** :data:`PRICE_INTERVAL_SECONDS` per bot while only the
  price moves (last price, position value, unrealized P&L, take-profit
  progress, ``details``);
* once when the bot starts on this host (``starting`` while a resume replays
  its events, then its state), and a final one when it leaves the host
  (stopped, removed, handed over, its lease lost).

Cost, for 10,000 bots on a host (a status block costs tens of
microseconds): nothing is built per tick for a bot whose status did not
change. The dispatcher (:class:`~tradebus.strategy.host.Dispatcher`) *touches*
a bot where its key can change (an order event, intents emitted, a lifecycle
change, a new phase seen on a tick: one string comparison per bot called,
:attr:`~tradebus.strategy.host.BotRunner.shown_phase`), and the bots touched
are looked at by :meth:`StatusEvents.flush`: status built, key compared with
the last published (the per-bot fingerprint), published if it differs. Price
moves are picked up by :meth:`StatusEvents.refresh_prices` once a second:
running bots whose markets had a tick since they were last looked at, at
most :data:`PRICE_BOTS_PER_ROUND` per round in turn (with 10,000 such bots,
each gets a price update every ~10 s rather than every second; key changes
stay at once). A key change that happens without a touch (e.g. a position
written off on a balance update) is caught by the same round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from tradebus.common import subjects
from tradebus.common.clock import Clock, LiveClock
from tradebus.common.codec import encode
from tradebus.common.messages import BotStatus, BotStatusChanged
from tradebus.strategy.host import BotRunner, Dispatcher

log = logging.getLogger(__name__)

PRICE_INTERVAL_SECONDS = 1.0
"""At most one price-only status per bot this often."""
PRICE_BOTS_PER_ROUND = 1000
"""Status blocks one price round builds at most (the others wait their turn)."""
FLUSH_SECONDS = 0.02
"""Touched bots are looked at in batches at most this often (\"at once\" for a person)."""
YIELD_EVERY = 256
"""Publishes between two yields to the event loop (ticks keep flowing during a burst)."""

Publish = Callable[[str, bytes], Awaitable[None]]
"""Core NATS publish: ``(subject, payload)``."""

StatusKey = tuple[
    str, str, int, int, int, int, int, Decimal, Decimal, Decimal, Decimal | None, int, Decimal,
    str | None, str | None, str | None,
]  # fmt: skip


def status_key(status: BotStatus) -> StatusKey:
    """What of a status is published at once when it changes (module docstring):
    everything but the price-driven figures."""
    return (
        status.state,
        status.phase,
        status.run,
        status.cycle,
        status.orders_placed,
        status.orders_filled,
        status.open_orders,
        status.filled_qty,
        status.filled_quote,
        status.position,
        status.avg_price,
        status.cycles_completed,
        status.realized_pnl,
        status.error,
        status.host,
        status.position_check,
    )


class _Shown:
    """What was last published of one bot: the status, its key, when (monotonic s),
    and its markets' tick count then."""

    __slots__ = ("key", "mono", "status", "ticks")

    def __init__(self, status: BotStatus, mono: float, ticks: int) -> None:
        self.status = status
        self.key = status_key(status)
        self.mono = mono
        self.ticks = ticks


def _ticks(runner: BotRunner) -> int:
    """Ticks seen so far by the bot's markets (moves when any of its prices can move)."""
    return sum(market.seq for market in runner.markets)


class StatusEvents:
    """Publishes the status changes of one host's bots (module docstring).

    Parameters
    ----------
    publish
        Core NATS publish (``nc.publish``).
    dispatcher
        The host's dispatcher; this object registers itself as its
        ``status_events`` (the dispatcher then calls :meth:`touch` and
        :meth:`gone`).
    clock
        ``ts_event`` of the messages (ns).
    refresh_seconds, refresh_budget
        Seconds between rounds of last-price updates (:data:`PRICE_INTERVAL_SECONDS`),
        and bots per round (:data:`PRICE_BOTS_PER_ROUND`).
    now
        Monotonic seconds (the throttle).
    """

    def __init__(
        self,
        publish: Publish,
        dispatcher: Dispatcher,
        clock: Clock | None = None,
        refresh_seconds: float = PRICE_INTERVAL_SECONDS,
        refresh_budget: int = PRICE_BOTS_PER_ROUND,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._dispatcher = dispatcher
        self._clock = clock or LiveClock()
        self._interval = refresh_seconds
        self._budget = refresh_budget
        self._now = now
        self._due: dict[str, BotRunner] = {}
        self._finals: list[BotStatus] = []
        self._shown: dict[str, _Shown] = {}
        self._subjects: dict[str, str] = {}
        self._turn = 0
        self._wake = asyncio.Event()
        self.published = 0
        """Messages published so far."""
        dispatcher.status_events = self

    # ------------------------------------------------- called by the dispatcher
    def touch(self, runner: BotRunner) -> None:
        """Something of the bot's key may have changed: look at it at the next flush."""
        self._due[runner.bot] = runner
        self._wake.set()

    def gone(self, runner: BotRunner) -> None:
        """The bot leaves this host (state caught up): publish its last status."""
        self._due.pop(runner.bot, None)
        self._shown.pop(runner.bot, None)
        runner.shown_phase = None
        self._finals.append(runner.status(self._dispatcher.host))
        self._wake.set()

    # ----------------------------------------------------------------- work
    async def flush(self) -> int:
        """Publish the final statuses of bots gone, then the touched bots whose key changed
        (or whose price-only change is past the throttle); returns the messages published."""
        sent = 0
        finals, self._finals = self._finals, []
        for status in finals:
            await self._send(status)
            sent += 1
        due, self._due = self._due, {}
        runners = self._dispatcher.runners
        now = self._now()
        for bot, runner in due.items():
            if runners.get(bot) is not runner:
                continue  # gone meanwhile (its final status is out)
            if self._consider(runner, now) is not None:
                await self._send_shown(bot)
                sent += 1
                if sent % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        return sent

    async def refresh_prices(self) -> int:
        """One price round (module docstring); returns the messages published."""
        runners = list(self._dispatcher.runners.values())
        if not runners:
            return 0
        now = self._now()
        start = self._turn % len(runners)
        looked = sent = 0
        for i in range(len(runners)):
            if looked >= self._budget:
                break
            runner = runners[(start + i) % len(runners)]
            shown = self._shown.get(runner.bot)
            if shown is None or not runner.takes_ticks:
                continue  # not shown yet (a flush will), or no prices reach it
            if now - shown.mono < self._interval or _ticks(runner) == shown.ticks:
                continue
            looked += 1
            self._turn = start + i + 1
            if self._consider(runner, now) is not None:
                await self._send_shown(runner.bot)
                sent += 1
                if sent % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            else:
                shown.ticks = _ticks(runner)
        return sent

    def _consider(self, runner: BotRunner, now: float) -> _Shown | None:
        """Build the bot's status; record and return it if it is to be published: never
        shown, a new key, or another price past the throttle."""
        self._dispatcher.sync(runner)
        status = runner.status(self._dispatcher.host)
        runner.shown_phase = runner.core.state.phase
        shown = self._shown.get(runner.bot)
        if (
            shown is not None
            and status_key(status) == shown.key
            and (status == shown.status or now - shown.mono < self._interval)
        ):
            return None
        shown = _Shown(status, now, _ticks(runner))
        self._shown[runner.bot] = shown
        return shown

    async def _send_shown(self, bot: str) -> None:
        await self._send(self._shown[bot].status)

    async def _send(self, status: BotStatus) -> None:
        subject = self._subjects.get(status.bot)
        if subject is None:
            subject = self._subjects[status.bot] = subjects.bot_status(status.user, status.bot)
        message = BotStatusChanged(status=status, ts_event=self._clock.now_ns())
        try:
            await self._publish(subject, encode(message))
        except Exception as exc:  # a disconnected client: the next change publishes again
            log.warning("bot status not published", extra={"bot": status.bot, "error": repr(exc)})
            return
        self.published += 1

    async def run(self) -> None:
        """Forever: flush touched bots as they come (batched every :data:`FLUSH_SECONDS` at
        most), and a price round every ``refresh_seconds``."""
        next_round = self._now() + self._interval
        while True:
            wait = max(0.0, next_round - self._now())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                if self._now() >= next_round:
                    next_round = self._now() + self._interval
                    await self.refresh_prices()
            except Exception as exc:  # never let a status stop the host
                log.exception("bot status round failed", extra={"error": repr(exc)})
            await asyncio.sleep(FLUSH_SECONDS)

    async def close(self) -> None:
        """Publish what is pending (host shutdown: the final statuses)."""
        await self.flush()

"""A live feed: the stream, the stale watch, the REST fallback and the status publisher.

Three tasks share one :class:`~tradebus.marketdata.feed.Feed` and one
:class:`~tradebus.marketdata.health.FeedHealth`:

* the stream: frames of the venue's :class:`~tradebus.marketdata.sources.LiveSource`
  through the feed (which tells the health of every message);
* the watch: every ``check_seconds`` it marks silent symbols stale, and it
  publishes :class:`~tradebus.common.messages.FeedStatus` on
  ``feed.status.<venue>`` every ``status_seconds`` and at once on a change;
* the fallback: while symbols are stale, it polls their best bid/ask over
  REST every ``poll_seconds`` and publishes the quotes through
  :meth:`Feed.publish_rest` (de-duplicated against the stream); an answer
  that arrives after the stream came back is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.marketdata.feed import Feed, FeedStats, FrameSource, Publish
from tradebus.marketdata.health import FeedHealth
from tradebus.marketdata.rest import QuotePoller


class LiveFeed:
    """Run a live feed until cancelled, or until its source fails for good.

    Parameters
    ----------
    feed
        The feed (with a de-duplicator and ``health``).
    health
        The feed's health.
    publish
        ``async publish(subject, payload)`` for the status messages.
    poller
        REST best bid/ask poller; None disables the fallback.
    status_seconds
        Period of the status message, seconds.
    poll_seconds
        Period of REST polls of each stale symbol, seconds.
    monotonic
        Clock of the periods (seconds).
    """

    def __init__(
        self,
        feed: Feed,
        health: FeedHealth,
        publish: Publish,
        poller: QuotePoller | None,
        *,
        status_seconds: float = 5.0,
        poll_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._feed = feed
        self._health = health
        self._publish = publish
        self._poller = poller
        self._status_seconds = status_seconds
        self._poll_seconds = poll_seconds
        self._check_seconds = min(0.25, health.stale_seconds / 4)
        self._monotonic = monotonic
        self._subject = subjects.feed_status(health.venue)
        self.statuses_published = 0

    async def run(self, source: FrameSource) -> FeedStats:
        """Run the three tasks; return or raise what ends the stream task first.

        Raises
        ------
        FeedRefusedError
            From the source, if the venue refuses the connection for good.
        """
        jobs: list[Coroutine[Any, Any, object]] = [self._feed.run(source), self._watch()]
        if self._poller is not None:
            jobs.append(self._fallback(self._poller))
        tasks = [asyncio.create_task(job) for job in jobs]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raise what failed
            return self._feed.stats
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._poller is not None:
                await self._poller.close()

    async def publish_status(self) -> None:
        """Publish the current :class:`FeedStatus` now."""
        self._health.changed.clear()
        await self._publish(self._subject, encode(self._health.status()))
        self.statuses_published += 1

    async def _watch(self) -> None:
        next_status = self._monotonic()
        while True:
            self._health.check()
            now = self._monotonic()
            if self._health.changed.is_set() or now >= next_status:
                await self.publish_status()
                next_status = now + self._status_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._health.changed.wait(), self._check_seconds)

    async def _fallback(self, poller: QuotePoller) -> None:
        while True:
            stale = sorted(self._health.stale)
            if not stale:
                await asyncio.sleep(self._check_seconds)
                continue
            started = self._monotonic()
            ticks = await asyncio.gather(*(poller.poll(s) for s in stale))
            for tick in ticks:
                if tick is not None and tick.symbol in self._health.stale:
                    await self._feed.publish_rest(tick)
            await asyncio.sleep(max(0.0, self._poll_seconds - (self._monotonic() - started)))

"""One retry helper and one rate budget per account, for everything sent to a live venue.

* :class:`Backoff`: exponential back-off with full jitter
  (delay_n = uniform(0, min(cap, base * 2**n)); "Exponential Backoff And
  Jitter", AWS Architecture Blog, 2015): tenacity's ``wait_random_exponential``,
  shared by the venue calls, the order stream's reconnects and live accounts'
  start-up retries.
* :class:`RateBudget`: a token bucket per account (``rate`` requests per
  second, ``burst`` at once) that every request of the account draws from,
  orders, cancels, polls and balance queries alike; when the venue answers
  429 the whole account pauses (:meth:`RateBudget.penalize`), so one busy
  bot cannot get the account banned. Our own code: tenacity retries one call
  and has no budget shared across calls (docs/design.md, "Own code kept, and why").
* :func:`call_with_retries`: run a venue call under the budget, retrying only
  what :mod:`tradebus.execution.venue_errors` classifies as ``transient``;
  everything else is raised to the caller at once. A state-changing request
  is never retried after an unknown outcome (its placement is looked up by the
  ledger's client order id instead, :mod:`tradebus.execution.ccxt_venue`). The
  retry loop is tenacity's (``AsyncRetrying``: stop after ``attempts``, wait
  :class:`Backoff`, retry on transient errors only).

Time comes from an injected clock (monotonic seconds) and sleep function, so
tests drive it without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from tradebus.engine.venue import VenueError
from tradebus.execution.venue_errors import classify

T = TypeVar("T")
TOKEN_EPSILON = 1e-9
Sleep = Callable[[float], Awaitable[None]]
Monotonic = Callable[[], float]


class Backoff:
    """Delays for attempt 0, 1, 2, ...: ``uniform(0, min(cap, base * 2**attempt))`` seconds.

    ``wait`` is the same as tenacity's wait strategy (``wait_random_exponential``, whose
    attempt numbers start at 1: attempt ``n`` here is its ``n + 1``).

    Raises
    ------
    ValueError
        Unless ``0 < base <= cap``.
    """

    def __init__(self, base: float = 0.25, cap: float = 30.0) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base}, cap={cap}")
        self.base = base
        self.cap = cap
        self.wait = wait_random_exponential(multiplier=base, max=cap)

    def delay(self, attempt: int) -> float:
        """The jittered delay before retry number ``attempt`` (0-based), in seconds."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = min(attempt, 62) + 1
        return float(self.wait(state))


class RateBudget:
    """Token bucket shared by every request of one account.

    Parameters
    ----------
    rate
        Requests per second on average (> 0).
    burst
        Requests allowed at once (>= 1).
    clock, sleep
        Monotonic seconds and an async sleep (injectable for tests).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Monotonic | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        self._tokens = float(burst)
        self._updated = self._clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` tokens are available (and any penalty is over), then take them."""
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await self._sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= cost - TOKEN_EPSILON:  # float time: don't chase 1e-15
                    self._tokens = max(0.0, self._tokens - cost)
                    return
                await self._sleep((cost - self._tokens) / self.rate)

    def penalize(self, seconds: float) -> None:
        """The venue said "too many requests": nothing of this account goes out for ``seconds``."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._tokens = 0.0

    @property
    def paused_for(self) -> float:
        """Seconds left in the current penalty (0 when none)."""
        return max(0.0, self._paused_until - self._clock())


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    budget: RateBudget,
    backoff: Backoff,
    changes_state: bool,
    attempts: int = 5,
    sleep: Sleep | None = None,
    on_retry: Callable[[VenueError, float], None] | None = None,
    before_retry: Callable[[VenueError], Awaitable[None]] | None = None,
) -> T:
    """Run ``call()`` under ``budget``, retrying transient failures up to ``attempts`` times.

    Each attempt first takes a token of ``budget``. The n-th retry waits
    ``backoff``'s delay for attempt n (1, 2, ...); a rate-limit answer also pauses the
    whole account for that delay. ``on_retry(error, delay)`` is told of each retry;
    ``before_retry(error)`` is awaited after the delay and before the next attempt
    (e.g. to re-sync the clock offset after an expired request).

    Raises
    ------
    VenueCallError
        Carrying the classified error, when the failure is not transient or
        the attempts are used up. Exceptions that are not the venue's (bugs,
        cancellation) propagate unchanged.
    """
    pause = sleep or asyncio.sleep
    last: list[VenueError] = []

    async def attempt() -> T:
        await budget.acquire()
        try:
            return await call()
        except Exception as exc:
            try:
                error = classify(exc, changes_state=changes_state)
            except TypeError:
                raise exc from None
            raise VenueCallError(error) from exc

    def transient(exc: BaseException) -> bool:
        return isinstance(exc, VenueCallError) and exc.error.kind == "transient"

    def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None
        failed = state.outcome.exception()
        assert isinstance(failed, VenueCallError)
        last[:] = [failed.error]
        if failed.error.rate_limited:
            budget.penalize(state.upcoming_sleep)
        if on_retry is not None:
            on_retry(failed.error, state.upcoming_sleep)

    async def wait_then_prepare(seconds: float) -> None:
        await pause(seconds)
        if before_retry is not None:
            await before_retry(last[0])

    retrying = AsyncRetrying(
        sleep=wait_then_prepare,
        stop=stop_after_attempt(attempts),
        wait=backoff.wait,
        retry=retry_if_exception(transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(attempt)


class VenueCallError(Exception):
    """A venue call failed for good; ``error`` says how (kind, reason, message)."""

    def __init__(self, error: VenueError) -> None:
        super().__init__(f"{error.kind}: {error.reason}: {error.message}")
        self.error = error

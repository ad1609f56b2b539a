"""Venue error taxonomy, the retry helper and the per-account rate budget (no I/O)."""

from __future__ import annotations

import ccxt
import pytest

from tradebus.engine.venue import VenueError
from tradebus.execution.retry import Backoff, RateBudget, VenueCallError, call_with_retries
from tradebus.execution.venue_errors import classify, is_not_found


@pytest.mark.parametrize(
    ("exc", "changes_state", "kind", "reason"),
    [
        (ccxt.AuthenticationError("bad signature"), True, "configuration", "authentication_error"),
        (ccxt.PermissionDenied("no trading"), False, "configuration", "permission_denied"),
        (ccxt.InsufficientFunds("INSUFFICIENT_FUNDS"), True, "permanent", "insufficient_balance"),
        (ccxt.InvalidOrder("price tick"), True, "permanent", "invalid_order"),
        (  # Backpack's price band, as ccxt raises it
            ccxt.InvalidOrder(
                'backpack {"code":"INVALID_PRICE","message":"Price is too far from the last'
                ' active price"}'
            ),
            True,
            "permanent",
            "invalid_price",
        ),
        (ccxt.OrderNotFound("gone"), True, "permanent", "order_not_found"),
        (ccxt.BadSymbol("FOO_BAR"), True, "permanent", "unknown_symbol"),
        (ccxt.RateLimitExceeded("429"), True, "transient", "rate_limited"),
        (ccxt.DDoSProtection("slow down"), False, "transient", "rate_limited"),
        (ccxt.OnMaintenance("maintenance"), True, "transient", "on_maintenance"),
        # the outcome of a place or cancel that timed out is unknown; a read is just retried
        (ccxt.RequestTimeout("timed out"), True, "unknown_outcome", "request_timeout"),
        (ccxt.RequestTimeout("timed out"), False, "transient", "request_timeout"),
        (ccxt.NetworkError("reset"), True, "unknown_outcome", "network_error"),
        (ccxt.ExchangeNotAvailable("502"), False, "transient", "exchange_not_available"),
        (ccxt.ExchangeError("something"), True, "permanent", "venue_rejected"),
        (  # Backpack's maintenance answer, as ccxt raises it
            ccxt.ExchangeError('backpack {"code": "MAINTENANCE", "message": "under maintenance"}'),
            True,
            "transient",
            "exchange_error",
        ),
        (  # Backpack's 401 for a request outside its window: our clock, not our key
            ccxt.AuthenticationError("backpack POST .../api/v1/order 401 Request has expired"),
            True,
            "transient",
            "request_expired",
        ),
        (  # the same in its JSON form, which ccxt raises as a plain ExchangeError
            ccxt.ExchangeError(
                'backpack {"code": "INVALID_CLIENT_REQUEST", "message": "Request has expired"}'
            ),
            True,
            "transient",
            "request_expired",
        ),
    ],
)
def test_classification(exc: Exception, changes_state: bool, kind: str, reason: str) -> None:
    error = classify(exc, changes_state=changes_state)
    assert (error.kind, error.reason) == (kind, reason)
    assert error.rate_limited == (reason == "rate_limited")


def test_backpack_resource_not_found_is_recognised() -> None:
    # ccxt raises Backpack's RESOURCE_NOT_FOUND as ExchangeNotAvailable
    assert is_not_found(ccxt.ExchangeNotAvailable('backpack {"code":"RESOURCE_NOT_FOUND"}'))
    assert is_not_found(ccxt.OrderNotFound("x"))
    assert not is_not_found(ccxt.ExchangeNotAvailable("502 Bad Gateway"))


def test_only_venue_exceptions_are_classified() -> None:
    with pytest.raises(TypeError):
        classify(KeyError("bug"), changes_state=True)


def test_backoff_is_jittered_exponential_and_capped() -> None:
    backoff = Backoff(base=0.5, cap=4.0)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # the jitter spans the range


class FakeTime:
    """A monotonic clock the sleeps advance."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_rate_budget_allows_a_burst_then_the_rate() -> None:
    t = FakeTime()
    budget = RateBudget(rate=10, burst=3, clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        await budget.acquire()
    assert t.now == 100.0  # the burst goes at once
    for _ in range(5):
        await budget.acquire()
    assert t.now == pytest.approx(100.5)  # then 10 per second


async def test_a_429_pauses_the_whole_account() -> None:
    t = FakeTime()
    budget = RateBudget(rate=100, burst=10, clock=t.clock, sleep=t.sleep)
    budget.penalize(2.0)
    assert budget.paused_for == 2.0
    await budget.acquire()
    assert t.now >= 102.0


async def test_transient_failures_are_retried_then_succeed() -> None:
    t = FakeTime()
    budget = RateBudget(rate=1000, burst=10, clock=t.clock, sleep=t.sleep)
    answers: list[object] = [ccxt.RateLimitExceeded("429"), ccxt.OnMaintenance("503"), "ok"]
    retried: list[str] = []

    async def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    result = await call_with_retries(
        call,
        budget=budget,
        backoff=Backoff(base=1.0, cap=8.0),
        changes_state=True,
        sleep=t.sleep,
        on_retry=lambda error, delay: retried.append(error.reason),
    )
    assert result == "ok"
    assert retried == ["rate_limited", "on_maintenance"]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ccxt.RequestTimeout("timed out"), "unknown_outcome"),  # a place is never resent blindly
        (ccxt.InsufficientFunds("no"), "permanent"),
        (ccxt.AuthenticationError("bad key"), "configuration"),
    ],
)
async def test_non_transient_failures_are_not_retried(exc: Exception, kind: str) -> None:
    t = FakeTime()
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise exc

    with pytest.raises(VenueCallError) as raised:
        await call_with_retries(
            call,
            budget=RateBudget(rate=1000, burst=10, clock=t.clock, sleep=t.sleep),
            backoff=Backoff(),
            changes_state=True,
            sleep=t.sleep,
        )
    assert calls == 1 and raised.value.error.kind == kind


async def test_retries_give_up_after_the_attempts() -> None:
    t = FakeTime()
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise ccxt.ExchangeNotAvailable("502")

    with pytest.raises(VenueCallError) as raised:
        await call_with_retries(
            call,
            budget=RateBudget(rate=1000, burst=10, clock=t.clock, sleep=t.sleep),
            backoff=Backoff(base=0.1, cap=1.0),
            changes_state=False,
            attempts=4,
            sleep=t.sleep,
        )
    assert calls == 4 and raised.value.error.kind == "transient"


async def test_retries_wait_the_jittered_backoff_and_a_429_pauses_the_account() -> None:
    """The retry loop (tenacity) waits within the full-jitter window of each retry, pauses
    the account's budget for the wait after a rate-limit answer, and runs ``before_retry``
    after the wait, before the next attempt, with the error that caused it."""
    t = FakeTime()
    budget = RateBudget(rate=1000, burst=10, clock=t.clock, sleep=t.sleep)
    answers: list[object] = [
        ccxt.RateLimitExceeded("429"),
        ccxt.ExchangeNotAvailable("502"),
        ccxt.OnMaintenance("503"),
        "ok",
    ]
    seen: list[tuple[str, str, float]] = []

    async def call() -> str:
        seen.append(("call", "", t.now))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    def on_retry(error: VenueError, delay: float) -> None:
        seen.append(("retry", error.reason, delay))
        if error.rate_limited:  # the whole account waits, not only this call
            assert budget.paused_for == pytest.approx(delay)

    async def before_retry(error: VenueError) -> None:
        seen.append(("before", error.reason, t.now))

    result = await call_with_retries(
        call,
        budget=budget,
        backoff=Backoff(base=1.0, cap=3.0),
        changes_state=False,
        sleep=t.sleep,
        on_retry=on_retry,
        before_retry=before_retry,
    )
    assert result == "ok"
    assert [kind for kind, _, _ in seen] == ["call", "retry", "before"] * 3 + ["call"]
    delays = [value for kind, _, value in seen if kind == "retry"]
    assert t.slept == delays  # nothing else slept: the budget had tokens
    for n, delay in enumerate(delays):
        assert 0 <= delay <= min(3.0, 1.0 * 2**n)  # retry n+1: full jitter, capped
    reasons = [reason for kind, reason, _ in seen if kind == "before"]
    assert reasons == ["rate_limited", "exchange_not_available", "on_maintenance"]
    # before_retry ran after the wait: at the time of the next attempt, not of the failure
    befores = [value for kind, _, value in seen if kind == "before"]
    calls = [value for kind, _, value in seen if kind == "call"]
    assert befores == calls[1:]

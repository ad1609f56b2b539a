"""Each user's intent rate limit: a token bucket per user, on JetStream's clock (pure).

A user (their bots and their own publishes together) may send ``rate``
intents per second on average and ``burst`` at once. The clock is the time
nats-server stored each message (its JetStream metadata), never a time the
sender wrote and never execution's own clock: a backlog that waited in the
stream while execution was down is judged by when it was sent, so a restart
refuses nothing that was sent within the limit. An intent over the limit is
refused with ``quota_intent_rate`` (:data:`REASON`); a redelivered intent is
not counted again (its first delivery was).
"""

from __future__ import annotations

REASON = "quota_intent_rate"
"""The refusal reason of an intent over its user's rate."""


class _Bucket:
    __slots__ = ("last_ns", "tokens")

    def __init__(self, tokens: float, last_ns: int) -> None:
        self.tokens = tokens
        self.last_ns = last_ns


class IntentRate:
    """Token buckets of every user.

    Parameters
    ----------
    rate
        Intents per second each user may send on average; 0 means no limit.
    burst
        Intents a user may send at once (the bucket's size, at least 1).
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, _Bucket] = {}

    def take(self, user: str, sent_ns: int) -> bool:
        """Count one intent of ``user`` stored by the server at ``sent_ns`` (ns since the
        epoch); False if it is over the limit (it takes no token then)."""
        if self.rate <= 0:
            return True
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = _Bucket(float(self.burst), sent_ns)
        elif sent_ns > bucket.last_ns:
            refill = (sent_ns - bucket.last_ns) * self.rate / 1e9
            bucket.tokens = min(float(self.burst), bucket.tokens + refill)
            bucket.last_ns = sent_ns
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def message(self, user: str) -> str:
        """The refusal message of an intent of ``user`` over the limit."""
        return (
            f"{user} sent more than {self.rate:g} intents/s (bursts up to {self.burst});"
            " this intent was refused: send fewer"
        )

"""Which accounts one execution process owns when several share the work (scale-out).

``TRADEBUS_EXECUTION_SHARDS`` = N execution processes, each started with its own
``TRADEBUS_EXECUTION_SHARD`` in ``[0, N)``, share one ledger and one NATS
(cluster). Shard ``i`` owns the users whose intent subjects ``intent.<user>.>``
fall in partition ``i`` of nats-server's deterministic subject mapping
``partition(N, 1)`` (:func:`tradebus.common.subjects.intent_partition`), and with
them every account of those users: their risk limits, kill switches, paper
balances and open orders live in that process alone.

Each user already has a stream of their own (``INTENTS_<user>``), so the
partition is whole streams: shard ``i`` creates and fetches the durable
consumer of its users' streams only, and no message is re-routed (users keep
publishing ``intent.<user>.>``; their NATS permissions are unchanged). A shard
restarted resumes its users' durable consumers where they were acked; changing N
moves users between shards (stop every shard, start them with the new N: a
user's consumer is then fetched by its new owner, from the same ack floor).
"""

from __future__ import annotations

import msgspec

from tradebus.common.config import ConfigError
from tradebus.common.subjects import intent_partition


class Shard(msgspec.Struct, frozen=True):
    """Shard ``index`` of ``count`` (``Shard(0, 1)``: one process owns everything)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"TRADEBUS_EXECUTION_SHARDS={self.count!r}: must be >= 1")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"TRADEBUS_EXECUTION_SHARD={self.index!r}: must be in [0, {self.count})"
                f" (TRADEBUS_EXECUTION_SHARDS={self.count})"
            )

    @property
    def alone(self) -> bool:
        """True if this process owns every user (one shard)."""
        return self.count == 1

    def owns(self, user: str) -> bool:
        """True if ``user`` (and every account of theirs) belongs to this shard."""
        return self.count == 1 or intent_partition(user, self.count) == self.index

    def suffix(self) -> str:
        """What this shard adds to names it alone uses (``""`` alone, else ``-<index>``)."""
        return "" if self.alone else f"-{self.index}"

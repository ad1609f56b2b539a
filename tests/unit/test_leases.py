"""Bot leases: rendezvous hashing (pure), and the lease protocol on a real NATS KV bucket.

The protocol test runs two :class:`Leases` (two replicas) against one
``leases`` bucket whose TTL is the lease time, short here (1 s), so expiry is
observed for real rather than simulated.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from nats.aio.client import Client as NATS

from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.strategy.kvstore import open_buckets
from tradebus.strategy.leases import Leases, preferred_owner, weight

LEASE_SECONDS = 1.0
BOTS = [f"user{i % 97}-bot{i}" for i in range(3000)]
REPLICAS = ["host-a", "host-b", "host-c"]


# --------------------------------------------------------------- rendezvous


def test_preferred_owner_is_deterministic_and_order_free() -> None:
    for bot in BOTS[:200]:
        owner = preferred_owner(bot, REPLICAS)
        assert owner in REPLICAS
        assert preferred_owner(bot, list(reversed(REPLICAS))) == owner
        assert preferred_owner(bot, set(REPLICAS)) == owner
        assert owner == max(REPLICAS, key=lambda r: weight(bot, r))
    assert weight("alice-ladder", "host-a") == weight("alice-ladder", "host-a")
    assert weight("alice-ladder", "host-a") != weight("alice-ladder", "host-b")
    assert preferred_owner("alice-ladder", []) is None
    assert preferred_owner("alice-ladder", {"only"}) == "only"


def test_bots_spread_evenly_over_the_replicas() -> None:
    counts = Counter(preferred_owner(bot, REPLICAS) for bot in BOTS)
    assert set(counts) == set(REPLICAS)
    fair = len(BOTS) / len(REPLICAS)
    for replica, n in counts.items():
        assert abs(n - fair) <= 0.1 * fair, (replica, counts)


def test_a_replica_leaving_moves_only_its_own_bots() -> None:
    before = {bot: preferred_owner(bot, REPLICAS) for bot in BOTS}
    survivors = ["host-a", "host-c"]
    after = {bot: preferred_owner(bot, survivors) for bot in BOTS}
    moved = {bot for bot in BOTS if before[bot] != after[bot]}
    assert moved == {bot for bot in BOTS if before[bot] == "host-b"}
    # ...and a replica joining takes only bots it now wins, from anyone
    joined = {bot: preferred_owner(bot, [*REPLICAS, "host-d"]) for bot in BOTS}
    for bot in BOTS:
        assert joined[bot] in (before[bot], "host-d")
    share = sum(1 for owner in joined.values() if owner == "host-d")
    assert abs(share - len(BOTS) / 4) <= 0.1 * len(BOTS) / 4


# ------------------------------------------------------------ the protocol


async def _two_replicas(nc: NATS) -> tuple[Leases, Leases]:
    buckets = await open_buckets(nc.jetstream(), LEASE_SECONDS)
    return Leases(buckets.leases, "host-a"), Leases(buckets.leases, "host-b")


async def test_a_lease_is_exclusive_renewable_and_releasable(nc: NATS) -> None:
    a, b = await _two_replicas(nc)
    assert await a.claim("alice-ladder")
    assert not await b.claim("alice-ladder")
    assert await a.claim("alice-ladder")  # its holder may ask again: still held
    assert not await b.claim("alice-ladder")
    assert "alice-ladder" in a.held and "alice-ladder" not in b.held
    assert await a.owners() == {"alice-ladder": "host-a"}

    # renewing keeps the lease well past the lease time
    loop = asyncio.get_running_loop()
    until = loop.time() + 2 * LEASE_SECONDS
    while loop.time() < until:
        assert await a.renew() == []
        assert not await b.claim("alice-ladder")
        await asyncio.sleep(LEASE_SECONDS / 4)
    assert await b.owners() == {"alice-ladder": "host-a"}

    # released: the other replica takes it at once; the first one's renewal has nothing to do
    await a.release("alice-ladder")
    assert a.held == {}
    assert await b.owners() == {}
    assert await b.claim("alice-ladder")
    assert await a.owners() == {"alice-ladder": "host-b"}
    assert await a.renew() == []
    assert await b.renew() == []
    await a.release("alice-ladder")  # not ours: no effect
    assert await a.owners() == {"alice-ladder": "host-b"}

    # a clean leave gives up every lease at once
    assert await b.claim("bob-volume")
    await b.leave()
    assert b.held == {} and await a.owners() == {}
    assert await a.claim("alice-ladder") and await a.claim("bob-volume")


async def test_an_expired_lease_goes_to_another_replica_and_its_holder_learns_it(
    nc: NATS,
) -> None:
    a, b = await _two_replicas(nc)
    await a.beat()
    await b.beat()
    assert await a.live_replicas() == {"host-a", "host-b"}
    assert await b.live_replicas() == {"host-a", "host-b"}
    assert await b.claim("alice-ladder")

    # b goes silent (no beat, no renew); a keeps beating and takes the bot once it expires
    async def a_takes_it() -> bool:
        await a.beat()
        return await a.claim("alice-ladder")

    await eventually(a_takes_it, timeout=5 * LEASE_SECONDS, what="the expired lease")
    assert await a.owners() == {"alice-ladder": "host-a"}
    assert await b.renew() == ["alice-ladder"]  # b lost it, and forgets it
    assert b.held == {}
    await b.release("alice-ladder")  # and cannot take it from a by releasing
    assert await a.owners() == {"alice-ladder": "host-a"}
    assert await a.renew() == []

    # b's heartbeat expired too: a no longer counts it; b still counts itself
    await eventually(
        lambda: _live_is(a, {"host-a"}), timeout=5 * LEASE_SECONDS, what="b to be forgotten"
    )
    assert "host-b" in await b.live_replicas()
    await b.beat()  # back: seen again at once
    assert await a.live_replicas() == {"host-a", "host-b"}


async def test_a_lease_expired_and_unclaimed_is_lost_to_its_holder_too(nc: NATS) -> None:
    a, _ = await _two_replicas(nc)
    assert await a.claim("carol-spread")

    async def expired() -> bool:
        return "carol-spread" not in await a.owners()

    await eventually(expired, timeout=5 * LEASE_SECONDS, what="the lease to expire")
    assert await a.renew() == ["carol-spread"]
    assert await a.claim("carol-spread")  # free again
    assert await a.renew() == []


async def test_lookups_leave_no_lasting_consumers(nc: NATS) -> None:
    """Each lookup is a KV watch; a stopped watch's consumer must go soon, not in minutes
    (heartbeats would pile up enough of them to hit the server's consumer limit)."""
    a, _ = await _two_replicas(nc)
    await a.beat()
    for _ in range(5):
        assert await a.live_replicas() == {"host-a"}
        assert await a.owners() == {}
    stream = f"KV_{subjects.KV_LEASES}"
    consumers = await nc.jetstream().consumers_info(stream)
    assert consumers, "the lookups' consumers linger until inactive"
    thresholds = [c.config.inactive_threshold for c in consumers]
    assert all(t is not None and t <= 10 for t in thresholds)


async def _live_is(leases: Leases, replicas: set[str]) -> bool:
    return await leases.live_replicas() == replicas

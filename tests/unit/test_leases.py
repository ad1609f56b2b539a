"""Replica leases: rendezvous assignment (pure, with Hypothesis), and the one-lease-per-replica
protocol on a real NATS KV bucket.

The protocol tests run :class:`Leases` of two replicas against one ``leases`` bucket
whose TTL is the lease time, short here (1 s), so expiry is observed for real rather
than simulated.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS

from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.strategy.kvstore import open_buckets
from tradebus.strategy.leases import (
    Lease,
    LeaseLost,
    Leases,
    assign,
    claimed_by,
    decode_lease,
    preferred_owner,
    weight,
)

LEASE_SECONDS = 1.0
BOTS = [f"user{i % 97}-bot{i}" for i in range(3000)]
REPLICAS = ["host-a", "host-b", "host-c"]

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
replica_sets = st.sets(ids, min_size=1, max_size=8)
bot_lists = st.lists(ids, min_size=1, max_size=60, unique=True)


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
    assert assign(["a", "b"], []) == {}


@given(bots=bot_lists, replicas=replica_sets, data=st.data())
def test_assignment_depends_on_the_set_only(
    bots: list[str], replicas: set[str], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(sorted(replicas)))
    first = assign(bots, replicas)
    assert first == assign(bots, shuffled) == assign(reversed(bots), [*shuffled, *shuffled])
    assert set(first) == set(bots) and set(first.values()) <= replicas


@given(bots=bot_lists, replicas=replica_sets, newcomer=ids)
def test_a_replica_joining_takes_only_bots_it_now_wins(
    bots: list[str], replicas: set[str], newcomer: str
) -> None:
    before = assign(bots, replicas)
    after = assign(bots, replicas | {newcomer})
    for bot in bots:
        assert after[bot] in (before[bot], newcomer)  # nothing moves between the others


@given(bots=bot_lists, replicas=st.sets(ids, min_size=2, max_size=8), data=st.data())
def test_a_replica_leaving_moves_only_its_own_bots(
    bots: list[str], replicas: set[str], data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(sorted(replicas)))
    before = assign(bots, replicas)
    after = assign(bots, replicas - {gone})
    moved = {bot for bot in bots if before[bot] != after[bot]}
    assert moved == {bot for bot in bots if before[bot] == gone}
    assert gone not in after.values()


@settings(max_examples=25, deadline=None)
@given(replicas=st.sets(ids, min_size=2, max_size=6))
def test_bots_spread_evenly_over_any_replicas(replicas: set[str]) -> None:
    counts = Counter(assign(BOTS, replicas).values())
    fair = len(BOTS) / len(replicas)
    # 3000 bots: a share's standard deviation is at most ~27 bots (binomial): 6 sigma
    for replica in replicas:
        assert abs(counts[replica] - fair) <= 6 * (fair * (1 - 1 / len(replicas))) ** 0.5 + 1


def test_bots_spread_evenly_over_the_replicas() -> None:
    counts = Counter(preferred_owner(bot, REPLICAS) for bot in BOTS)
    assert set(counts) == set(REPLICAS)
    fair = len(BOTS) / len(REPLICAS)
    for replica, n in counts.items():
        assert abs(n - fair) <= 0.1 * fair, (replica, counts)
    # a fourth replica takes about a quarter, from each of the others
    joined = assign(BOTS, [*REPLICAS, "host-d"])
    share = sum(1 for owner in joined.values() if owner == "host-d")
    assert abs(share - len(BOTS) / 4) <= 0.1 * len(BOTS) / 4


def test_a_lease_claims_what_its_view_gives_its_holder() -> None:
    a = Lease(view=("host-a", "host-b"))
    mine = {bot for bot in BOTS if a.claims("host-a", bot)}
    assert mine == {bot for bot, owner in assign(BOTS, a.view).items() if owner == "host-a"}
    # two replicas whose views disagree (b has not seen c yet) may both claim a bot:
    # that is the case the start check (claimed_by after publishing) keeps apart
    leases = {"host-b": Lease(view=("host-b",)), "host-c": Lease(view=("host-b", "host-c"))}
    both = [bot for bot in BOTS if len(claimed_by(leases, bot)) == 2]
    assert both and all(preferred_owner(b, ("host-b", "host-c")) == "host-c" for b in both)
    assert claimed_by({"host-x": Lease(view=())}, "any") == []  # claims nothing
    assert decode_lease(b"replica-1") is None
    assert decode_lease(b'{"view":["a","b"]}') == Lease(view=("a", "b"))


# ------------------------------------------------------------ the protocol


async def _two_replicas(nc: NATS) -> tuple[Leases, Leases]:
    buckets = await open_buckets(nc.jetstream(), LEASE_SECONDS)
    return Leases(buckets.leases, "host-a"), Leases(buckets.leases, "host-b")


async def test_one_lease_per_replica_is_exclusive_renewable_and_releasable(nc: NATS) -> None:
    a, b = await _two_replicas(nc)
    assert await a.acquire(["host-a"])
    assert a.held and a.view == ("host-a",)
    twin = Leases(a._kv, "host-a")  # a second process of the same replica id
    assert not await twin.acquire(["host-a"])
    assert await b.acquire(["host-a", "host-b"])
    assert await a.read() == {
        "host-a": Lease(view=("host-a",)),
        "host-b": Lease(view=("host-a", "host-b")),
    }

    # renewals made at once (the keep-alive task and a supervision round) are made one
    # at a time: none looks like a lost lease
    await asyncio.gather(*(a.renew() for _ in range(20)))
    assert a.held

    # renewing keeps the lease well past the lease time, and publishes a new view
    loop = asyncio.get_running_loop()
    until = loop.time() + 2 * LEASE_SECONDS
    while loop.time() < until:
        await a.renew()
        await b.renew()
        await asyncio.sleep(LEASE_SECONDS / 4)
    await a.renew(["host-b"])  # its own id is always in its view
    assert (await b.read())["host-a"] == Lease(view=("host-a", "host-b"))
    claims = await b.owners(BOTS)
    assert claims == assign(BOTS, ["host-a", "host-b"])

    # a clean leave: the key is gone at once, a new process of that id may take it
    await a.leave()
    assert not a.held and await b.live_replicas() == {"host-b"}
    assert await twin.acquire(["host-a"])
    with pytest.raises(LeaseLost):
        await a.renew()  # the old process holds nothing


async def test_an_expired_lease_is_lost_to_its_holder_and_free_for_its_id(nc: NATS) -> None:
    a, b = await _two_replicas(nc)
    assert await a.acquire(["host-a", "host-b"])
    assert await b.acquire(["host-a", "host-b"])
    assert await a.live_replicas() == {"host-a", "host-b"}

    # b goes silent; a keeps renewing and stops seeing b once its lease expires
    async def b_forgotten() -> bool:
        await a.renew()
        return await a.live_replicas() == {"host-a"}

    await eventually(b_forgotten, timeout=5 * LEASE_SECONDS, what="b's lease to expire")
    split = assign(BOTS, ["host-a", "host-b"])
    # a's view still names b: a claims only its share, b's share is claimed by no one
    assert await a.owners(BOTS) == {bot: "host-a" for bot in BOTS if split[bot] == "host-a"}
    with pytest.raises(LeaseLost):
        await b.renew()  # b learns it lost its lease (it must drop its bots)
    assert not b.held and b.view == ()
    assert "host-b" in await b.live_replicas()  # b still counts itself
    assert await b.acquire(["host-a", "host-b"])  # and takes its key anew
    assert await a.live_replicas() == {"host-a", "host-b"}


async def test_owners_needs_a_single_claimer(nc: NATS) -> None:
    a, b = await _two_replicas(nc)
    assert await a.acquire(["host-a"])  # a has not seen b: claims every bot
    assert await b.acquire(["host-a", "host-b"])
    owners = await a.owners(BOTS)
    split = assign(BOTS, ["host-a", "host-b"])
    assert owners == {bot: "host-a" for bot in BOTS if split[bot] == "host-a"}
    await a.renew(["host-a", "host-b"])
    assert await a.owners(BOTS) == split


async def test_lookups_leave_no_lasting_consumers(nc: NATS) -> None:
    """Each lookup is a KV watch; a stopped watch's consumer must go soon, not in minutes
    (heartbeats would pile up enough of them to hit the server's consumer limit)."""
    a, _ = await _two_replicas(nc)
    assert await a.acquire(["host-a"])
    for _ in range(5):
        assert await a.live_replicas() == {"host-a"}
        assert await a.owners(BOTS[:10]) == dict.fromkeys(BOTS[:10], "host-a")
    stream = f"KV_{subjects.KV_LEASES}"
    consumers = await nc.jetstream().consumers_info(stream)
    assert consumers, "the lookups' consumers linger until inactive"
    thresholds = [c.config.inactive_threshold for c in consumers]
    assert all(t is not None and t <= 10 for t in thresholds)

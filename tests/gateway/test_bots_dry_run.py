"""A dry-run bot through the API: created with ``execute_trades: false``, its status says
``dry_run``, and ``GET /api/v1/bots/{id}/dry-run`` lists its intents and its simulated
venue's answers, to its owner only; the account's venue saw nothing (real gateway,
strategy host and execution on a paper account)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.gateway.world import World, ladder, wait_state, world
from tests.support.services import eventually

__all__ = ["world"]


async def test_a_dry_run_bot_is_made_shown_and_listed_to_its_owner(world: World) -> None:
    alice, bob, bus = world.alice, world.bob, world.bus
    body = ladder("alice-paper", execute_trades=False, dry_run_wallet={"USDT": "5000"})
    created = await alice.post("/api/v1/bots", json=body)
    assert created.status_code == 201, created.text
    bot = created.json()["id"]
    assert created.json()["spec"]["execute_trades"] is False
    await wait_state(alice, bot, "running")

    async def shown() -> dict[str, Any]:
        status: dict[str, Any] = (await alice.get(f"/api/v1/bots/{bot}")).json()["status"] or {}
        return status

    ts = 0

    async def bought() -> bool:
        nonlocal ts
        for price in ("60000", "59800"):  # 4 simulated buys from 59850; the first fills
            ts += 1_000_000_000
            await bus.tick(price, ts)
        return Decimal((await shown()).get("position", "0")) > 0

    await eventually(bought, what="a simulated fill")
    status = await shown()
    assert status["dry_run"] is True
    assert (status["details"]["dry_run_intents"], status["details"]["dry_run_fills"]) == (4, 1)

    listed = await alice.get(f"/api/v1/bots/{bot}/dry-run")
    assert listed.status_code == 200, listed.text
    records = listed.json()
    kinds = [(r["intent"] or r["event"])["type"] for r in records]
    assert kinds.count("PlaceOrder") == 4 and kinds.count("OrderAccepted") == 4
    (fill,) = [r["event"] for r in records if r["event"] and r["event"]["type"] == "OrderFilled"]
    assert Decimal(fill["price"]) == Decimal("59850.00")
    last_two = await alice.get(f"/api/v1/bots/{bot}/dry-run", params={"limit": 2})
    assert [r["seq"] for r in last_two.json()] == [r["seq"] for r in records[-2:]]
    assert (await alice.get(f"/api/v1/bots/{bot}/dry-run", params={"limit": 0})).status_code == 400

    # a flatten of a dry run closes the simulated position, at the simulated venue too
    flattened = await alice.post(f"/api/v1/bots/{bot}/flatten")
    assert flattened.status_code == 200, flattened.text

    async def closed() -> bool:
        nonlocal ts
        ts += 1_000_000_000
        await bus.tick("59900", ts)
        return (await shown()).get("state") == "stopped"

    await eventually(closed, what="the simulated close")
    status = await shown()
    assert (Decimal(status["position"]), status["details"]["dry_run_fills"]) == (0, 2)

    # the paper account's venue saw nothing; bob learns nothing
    assert [e for e in bus.events if getattr(e, "source", None) == bot] == []
    usdt = await bus.balance("USDT", "alice-paper")
    assert (usdt.free, usdt.locked) == (Decimal(10000), 0)
    refused = await bob.get(f"/api/v1/bots/{bot}/dry-run")
    assert refused.status_code == 404 and "alice-paper" not in refused.text

    # a bad wallet is refused naming the field, as for any bot setting
    bad = await alice.post(
        "/api/v1/bots",
        json=ladder("alice-paper", name="bad", execute_trades=False, dry_run_wallet={"USDT": "-1"}),
    )
    assert bad.status_code == 400 and "dry_run_wallet.USDT" in bad.text, bad.text

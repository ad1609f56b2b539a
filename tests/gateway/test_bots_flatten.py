"""``POST /api/v1/bots/{id}/flatten``: a force exit through the API, on the full stack
(gateway, strategy host, execution on a paper account).

Alice's ladder buys a level; her flatten cancels the other buys and sells the position
at market; once the paper venue fills it the bot is ``stopped`` with no position.
Bob can neither flatten it nor learn that it exists (404), as for the other verbs.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.gateway.world import World, ladder, wait_state, world
from tests.support.services import eventually

__all__ = ["world"]


async def test_flatten_closes_the_position_and_stops_the_bot_of_its_owner_only(
    world: World,
) -> None:
    alice, bob, bus = world.alice, world.bob, world.bus
    created = await alice.post("/api/v1/bots", json=ladder("alice-paper"))
    assert created.status_code == 201, created.text
    bot = created.json()["id"]
    await wait_state(alice, bot, "running")
    tick = bus.tick

    async def shown() -> dict[str, Any]:
        status: dict[str, Any] = (await alice.get(f"/api/v1/bots/{bot}")).json()["status"] or {}
        return status

    await tick("60000")  # 4 buys from 59850 down

    async def bought() -> bool:
        await tick("59800")
        return Decimal((await shown()).get("position", "0")) > 0

    await eventually(bought, what="a level to fill")

    # bob: the same 404 as for a bot that does not exist; alice's bot is untouched
    refused = await bob.post(f"/api/v1/bots/{bot}/flatten")
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    assert "alice-paper" not in refused.text
    assert (await shown())["state"] == "running"

    answer = await alice.post(f"/api/v1/bots/{bot}/flatten")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["command"], body["ok"], body["status"]["state"]) == ("flatten", True, "flattening")

    async def stopped() -> bool:
        await tick("59790")
        return (await shown()).get("state") == "stopped"

    await eventually(stopped, what="the close to fill")
    final = await shown()
    assert (final["phase"], Decimal(final["position"]), final["open_orders"]) == ("stopped", 0, 0)
    assert (
        await bus.balance("BTC", "alice-paper")
    ).total == 1  # the paper account's own BTC, nothing more

    unknown = await alice.post("/api/v1/bots/nobody/flatten")
    assert unknown.status_code == 404

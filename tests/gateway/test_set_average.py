"""A bot's average price set by hand (issue 19, seed 001's ``setManualAveragePrice``),
through the CLI (``tradebus bots set-average BOT PRICE``) and the API
(``POST /api/v1/bots/{id}/average``), on a real strategy host, execution and gateway.

Each correction is journaled in the ledger (``bot_adjustments``, kind ``average``:
who, when, old and new average, bot) and in the audit log; the bot's status shows
the new average. Only the owner (or an admin) may set it, only to a price > 0, and
only on a bot holding a position.
"""

from __future__ import annotations

from decimal import Decimal as D

import asyncpg
import pytest

from tests.gateway.world import World, ladder, wait_state, world
from tests.support.cli import tradebus
from tests.support.services import eventually
from tradebus.control.audit import local_actor

__all__ = ["world"]

BOT = "alice-ladder-btc"


async def journaled(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT account_id, user_id, source, symbol, asset, kind, qty, price, old_average,"
            " new_average, held, actor, ref, ts FROM bot_adjustments ORDER BY id"
        )
    finally:
        await conn.close()


async def status(world: World) -> dict[str, object]:
    answer = await world.alice.get(f"/api/v1/bots/{BOT}")
    assert answer.status_code == 200, answer.text
    return answer.json()["status"] or {}


async def test_set_average_through_the_cli_and_the_api_is_journaled(
    world: World, nats_url: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = world.alice, world.bob
    created = await alice.post("/api/v1/bots", json=ladder("alice-paper", name="btc"))
    assert created.status_code == 201, created.text
    await wait_state(alice, BOT, "running")

    # no position yet: refused, nothing journaled
    flat = await alice.post(f"/api/v1/bots/{BOT}/average", json={"price": "59000"})
    assert flat.status_code == 409, flat.text
    assert flat.json()["error"] == "invalid" and "holds no position" in flat.json()["message"]

    await world.bus.tick("60000", 1)  # the ladder rests 59850 .. 59400
    await eventually(lambda: _open(world), what="the ladder resting")
    await world.bus.tick("59000", 2)  # fills every level

    async def holding() -> bool:
        s = await status(world)
        return bool(s) and D(str(s["position"])) > 0 and s["open_orders"] == 0

    await eventually(holding, what="the ladder filled")
    before = D(str((await status(world))["avg_price"]))

    # the CLI: refused prices say why, naming the field
    code, _, err = await tradebus(capsys, "bots", "set-average", BOT, "0", "--nats-url", nats_url)
    assert code == 2 and "argument price: '0' must be > 0" in err
    code, _, err = await tradebus(capsys, "bots", "set-average", BOT, "abc", "--nats-url", nats_url)
    assert code == 2 and "argument price: 'abc' is not a number" in err
    code, out, err = await tradebus(
        capsys, "bots", "set-average", BOT, "58000", "--nats-url", nats_url
    )
    assert code == 0, err
    assert f"{BOT}: average price set to 58000 (was {before})" in out

    async def average_set() -> bool:  # the gateway shares statuses for a second
        return D(str((await status(world))["avg_price"])) == D(58000)

    await eventually(average_set, what="the new average in the bot's status")

    # the API: the owner sets it again; bob cannot see the bot; a bad price is 400
    answer = await alice.post(f"/api/v1/bots/{BOT}/average", json={"price": "58500.5"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["command"] == "set-average" and body["ok"] is True
    assert D(body["status"]["avg_price"]) == D("58500.5")
    assert (await bob.post(f"/api/v1/bots/{BOT}/average", json={"price": "1"})).status_code == 404
    bad = await alice.post(f"/api/v1/bots/{BOT}/average", json={"price": "-5"})
    assert bad.status_code == 400 and bad.json()["field"] == "price", bad.text
    for body in (None, {}):
        missing = await alice.post(f"/api/v1/bots/{BOT}/average", json=body)
        assert missing.status_code == 400 and missing.json()["message"] == "price: required"
    assert D(str((await status(world))["avg_price"])) == D("58500.5")

    rows = await journaled(database_url)
    position = D(str((await status(world))["position"]))
    run = (await status(world))["run"]
    assert [
        (r["source"], r["kind"], r["qty"], r["old_average"], r["new_average"], r["actor"])
        for r in rows
    ] == [
        (BOT, "average", D(0), before, D(58000), local_actor("cli")),
        (BOT, "average", D(0), D(58000), D("58500.5"), "alice"),
    ]
    assert all(
        (r["account_id"], r["user_id"], r["symbol"], r["asset"])
        == ("alice-paper", "alice", "BTCUSDT", "BTC")
        for r in rows
    )
    assert [r["ref"] for r in rows] == [f"{BOT}:{run}:position:1", f"{BOT}:{run}:position:2"]
    assert rows[0]["ts"] < rows[1]["ts"] and position > 0

    # the audit trail: the host's record of each command and execution's of each entry
    strategy = [e for e in await world.audit("strategy") if e.action == "bot.set-average"]
    assert [(e.actor, e.target, e.user) for e in strategy] == [
        (local_actor("cli"), f"bot:{BOT}", "alice"),
        ("alice", f"bot:{BOT}", "alice"),
    ]
    assert strategy[1].before == {"average": "58000"}
    assert strategy[1].after == {"average": "58500.5"}
    execution = [e for e in await world.audit("execution") if e.action == "bot.position.average"]
    assert [e.actor for e in execution] == [local_actor("cli"), "alice"]


async def _open(world: World) -> bool:
    s = await status(world)
    return bool(s) and s["open_orders"] == 4
